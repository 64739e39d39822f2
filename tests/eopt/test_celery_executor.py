"""The CeleryExecutor for real, without Docker: `eopt up --executor celery` on loopback (scheduler,
dag-processor, API server, two `airflow celery worker` processes, Redis broker, PostgreSQL metadata
database and result backend) runs `model_retraining` for four regions on the smoke budget; the task
instances show both workers ran tasks, the Optuna studies of all four regions sit in one PostgreSQL
storage, and `eopt down` leaves no process and no port behind.

To stay within the suite's budget the retraining reads an 84-day window with 7 days each of
validation and test instead of two years (still the 56 complete days LEAR needs before the
validation, so every member is fitted), tunes each member with one Optuna trial and fits on one
thread per task (two training tasks share the two cores of the test machine,
``EOPT_TRAINING_THREADS``): what is under test is the executor, not the models."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest
import redis
import sqlalchemy as sa

from core.markets import load_market
from core.settings import Settings
from eopt.services import Ports, ServiceError, down, run_dir, up
from tests.conftest import POSTGRES_ADMIN_URL, PROJECT_ROOT
from tests.eopt.test_services import free_ports, port_open, request
from tests.market_frames import store_with_history

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REGIONS = ["NP", "PJM", "BE", "FR"]
LOGICAL_DATE = "2018-12-25T02:00:00Z"  # just after the NP and PJM histories end
HISTORY_END = pd.Timestamp("2018-12-25", tz="UTC")
BE_FR_SHIFT = pd.Timedelta(days=2 * 364)  # BE and FR end in 2016: moved two 52-week years on
HISTORY_DAYS = 120  # each region's last days in the store: the 84-day training window and a margin
BROKER_DB = 9  # a Redis database of its own (the tests' cache uses 15, 14, ...)
RUN_TIMEOUT_S = 1200  # the run alone; on an idle 2-core machine it takes a few minutes


@pytest.fixture
def databases(postgres_admin) -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases: Airflow's metadata (and Celery's results), the store, Optuna."""
    names = {kind: f"eopt_celery_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("airflow", "store", "optuna")}
    with postgres_admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    base = sa.make_url(POSTGRES_ADMIN_URL)
    yield {kind: base.set(database=name).render_as_string(hide_password=False) for kind, name in names.items()}
    with postgres_admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def load_four_regions(url: str) -> None:
    store = store_with_history(url, {"NP": HISTORY_DAYS, "PJM": HISTORY_DAYS})

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["ts"] >= HISTORY_END - pd.Timedelta(days=HISTORY_DAYS)) & (frame["ts"] < HISTORY_END)]

    for region in ("BE", "FR"):
        history = load_market(region, PROJECT_ROOT / "data" / "markets")
        prices = history.prices.assign(ts=history.prices["ts"] + BE_FR_SHIFT)
        exogenous = history.exogenous.assign(ts=history.exogenous["ts"] + BE_FR_SHIFT)
        store.upsert_history(keep(prices), keep(exogenous))
    store.engine.dispose()


