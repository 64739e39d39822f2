"""maintenance (daily) and maintenance_weekly under the real `airflow dags test`: 90 days of simulated history
in a temporary home.

The home holds what ``tests.maintenance_history`` builds (data-quality runs and report folders,
payloads and quarantine rows, hourly forecasts, task logs in the Airflow home, NP's model
through promotions, a rejection and a rollback). A dry run first: every step lists what it would
remove and nothing changes. Then the DAG run removes exactly that list: each store drops to its
bound, the champion, Production and the rollback target still load and answer, promotion
history and prices are untouched. A second pass removes nothing.
"""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
import sqlalchemy as sa

from core.settings import Settings
from pipelines.maintenance import DAG_TASKS, STEPS, run_maintenance
from retention.quality_runs import artifact_folder
from storage.database import create_store_engine, upgrade
from storage.maintenance import MaintenanceRunStore
from storage.promotions import PromotionStore
from storage.schema import electricity_prices, forecasts
from tests.airflow_harness import AirflowHome
from tests.maintenance_history import (
    DRIFT_BYTES,
    LOG_BYTES,
    MODEL,
    REPORT_BYTES,
    build_history,
    folder_bytes,
)

pytestmark = pytest.mark.dag

DAG_ID = "maintenance"
WEEKLY = "maintenance_weekly"


def _snapshot(settings: Settings) -> dict:
    engine = create_store_engine(settings.stores.database_url)
    try:
        with engine.connect() as conn:
            prices = conn.execute(sa.select(electricity_prices).order_by(*electricity_prices.primary_key)).all()
            forecast_rows = conn.execute(sa.select(sa.func.count()).select_from(forecasts)).scalar_one()
        promotions = PromotionStore(engine).history()
    finally:
        engine.dispose()
    home = settings.stores.home
    return {
        "prices": prices,
        "promotions": promotions.to_json(orient="records", date_format="iso"),
        "forecasts": forecast_rows,
        "bytes": {name: folder_bytes(home / name) for name in ("quality", "mlartifacts", "raw")},
    }


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> AirflowHome:
    return AirflowHome.create(tmp_path_factory.mktemp("airflow"))


