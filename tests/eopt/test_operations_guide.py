"""Every command of the operations guide (``docs/operations.md``), run as written, in the guide's order.

The guide's ```bash blocks are of three kinds, by their first line:

- ``# production only: <why>``: not run here (Docker engine, unpinned providers); the reason is
  required;
- ``# on a running platform (make up)``: run in a folder whose ``.eopt`` is the home of a real
  ``eopt up`` (airflow standalone, mlflow server, sandbox on free ports; 8080/5000 in the text
  become those ports);
- the others: run in a folder whose ``.eopt`` is a freshly bootstrapped Airflow home with no
  scheduler (so pausing, triggering and backfilling change state without running anything).

Each block runs under ``bash -euo pipefail`` with ``airflow`` defined as ``eopt airflow`` (what
the guide tells a local user to alias), so a command that does not exist in the pinned Airflow,
a wrong flag or a failing check fails the test. The state each block should leave behind is
then read from the metadata database.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.settings import Settings
from eopt.airflow_home import airflow_command, bootstrap
from eopt.services import Ports, down, up
from pipelines.maintenance import STEPS
from tests.eopt.test_services import free_ports

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operations.md"  # the docs site's Operations page
BIN = Path(sys.executable).parent
PRODUCTION_ONLY = "# production only:"
ON_PLATFORM = "# on a running platform"
FAILED_RUN = "backfill__2026-11-20T06:00:00+00:00"


@dataclass
class Block:
    heading: str
    text: str

    @property
    def kind(self) -> str:
        first = self.text.splitlines()[0]
        if first.startswith(PRODUCTION_ONLY):
            return "production"
        return "platform" if first.startswith(ON_PLATFORM) else "idle"

    @property
    def commands(self) -> list[str]:
        joined = self.text.replace("\\\n", " ")
        return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def guide_blocks() -> list[Block]:
    blocks, heading, lines = [], "", None
    for line in GUIDE.read_text().splitlines():
        if lines is not None:  # inside a ```bash block
            if line == "```":
                blocks.append(Block(heading, "\n".join(lines) + "\n"))
                lines = None
            else:
                lines.append(line)
        elif line.startswith("## "):
            heading = line[3:].strip()
        elif line == "```bash":
            lines = []
    return blocks


def run_block(block: Block, folder: Path, home: Path, ports: Ports | None = None, secrets: Path | None = None) -> str:
    text = block.text
    if ports is not None:
        text = text.replace("127.0.0.1:8080", f"127.0.0.1:{ports.airflow}").replace(
            "127.0.0.1:5000", f"127.0.0.1:{ports.mlflow}"
        )
    if secrets is not None:
        text = text.replace("/run/secrets/", f"{secrets}/")
    script = f'airflow() {{ "{BIN / "eopt"}" airflow "$@"; }}\n{text}'
    env = Settings.from_env({"EOPT_HOME": str(home)}).airflow_environment(
        EOPT_HOME=str(home), PATH=f"{BIN}:/usr/bin:/bin", EOPT_LOG_LEVEL="WARNING"
    )
    for name in ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER"):  # only `eopt airflow` may set them, as for a user
        env.pop(name)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (
        f"operations guide, {block.heading}: block failed (exit {result.returncode})\n{block.text}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )
    return result.stdout


def workspace(tmp: Path, home: Path) -> Path:
    """A folder where ``.eopt`` is ``home``, as in a checkout after ``make up``."""
    folder = tmp / "checkout"
    folder.mkdir()
    (folder / ".eopt").symlink_to(home)
    return folder


def metadata(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "airflow" / "airflow.db")


def test_guide__covers_the_operations_an_operator_needs_and_says_why_a_block_is_not_run():
    blocks = guide_blocks()
    assert len(blocks) == GUIDE.read_text().count("```bash")  # every bash block of the page is run or says why not
    assert {
        "Health checks",
        "Pause, unpause, trigger with conf",
        "Backfill",
        "Clear and rerun",
        "Logs",
        "Maintenance and retention",
        "Scaling",
        "Security",
    } <= {b.heading for b in blocks}
    every = "\n".join(c for b in blocks for c in b.commands)
    for command in (
        "/api/v2/monitor/health",
        "airflow jobs check",
        "airflow db check",
        "airflow dags pause",
        "airflow dags unpause",
        "airflow dags trigger",
        "--conf",
        "airflow backfill create",
        "airflow tasks clear",
        "airflow rotate-fernet-key",
        "AIRFLOW__SECRETS__BACKEND",
        "core auth_manager",
        "--profile celery up -d --scale airflow-worker=",
        "eopt maintenance run --dry-run",
    ):
        assert command in every, f"the operations guide lost {command!r}"
    for block in blocks:
        assert block.commands, f"{block.heading}: an empty block"
        if block.kind == "production":
            reason = block.text.splitlines()[0].removeprefix(PRODUCTION_ONLY).strip()
            assert len(reason) > 15, f"{block.heading}: a production-only block must say why it is not run here"
            assert all(c.startswith(("docker ", "airflow users")) for c in block.commands), block.text
    assert sum(b.kind == "production" for b in blocks) <= 3  # everything else is exercised below


@pytest.fixture(scope="module")
def idle_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ops") / "home"
    settings = Settings.from_env({"EOPT_HOME": str(home)})
    bootstrap(settings)
    airflow_command(settings, "dags", "reserialize")  # what the dag processor of a running deployment does
    return home


def test_guide__every_command_works_on_a_bootstrapped_airflow_home_and_leaves_the_state_it_describes(
    idle_home, tmp_path
):
    folder = workspace(tmp_path, idle_home)
    secrets = tmp_path / "secrets"  # what a secrets mount would hold; the metadata database has no such connection
    secrets.mkdir()
    (secrets / "airflow-connections.json").write_text(
        json.dumps(
            {"slack_data_quality": {"conn_type": "slackwebhook", "host": "hooks.slack.com", "password": "T0/B0/secret"}}
        )
    )
    ran = []
    for block in (b for b in guide_blocks() if b.kind == "idle"):
        if "airflow tasks clear" in block.text:  # a failed task, as the section assumes
            with metadata(idle_home) as db:
                assert (
                    db.execute(
                        "UPDATE task_instance SET state='failed' WHERE run_id=? AND task_id='check_completeness'",
                        (FAILED_RUN,),
                    ).rowcount
                    == 1
                )
                db.execute("UPDATE dag_run SET state='failed' WHERE run_id=?", (FAILED_RUN,))
        output = run_block(block, folder, idle_home, secrets=secrets)
        ran.append((block.heading, output))

    with metadata(idle_home) as db:
        paused = dict(db.execute("SELECT dag_id, is_paused FROM dag").fetchall())
        assert paused["model_retraining"] == 0 and paused["data_quality"] == 1  # unpaused again; others untouched
        confs = [
            json.loads(c)
            for (c,) in db.execute("SELECT conf FROM dag_run WHERE run_type='manual' ORDER BY dag_id").fetchall()
        ]
        assert confs == [{"force": True, "trigger_forecast": True}, {"regions": ["NP"], "budget": "smoke"}]
        backfill = db.execute(
            "SELECT logical_date FROM dag_run WHERE dag_id='data_quality' AND run_type='backfill' ORDER BY logical_date"
        ).fetchall()
        assert [d[:13] for (d,) in backfill] == [f"2026-11-{day} 06" for day in (20, 21, 22)]  # --to-date inclusive
        assert db.execute(
            "SELECT state FROM task_instance WHERE run_id=? AND task_id='check_completeness'", (FAILED_RUN,)
        ).fetchone() == (None,)  # the failed task was cleared for a rerun
        assert db.execute("SELECT state FROM dag_run WHERE run_id=?", (FAILED_RUN,)).fetchone() == ("queued",)
        assert db.execute("SELECT slots FROM slot_pool WHERE pool='ml_training_pool'").fetchone() == (4,)
        value, encrypted = db.execute("SELECT val, is_encrypted FROM variable WHERE key='retrain_on_drift'").fetchone()
        assert encrypted and value != "true"  # set, and encrypted at rest with the Fernet key
        assert db.execute("SELECT count(*) FROM connection WHERE conn_id='slack_data_quality'").fetchone() == (0,)
    assert "Variable retrain_on_drift created" in dict(ran)["Variables and other checks"]
    maintenance = dict(ran)["Maintenance and retention"]
    for step in STEPS:  # each task reported what it would remove: nothing, on a new home
        assert f"{step}: would remove 0 item(s), 0 bytes" in maintenance, maintenance
    dry_run = next(out for heading, out in ran if heading == "Backfill")
    assert all(f"2026-11-{day} 06:00:00" in dry_run for day in (20, 21, 22))  # the dry run listed the dates

    # the rotation re-encrypted the connections: the key the home was created with no longer opens them
    stale = subprocess.run(
        [str(BIN / "eopt"), "airflow", "connections", "get", "flatpeak_default", "-o", "json"],
        env=Settings.from_env({"EOPT_HOME": str(idle_home)}).airflow_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "sk_sandbox_flatpeak" not in stale.stdout


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Ports]]:
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path_factory.mktemp("ops-up") / "home")})
    ports = Ports(*free_ports(3))
    try:
        up(settings, ports, lambda line: None, timeout_s=240)
        yield settings, ports
    finally:
        down(settings, lambda line: None)


def test_guide__health_rest_and_log_commands_work_against_what_make_up_started(platform, tmp_path):
    settings, ports = platform
    folder = workspace(tmp_path, settings.stores.home)
    outputs = {}
    for block in (b for b in guide_blocks() if b.kind == "platform"):
        outputs.setdefault(block.heading, []).append(run_block(block, folder, settings.stores.home, ports=ports))

    checks = outputs["Health checks"][0]
    health, end = json.JSONDecoder().raw_decode(checks)
    assert {health[part]["status"] for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {
        "healthy"
    }
    assert checks[end:].count("Found one alive job") == 3
    assert checks.rstrip().endswith("OK")  # MLflow's /health
    run = json.loads(outputs["Pause, unpause, trigger with conf"][0])
    assert run["dag_id"] == "forecast_generation" and run["conf"] == {"regions": ["NP"]}
    assert run["state"] == "queued"  # DAGs start paused: the run waits until forecast_generation is unpaused
    assert ".eopt/airflow/logs/" in outputs["Logs"][0]  # the dag processor's logs at least