@pytest.mark.timeout(RUN_TIMEOUT_S + 600)  # the run, plus starting and stopping the platform
def test_celery_executor__two_workers_retrain_four_regions_and_nothing_is_left_running(
    tmp_path, databases, monkeypatch
):
    broker = f"redis://127.0.0.1:6379/{BROKER_DB}"
    redis.Redis.from_url(broker).flushdb()
    load_four_regions(databases["store"])
    env = {
        "EOPT_HOME": str(tmp_path / "eopt"),
        "EOPT_DATABASE_URL": databases["store"],
        "EOPT_OPTUNA_STORAGE": databases["optuna"],
        "EOPT_REGIONS": ",".join(REGIONS),
        "EOPT_TRAINING_BUDGET": "smoke",
        "EOPT_TRAINING_WINDOW_DAYS": "84",
        "EOPT_VALIDATION_DAYS": "7",
        "EOPT_TEST_DAYS": "7",
        "EOPT_TUNING_TRIALS": "1",
        "EOPT_TRAINING_THREADS": "1",
        "EOPT_AIRFLOW_TASK_RETRIES": "0",
        "EOPT_AIRFLOW_DEADLINE_ALERTS": "0",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": databases["airflow"].replace("postgresql://", "postgresql+psycopg2://"),
        "AIRFLOW__CELERY__BROKER_URL": broker,
        # only the triggered run: no schedule starts the other DAGs' runs next to it
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    ports = Ports(*free_ports(3))
    lines: list[str] = []
    started = time.monotonic()
    pids: dict[str, int] = {}
    try:
        pids = up(settings, ports, lines.append, timeout_s=300, executor="celery", workers=2, worker_concurrency=2)
        assert sorted(pids) == sorted(
            [
                "airflow-api-server",
                "airflow-scheduler",
                "airflow-dag-processor",
                "celery-worker-1",
                "celery-worker-2",
                "mlflow",
                "sandbox",
            ]
        )
        base = f"http://127.0.0.1:{ports.airflow}"
        password = (settings.airflow.home / "admin-password").read_text().strip()
        token = request(f"{base}/auth/token", {"username": "admin", "password": password})["access_token"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # the dag-processor's first pass
            dags = {d["dag_id"] for d in request(f"{base}/api/v2/dags?limit=50", token=token)["dags"]}
            if "model_retraining" in dags:
                break
            time.sleep(2)
        run = request(
            f"{base}/api/v2/dags/model_retraining/dagRuns",
            {"logical_date": LOGICAL_DATE, "conf": {"regions": REGIONS}},
            token=token,
        )
        deadline, state = time.monotonic() + RUN_TIMEOUT_S, run["state"]
        while state not in ("success", "failed") and time.monotonic() < deadline:
            time.sleep(5)
            state = request(f"{base}/api/v2/dags/model_retraining/dagRuns/{run['dag_run_id']}", token=token)["state"]
        ran_s = time.monotonic() - started

        metadata = sa.create_engine(databases["airflow"])
        with metadata.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT task_id, map_index, state, hostname, queue, pid, external_executor_id "
                    "FROM task_instance WHERE dag_id = 'model_retraining' AND run_id = :run_id"
                ),
                {"run_id": run["dag_run_id"]},
            ).all()
            other_runs = conn.execute(
                sa.text("SELECT count(*) FROM dag_run WHERE run_id != :run_id"), {"run_id": run["dag_run_id"]}
            ).scalar_one()
        metadata.dispose()
        instances = pd.DataFrame(
            rows, columns=["task_id", "map_index", "state", "hostname", "queue", "pid", "celery_id"]
        )
        assert state == "success", instances.to_string() + "\n" + "\n".join(lines)
    finally:
        stopped = down(settings, lines.append)

    print(f"model_retraining for {len(REGIONS)} regions on two Celery workers: {ran_s:.0f} s from `up`")
    print(instances.groupby("hostname")["task_id"].count().to_string())
    assert other_runs == 0
    # every task of the four regions' groups ran, each on one of the two workers, through Celery
    assert set(instances["state"]) == {"success"}
    assert len(instances) == 1 + 4 * 9 and sorted(instances["map_index"].unique()) == [-1, 0, 1, 2, 3]
    host = instances["hostname"].iloc[0].split("@", 1)[1]
    assert set(instances["hostname"]) == {f"worker1@{host}", f"worker2@{host}"}
    assert set(instances["queue"]) == {"default"} and instances["celery_id"].notna().all()
    assert instances.groupby("hostname")["pid"].nunique().min() >= 2
    # the Optuna studies of every region sit in one PostgreSQL storage that both workers wrote to
    optuna = sa.create_engine(databases["optuna"])
    with optuna.connect() as conn:
        studies = [name for (name,) in conn.execute(sa.text("SELECT study_name FROM studies")).all()]
        trials = conn.execute(sa.text("SELECT count(*) FROM trials WHERE state = 'COMPLETE'")).scalar_one()
    optuna.dispose()
    assert {region for region in REGIONS if any(region in name for name in studies)} == set(REGIONS)
    assert trials >= len(studies) > 0
    tuned_on = set(instances.loc[instances["task_id"].str.startswith("train_"), "hostname"])
    print(f"{len(studies)} Optuna studies, {trials} complete trials; train_* tasks ran on {sorted(tuned_on)}")

    # everything `up` started is stopped: each process group is gone, no port answers, no pid file
    assert sorted(stopped) == sorted(pids)
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    assert not any(port_open(p) for p in (ports.airflow, ports.mlflow, ports.sandbox))
    assert list(run_dir(settings).glob("*.pid")) == []
    redis.Redis.from_url(broker).flushdb()


def test_up_celery__refuses_a_sqlite_metadata_database_before_starting_anything(tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.setenv("AIRFLOW__CELERY__BROKER_URL", f"redis://127.0.0.1:6379/{BROKER_DB}")
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    with pytest.raises(ServiceError, match="the CeleryExecutor needs a PostgreSQL metadata database, not sqlite"):
        up(settings, Ports(*free_ports(3)), executor="celery")
    assert not run_dir(settings).exists()
