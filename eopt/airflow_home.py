"""The product's own Airflow home: bootstrapped from the files in ``airflow/``, and DAG runs in it.

``bootstrap`` is what ``eopt airflow-init`` (``make airflow-init``) does, idempotently:
``airflow db migrate``, then ``pools import airflow/pools.json``, ``variables import
airflow/variables.json`` (existing keys are kept: ``current_model_mape`` is state the retraining
writes) and ``connections import airflow/connections.json`` (existing connections are kept: an
operator's edits win). The shipped connections point the four pricing providers at the local
sandbox (``eopt sandbox``, port 8765) with the sandbox's published test credentials; production
replaces them (see the README's operations guide).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from core.settings import PROJECT_ROOT, Settings

BOOTSTRAP_DIR = PROJECT_ROOT / "airflow"
AIRFLOW = Path(sys.executable).parent / "airflow"


class AirflowCommandError(RuntimeError):
    """An ``airflow`` command failed; the message holds the command and the end of its output."""


def exec_airflow(settings: Settings, args: Sequence[str]) -> NoReturn:
    """Replace this process by ``airflow ARGS`` (``--help`` when none) on the product's Airflow home."""
    sys.stdout.flush()
    os.execve(str(AIRFLOW), [str(AIRFLOW), *(args or ("--help",))], settings.airflow_environment())


def airflow_command(
    settings: Settings, *args: str, extra_env: dict[str, str] | None = None, timeout: int = 600, check: bool = True
) -> subprocess.CompletedProcess:
    env = settings.airflow_environment(**(extra_env or {}))
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(AIRFLOW), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=env["AIRFLOW_HOME"]
    )
    if check and result.returncode != 0:
        tail = (result.stdout[-2000:] + "\n" + result.stderr[-2000:]).strip()
        raise AirflowCommandError(
            f"airflow {' '.join(args)} failed (exit {result.returncode}) in {env['AIRFLOW_HOME']}:\n{tail}"
        )
    return result


def bootstrap(settings: Settings) -> list[str]:
    """Migrate the metadata database and import pools, variables and connections; safe to rerun."""
    done = []
    airflow_command(settings, "db", "migrate", timeout=900)
    done.append(
        f"metadata database migrated ({settings.airflow_environment()['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN'].split('@')[-1]})"
    )
    airflow_command(settings, "pools", "import", str(BOOTSTRAP_DIR / "pools.json"))
    pools = json.loads((BOOTSTRAP_DIR / "pools.json").read_text())
    done.append("pools: " + ", ".join(f"{name} ({pool['slots']})" for name, pool in pools.items()))
    airflow_command(
        settings, "variables", "import", "--action-on-existing-key", "skip", str(BOOTSTRAP_DIR / "variables.json")
    )
    done.append(
        "variables (existing values kept): " + ", ".join(json.loads((BOOTSTRAP_DIR / "variables.json").read_text()))
    )
    airflow_command(settings, "connections", "import", str(BOOTSTRAP_DIR / "connections.json"))
    done.append(
        "connections (existing ones kept): " + ", ".join(json.loads((BOOTSTRAP_DIR / "connections.json").read_text()))
    )
    return done


def dags_test(
    settings: Settings,
    dag_id: str,
    logical_date: str,
    conf: dict | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: int = 1800,
) -> subprocess.CompletedProcess:
    """``airflow dags test DAG_ID LOGICAL_DATE [-c CONF]`` in the product's Airflow home (not raising)."""
    args = ["dags", "test", dag_id, logical_date]
    if conf is not None:
        args += ["-c", json.dumps(conf)]
    return airflow_command(settings, *args, extra_env=extra_env, timeout=timeout, check=False)