def test_maintenance_dag__dry_run_lists__real_run_removes_the_same__stores_drop_to_their_bounds(airflow, tmp_path):
    import mlflow

    as_of = pd.Timestamp.now(tz="UTC").floor("h") + pd.Timedelta(minutes=30)  # as scheduled: half past the hour
    env = {"EOPT_HOME": str(tmp_path / "eopt"), "EOPT_AIRFLOW_DEADLINE_ALERTS": "0", "EOPT_LOG_LEVEL": "WARNING"}
    settings = Settings.from_env(env)
    history = build_history(settings, as_of, airflow.home / "logs")
    before = _snapshot(settings)

    # the dry run, in-process (a DAG run with conf {"dry_run": true} calls the same functions)
    dry = run_maintenance(
        history.store,
        history.client(),
        settings,
        as_of,
        airflow.home / "logs",
        None,
        dry_run=True,
        airflow_metadata=False,
    )
    listed = {report.step: report.to_dict() for report in dry}
    assert _snapshot(settings) == before, "a dry run removed something"
    assert listed["remove_quality_runs"]["count"] == 60  # days 31..90
    assert listed["remove_quality_runs"]["bytes"] == 60 * (REPORT_BYTES + DRIFT_BYTES)
    assert listed["remove_airflow_logs"]["count"] == 60
    assert listed["remove_airflow_logs"]["bytes"] == 60 * LOG_BYTES

    # Airflow's own audit rows (`airflow db migrate`, `pools import`) made 100 days old: past the metadata bound
    with sqlite3.connect(airflow.home / "airflow.db") as db:
        aged = db.execute("UPDATE log SET dttm = ?", ((as_of - pd.Timedelta(days=100)).isoformat(),)).rowcount
    assert aged > 0

    removed = {}
    for dag_id in (DAG_ID, WEEKLY):
        real = airflow.dags_test(dag_id, as_of.isoformat(), extra_env=env)
        assert real.returncode == 0, real.stdout[-3000:] + real.stderr[-3000:]
        states = airflow.task_states(dag_id)
        assert set(states) == set(DAG_TASKS[dag_id]) and set(states.values()) == {"success"}, dag_id
        removed.update({step: airflow.xcoms(dag_id, step)[step] for step in STEPS if step in states})
    assert set(removed) == set(STEPS)
    metadata = removed["clean_airflow_metadata"]
    assert metadata["items"] == [f"Airflow table log: {aged} row(s) before {as_of - pd.Timedelta(days=90):%Y-%m-%d}"]
    with sqlite3.connect(airflow.home / "airflow.db") as db:
        assert db.execute(
            "SELECT count(*) FROM log WHERE dttm < ?", ((as_of - pd.Timedelta(days=90)).isoformat(),)
        ).fetchone() == (0,)
    for step in listed:
        if step == "vacuum_stores":
            continue
        same = ("count", "bytes", "rows", "items")
        assert {k: removed[step][k] for k in same} == {k: listed[step][k] for k in same}, step
        assert removed[step]["dry_run"] is False

    # each task's real run is recorded: what `eopt metrics serve` exports as its last success
    engine = create_store_engine(settings.stores.database_url)
    successes = MaintenanceRunStore(engine).last_successes().set_index("step")
    engine.dispose()
    assert sorted(successes.index) == sorted([*STEPS, "evaluate_models"])
    assert successes.loc["remove_quality_runs", "bytes"] == 60 * (REPORT_BYTES + DRIFT_BYTES)

    after = _snapshot(settings)
    assert after["prices"] == before["prices"] and after["promotions"] == before["promotions"]
    quality = settings.quality.experiment
    client = history.client()
    experiment = client.get_experiment_by_name(quality)
    assert experiment is not None
    kept_runs = client.search_runs([experiment.experiment_id], "", max_results=1000)
    assert len(kept_runs) == 30
    assert after["bytes"]["quality"] == 30 * (REPORT_BYTES + DRIFT_BYTES)
    assert sum(folder_bytes(artifact_folder(run)) for run in kept_runs) == 30 * (REPORT_BYTES + DRIFT_BYTES)
    # the model runs' artifacts share the root: only the 60 old data-quality runs' left it, and the weekly
    # model evaluation's report (its tables and trend picture) came
    evaluation = client.get_run(airflow.xcoms(WEEKLY, "evaluate_models")["evaluate_models"]["mlflow_run_id"])
    report_bytes = folder_bytes(artifact_folder(evaluation))
    assert report_bytes > 0
    assert after["bytes"]["mlartifacts"] == (
        before["bytes"]["mlartifacts"] - 60 * (REPORT_BYTES + DRIFT_BYTES) + report_bytes
    )
    log_files = [p for p in (airflow.home / "logs" / "dag_id=data_quality").rglob("*") if p.is_file()]
    assert len(log_files) == 30 and sum(p.stat().st_size for p in log_files) == 30 * LOG_BYTES

    frame = pd.DataFrame({"x": [0.0, 1.0]})
    for uri, price in (
        (f"models:/{MODEL}@champion", 2.0),
        (f"models:/{MODEL}/Production", 2.0),
        (f"models:/{MODEL}/1", 1.0),  # the rollback target
        (f"models:/{MODEL}/4", 4.0),  # the champion before the rollback
    ):
        assert list(mlflow.pyfunc.load_model(uri).predict(frame)) == [price, price], uri
    for run in history.model_run_ids.values():
        assert client.get_run(run).info.lifecycle_stage == "active"

    again = run_maintenance(
        history.store,
        client,
        settings,
        as_of + pd.Timedelta(minutes=1),
        airflow.home / "logs",
        None,
        dry_run=False,
        airflow_metadata=False,
    )
    assert [(r.step, r.count, r.bytes) for r in again] == [(s, 0, 0) for s in STEPS if s != "clean_airflow_metadata"]


def test_maintenance_dags__a_failed_task_fails_its_run__the_others_still_run(airflow, tmp_path):
    env = {
        "EOPT_HOME": str(tmp_path / "eopt"),
        "EOPT_AIRFLOW_DEADLINE_ALERTS": "0",
        "EOPT_AIRFLOW_TASK_RETRIES": "0",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # nothing listens: remove_quality_runs cannot reach MLflow
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
    }
    engine = create_store_engine(Settings.from_env(env).stores.database_url)
    upgrade(engine)
    engine.dispose()
    logical_date = pd.Timestamp("2026-01-01 03:30", tz="UTC").isoformat()

    # the tasks that need MLflow fail
    needs_mlflow = {DAG_ID: ("remove_quality_runs", "remove_rejected_versions"), WEEKLY: ("evaluate_models",)}
    for dag_id, failing in needs_mlflow.items():
        result = airflow.dags_test(dag_id, logical_date, extra_env=env)
        assert result.returncode != 0
        states = airflow.task_states(dag_id)
        assert set(states) == set(DAG_TASKS[dag_id])
        assert [states.pop(task) for task in failing] == ["failed"] * len(failing)
        assert set(states.values()) == {"success"}, dag_id  # the others (in the weekly DAG: clean, then vacuum) ran
        with sqlite3.connect(airflow.home / "airflow.db") as db:
            assert db.execute("SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC", (dag_id,)).fetchone() == (
                "failed",
            )
