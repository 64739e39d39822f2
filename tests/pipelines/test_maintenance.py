"""pipelines.maintenance on PostgreSQL (the product's store and the MLflow backend both), over 90 simulated
days (``tests.maintenance_history``); the embedded SQLite stores go through the same under ``airflow dags test``
in ``tests/dags/test_dag_maintenance.py``.

The dry run removes nothing and lists what the real run then removes; every store ends at its
bound; the forecasts left for old hours are their day-ahead issues; the champion, Production,
the rollback target and every model run still load; prices and promotion history are
untouched; a second run removes nothing.
"""

from __future__ import annotations

import uuid

import mlflow
import pandas as pd
import pytest
import sqlalchemy as sa

from core.settings import Settings
from pipelines.maintenance import STEPS, run_maintenance
from storage.database import create_store_engine
from storage.promotions import PromotionStore
from storage.schema import electricity_prices, forecasts, price_quarantine
from tests.conftest import POSTGRES_ADMIN_URL
from tests.maintenance_history import MODEL, QUALITY_DAYS, bounds, build_history, folder_bytes

pytestmark = pytest.mark.integration


@pytest.fixture
def mlflow_backend(postgres_admin):
    """A second PostgreSQL database, the MLflow backend beside the product's store."""
    admin = postgres_admin
    name = f"eopt_mlflow_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    # psycopg2, as the deployment's MLflow server has it (docker-compose.yml): with psycopg 3, MLflow 3.17's
    # registry compares the integer version column with a text parameter when archiving versions, and fails
    url = sa.make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg2", database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _state(engine: sa.Engine) -> dict:
    with engine.connect() as conn:
        prices = conn.execute(sa.select(electricity_prices).order_by(*electricity_prices.primary_key)).all()
        counts = {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (forecasts, price_quarantine)
        }
    return {
        "prices": prices,
        "promotions": PromotionStore(engine).history().to_json(orient="records", date_format="iso"),
        **counts,
    }


def test_run_maintenance__bounds_each_store__keeps_models_prices_and_history(postgres_url, mlflow_backend, tmp_path):
    store_url = postgres_url
    home = tmp_path / "eopt"
    settings = Settings.from_env(
        {"EOPT_HOME": str(home), "EOPT_DATABASE_URL": store_url, "MLFLOW_TRACKING_URI": mlflow_backend}
    )
    as_of = pd.Timestamp.now(tz="UTC").floor("h") + pd.Timedelta(minutes=30)
    history = build_history(settings, as_of, home / "airflow" / "logs")
    expected = bounds(history)
    engine = create_store_engine(store_url)
    client = history.client()
    before = _state(engine)
    files_before = {name: folder_bytes(home / name) for name in ("quality", "mlartifacts", "raw", "airflow")}

    def run(dry_run: bool):
        return run_maintenance(
            history.store, client, settings, as_of, history.log_folder, None, dry_run=dry_run, airflow_metadata=False
        )

    listed = run(dry_run=True)
    assert _state(engine) == before
    assert {name: folder_bytes(home / name) for name in files_before} == files_before
    removed = run(dry_run=False)
    assert [r.step for r in removed] == [s for s in STEPS if s != "clean_airflow_metadata"]
    for dry, real in zip(listed[:-1], removed[:-1], strict=True):  # all but vacuum_stores
        assert (real.removals, real.bytes) == (dry.removals, dry.bytes), real.step
    by_step = {r.step: r for r in removed}
    assert by_step["remove_quality_runs"].count == QUALITY_DAYS - expected.quality_runs

    # every store at its bound
    experiment = client.get_experiment_by_name(settings.quality.experiment)
    assert experiment is not None
    assert len(client.search_runs([experiment.experiment_id], "", max_results=1000)) == expected.quality_runs
    assert client.search_runs([experiment.experiment_id], "", run_view_type=mlflow.entities.ViewType.DELETED_ONLY) == []
    assert len(list((home / "quality").iterdir())) == expected.quality_runs
    payloads = [p for p in (home / "raw").rglob("*") if p.is_file()]
    assert (len(payloads), sum(p.stat().st_size for p in payloads)) == (expected.payload_files, expected.payload_bytes)
    log_files = [p for p in history.log_folder.rglob("*") if p.is_file()]
    assert len(log_files) == expected.log_files
    after = _state(engine)
    assert after["price_quarantine"] == expected.quarantine_rows
    assert after["forecasts"] == expected.forecast_rows
    assert by_step["remove_hourly_forecasts"].rows == before["forecasts"] - expected.forecast_rows
    cutoff = as_of - pd.Timedelta(days=settings.retention.forecast_hourly_days)
    with engine.connect() as conn:
        leads = conn.execute(
            sa.select(forecasts.c.target_ts, forecasts.c.issued_at).where(
                forecasts.c.target_ts < cutoff.to_pydatetime()
            )
        ).all()
    # an old hour keeps the issue made furthest ahead of it: 24 hours, or fewer at the history's start
    assert len(leads) == len({t for t, _ in leads})
    assert {
        pd.Timestamp(t) - pd.Timestamp(i)
        for t, i in leads
        if pd.Timestamp(i) >= pd.Timestamp(leads[0][1]) + pd.Timedelta(hours=24)
    } == {pd.Timedelta(hours=24)}

    # what is never removed
    assert after["prices"] == before["prices"] and after["promotions"] == before["promotions"]
    frame = pd.DataFrame({"x": [0.0]})
    for uri, price in (
        (f"models:/{MODEL}@champion", 2.0),
        (f"models:/{MODEL}/Production", 2.0),
        (f"models:/{MODEL}/1", 1.0),
    ):
        assert list(mlflow.pyfunc.load_model(uri).predict(frame)) == [price], uri
    assert {client.get_run(r).info.lifecycle_stage for r in history.model_run_ids.values()} == {"active"}

    again = run(dry_run=False)
    assert [(r.count, r.bytes) for r in again] == [(0, 0)] * len(again)
    engine.dispose()
