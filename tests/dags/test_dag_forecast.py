"""forecast_generation under the real `airflow dags test`: embedded store, real MLflow registry, NP and PJM history.

Each test has an EOPT_HOME of its own, a copy of one store built once per module, with no forecast and
no registered model, so any test runs alone or in any order: without a model every region falls back;
the champion test has model_retraining train NP (smoke budget, a short window) and promotes that
version, so NP is forecast by its model while PJM still falls back.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from core.markets import load_market
from core.quantiles import QUANTILE_COLUMNS
from registry.models import registered_model_name
from storage.database import create_store_engine, upgrade
from storage.forecasts import ForecastStore
from storage.prices import PriceStore
from tests.airflow_harness import AirflowHome
from tests.market_frames import store_with_history

pytestmark = pytest.mark.dag

DAG_ID = "forecast_generation"
ROOT = Path(__file__).resolve().parents[2]
REGIONS = ("NP", "PJM")
FIRST_RUN = "2018-12-25T02:00:00+00:00"  # just after NP's history ends (2018-12-24 22:00 UTC)
UTC = "UTC"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> AirflowHome:
    return AirflowHome.create(tmp_path_factory.mktemp("airflow"))


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    """An embedded store holding the last 150 days of NP and PJM and the last days of BE (ends 2016), built once."""
    folder = tmp_path_factory.mktemp("history")
    store_with_history(f"sqlite:///{folder / 'prices.db'}", {"NP": 150, "PJM": 150, "BE": 20}).engine.dispose()
    return folder


@pytest.fixture
def home(history, tmp_path) -> Path:
    """The test's own EOPT_HOME: a copy of that store, without forecasts or a model registry."""
    return Path(shutil.copytree(history, tmp_path / "eopt"))


def run_env(home: Path, **extra: str) -> dict[str, str]:
    return {
        "EOPT_HOME": str(home),
        "EOPT_REGIONS": ",".join(REGIONS),
        "EOPT_AIRFLOW_RETRY_DELAY_S": "1",
        "EOPT_AIRFLOW_TASK_RETRIES": "0",
        # `dags test` crashes after a successful run of a DAG with a deadline (apache/airflow#73428);
        # the alert itself is checked in test_forecast_dag__has_a_two_minute_deadline_and_the_documented_shape.
        "EOPT_AIRFLOW_DEADLINE_ALERTS": "0",
        **extra,
    }


def forecasts(home: Path) -> ForecastStore:
    return ForecastStore(create_store_engine(f"sqlite:///{home / 'prices.db'}"))


def counts(home: Path) -> dict[tuple[str, str], int]:
    with forecasts(home).engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT region, issued_at, count(*) FROM forecasts GROUP BY region, issued_at")
        ).all()
    return {(r, str(i)): n for r, i, n in rows}


def prices(region: str) -> pd.Series:
    return load_market(region, ROOT / "data" / "markets").prices.set_index("ts")["price"]


def test_forecast_dag__has_a_two_minute_deadline_and_the_documented_shape(airflow):
    script = (
        "from airflow.dag_processing.dagbag import BundleDagBag; import jinja2, json, os, types\n"
        "folder = os.environ['AIRFLOW__CORE__DAGS_FOLDER']\n"
        "bag = BundleDagBag(dag_folder=folder, bundle_path=folder)\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "dag = bag.get_dag('forecast_generation')\n"
        "alert = dag.deadline[0] if isinstance(dag.deadline, list) else dag.deadline\n"
        "print(json.dumps({'schedule': str(dag.schedule), 'catchup': dag.catchup,"
        " 'max_active_runs': dag.max_active_runs, 'timeout_s': dag.dagrun_timeout.total_seconds(),"
        " 'start': dag.start_date.isoformat(),"
        " 'interval_s': alert.interval.total_seconds(), 'reference': type(alert.reference).__name__,"
        " 'callback': alert.callback.path, 'tasks': sorted(dag.task_ids),"
        " 'upstream': {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},"
        " 'rules': {t.task_id: t.trigger_rule.value for t in dag.tasks},"
        " 'mapped': sorted(t.task_id for t in dag.tasks if t.get_closest_mapped_task_group() is not None),"
        " 'labels': sorted({jinja2.Template(t.map_index_template).render(task=types.SimpleNamespace(op_kwargs={'zones': z}))"
        " for t in dag.tasks if t.task_id != 'check_model_ready'"
        " for z in (['NP', 'PJM'], [f'SYN_{i:03d}' for i in range(25)], [f'SYN_{i:03d}' for i in range(26)])})}))\n"
    )
    shape = json.loads(airflow.run_python(script).stdout.strip().splitlines()[-1])  # deadline alerts on (default)
    assert shape["schedule"] == "0 * * * *" and shape["catchup"] is False and shape["max_active_runs"] == 1
    assert shape["timeout_s"] == 600 and shape["start"] == "2011-01-01T00:00:00+00:00"
    assert shape["interval_s"] == 120 and "QueuedAt" in shape["reference"]
    assert shape["callback"] == "quality.alerts.deadline_missed"
    assert shape["tasks"] == sorted(
        ["check_model_ready", "prepare_features", "generate_forecasts", "store_forecasts", "update_forecast_cache"]
    )
    # check_model_ready's chunks of zones feed a task group mapped per chunk
    assert shape["upstream"] == {
        "check_model_ready": [],
        "prepare_features": ["check_model_ready"],
        "generate_forecasts": ["check_model_ready", "prepare_features"],
        "store_forecasts": ["check_model_ready", "generate_forecasts"],
        "update_forecast_cache": ["check_model_ready", "store_forecasts"],
    }
    assert shape["mapped"] == ["generate_forecasts", "prepare_features", "store_forecasts", "update_forecast_cache"]
    assert set(shape["rules"].values()) == {"all_success"}
    # each chunk's instances are named by its zones; past 200 characters by the first, the last and how many
    assert shape["labels"] == sorted(
        ["NP,PJM", ",".join(f"SYN_{i:03d}" for i in range(25)), "SYN_000..SYN_025 (26 zones)"]
    )

    without = airflow.run_python(
        script.replace(
            "alert = dag.deadline[0] if isinstance(dag.deadline, list) else dag.deadline",
            "print(json.dumps({'deadline': repr(dag.deadline)})); raise SystemExit",
        ),
        extra_env={"EOPT_AIRFLOW_DEADLINE_ALERTS": "0"},
    )
    assert json.loads(without.stdout.strip().splitlines()[-1]) == {"deadline": "None"}


def test_forecast_dag__without_models_stores_24_fallback_hours_per_region_and_reruns_as_a_no_op(airflow, home):
    first = airflow.dags_test(DAG_ID, FIRST_RUN, extra_env=run_env(home))
    assert first.returncode == 0, (first.stdout + first.stderr)[-6000:]
    assert set(airflow.task_states(DAG_ID).values()) == {"success"}
    assert airflow.xcoms(DAG_ID, "check_model_ready") == {"check_model_ready": [list(REGIONS)]}  # one chunk
    assert set(airflow.task_states(DAG_ID)) == {
        "check_model_ready",
        *(
            f"{t}[NP,PJM]"
            for t in ("prepare_features", "generate_forecasts", "store_forecasts", "update_forecast_cache")
        ),
    }
    issued = pd.Timestamp(FIRST_RUN)
    assert counts(home) == {("NP", "2018-12-25 02:00:00.000000"): 24, ("PJM", "2018-12-25 02:00:00.000000"): 24}
    generated = airflow.xcoms(DAG_ID, "generate_forecasts")["generate_forecasts[NP,PJM]"]
    assert generated["failed"] == {}
    for region, origin in (("NP", "2018-12-24 23:00"), ("PJM", "2018-12-25 02:00")):
        stored = forecasts(home).read_forecasts(region, issued)
        targets = pd.date_range(pd.Timestamp(origin, tz=UTC), periods=24, freq="h")
        assert list(stored["target_ts"]) == list(targets)
        assert stored["is_fallback"].all() and set(stored["model_name"]) == {"seasonal-naive"}
        assert stored["yhat"].tolist() == prices(region).reindex(targets - pd.Timedelta(hours=168)).tolist()
        assert stored["lower"].isna().all()
        summary = generated["forecasts"][region]
        assert summary["is_fallback"] is True and summary["model"] == "seasonal-naive"
        assert summary["reason"].startswith(f"no Production model for {region}")
    assert airflow.xcoms(DAG_ID, "store_forecasts") == {  # one upsert for the chunk
        "store_forecasts[NP,PJM]": {"stored": list(REGIONS), "inserted": 48, "updated": 0, "unchanged": 0}
    }
    cached = airflow.xcoms(DAG_ID, "update_forecast_cache")["update_forecast_cache[NP,PJM]"]["cached"]
    assert {r: (c["key"], c["issued_at"], c["ok"]) for r, c in cached.items()} == {
        r: (f"eopt:forecast:latest:{r}", "2018-12-25 02:00:00+00:00", True) for r in REGIONS
    }

    second = airflow.dags_test(DAG_ID, FIRST_RUN, extra_env=run_env(home))
    assert second.returncode == 0, second.stdout[-4000:]
    assert airflow.xcoms(DAG_ID, "store_forecasts") == {
        "store_forecasts[NP,PJM]": {"stored": list(REGIONS), "inserted": 0, "updated": 0, "unchanged": 48}
    }
    assert sum(counts(home).values()) == 48


def test_forecast_dag__a_stale_zone_fails_its_chunk_after_the_chunks_other_zones_are_stored_and_cached(airflow, home):
    result = airflow.dags_test(
        DAG_ID, "2018-12-25T05:00:00+00:00", conf={"regions": ["NP", "BE"]}, extra_env=run_env(home)
    )
    assert result.returncode == 1  # the run failed: the chunk's square is red
    assert airflow.xcoms(DAG_ID, "check_model_ready") == {"check_model_ready": [["NP", "BE"]]}
    # BE's request could not be prepared; NP went on through every task, and the chunk failed at its end
    assert airflow.task_states(DAG_ID) == {
        "check_model_ready": "success",
        "prepare_features[NP,BE]": "success",
        "generate_forecasts[NP,BE]": "success",
        "store_forecasts[NP,BE]": "success",
        "update_forecast_cache[NP,BE]": "failed",
    }
    prepared = airflow.xcoms(DAG_ID, "prepare_features")["prepare_features[NP,BE]"]
    assert prepared["prepared"] == {"NP": "2018-12-24 23:00:00+00:00"} and list(prepared["failed"]) == ["BE"]
    assert airflow.xcoms(DAG_ID, "store_forecasts") == {
        "store_forecasts[NP,BE]": {"stored": ["NP"], "inserted": 24, "updated": 0, "unchanged": 0}
    }
    log = result.stdout + result.stderr  # the failure names the zone, its newest price and what to check
    stale = (
        "BE in prepare_features: StaleDataError: BE: newest price is 2016-12-31 22:00:00+00:00, 17359 h before the "
        "run at 2018-12-25 05:00:00+00:00"
    )
    assert f"ZonesNotForecast: 1 of 2 zone(s) not forecast (the other 1 stored and cached): {stale}" in log
    assert "check the electricity_price_ingestion DAG for this region" in log
    assert "BE: not forecast (prepare_features failed for this zone): StaleDataError: BE: newest price" in log
    assert "cache eopt:forecast:latest:NP: issued 2018-12-25 05:00:00+00:00, ok" in log
    assert counts(home) == {("NP", "2018-12-25 05:00:00.000000"): 24}  # NP stored, nothing of BE


def test_forecast_dag__a_zone_not_even_the_fallback_can_forecast_fails_its_own_chunk_while_the_others_are_stored(
    airflow, tmp_path
):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'prices.db'}")
    upgrade(engine)
    store = PriceStore(engine)
    for region in REGIONS:
        history = load_market(region, ROOT / "data" / "markets")
        cut = history.between(history.prices["ts"].max() - pd.Timedelta(days=20), None)
        if region == "NP":  # a week before the first target hours (2018-12-24 23:00 ..) the prices are missing
            gap = cut.prices["ts"].between(
                pd.Timestamp("2018-12-17 23:00", tz=UTC), pd.Timestamp("2018-12-18 01:00", tz=UTC)
            )
            cut = type(cut)(cut.market, cut.prices[~gap], cut.exogenous)
        store.upsert_history(cut.prices, cut.exogenous)
    engine.dispose()

    # one zone per chunk: NP's chunk fails at its end, PJM's chunk is all green
    result = airflow.dags_test(DAG_ID, FIRST_RUN, extra_env=run_env(tmp_path, EOPT_FORECAST_CHUNK_ZONES="1"))
    assert result.returncode == 1, (result.stdout + result.stderr)[-6000:]
    assert airflow.xcoms(DAG_ID, "check_model_ready") == {"check_model_ready": [["NP"], ["PJM"]]}, (
        result.stdout + result.stderr
    )[-6000:]
    steps = ("prepare_features", "generate_forecasts", "store_forecasts", "update_forecast_cache")
    assert airflow.task_states(DAG_ID) == {
        "check_model_ready": "success",
        **{f"{t}[NP]": "success" for t in steps[:-1]},
        "update_forecast_cache[NP]": "failed",
        **{f"{t}[PJM]": "success" for t in steps},
    }
    error = (
        "ForecastError: NP: cannot fall back to the seasonal naive "
        "either: no price 168 h before 3 target hour(s) (2018-12-24 23:00:00+00:00, 2018-12-25 00:00:00+00:00, "
        "2018-12-25 01:00:00+00:00)"
    )
    failure = f"ZonesNotForecast: 1 of 1 zone(s) not forecast (the other 0 stored and cached): NP in generate_forecasts: {error}"
    assert failure in result.stdout + result.stderr
    generated = airflow.xcoms(DAG_ID, "generate_forecasts")
    assert generated["generate_forecasts[NP]"]["forecasts"] == {}
    assert generated["generate_forecasts[NP]"]["failed"]["NP"].startswith(error)
    assert generated["generate_forecasts[PJM]"]["failed"] == {}
    assert airflow.xcoms(DAG_ID, "store_forecasts") == {
        "store_forecasts[NP]": {"stored": [], "inserted": 0, "updated": 0, "unchanged": 0},
        "store_forecasts[PJM]": {"stored": ["PJM"], "inserted": 24, "updated": 0, "unchanged": 0},
    }
    assert counts(tmp_path) == {("PJM", "2018-12-25 02:00:00.000000"): 24}


def test_forecast_dag__forecasts_with_the_champion_once_one_is_promoted_and_falls_back_elsewhere(airflow, home):
    training = {
        "EOPT_TRAINING_BUDGET": "smoke",
        "EOPT_TRAINING_WINDOW_DAYS": "120",
        "EOPT_VALIDATION_DAYS": "14",
        "EOPT_TEST_DAYS": "14",
        "EOPT_TRAINING_THREADS": "1",
    }
    retrained = airflow.dags_test(
        "model_retraining", FIRST_RUN, conf={"regions": ["NP"]}, extra_env=run_env(home, **training), timeout=900
    )
    assert retrained.returncode == 0, retrained.stdout[-4000:] + retrained.stderr[-4000:]
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    name = registered_model_name("NP")
    # the retraining's gate promoted or archived it; either way the test makes it the champion
    version = max(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, version, "Production", archive_existing_versions=True)
    client.set_registered_model_alias(name, "champion", version)

    result = airflow.dags_test(DAG_ID, "2018-12-25T03:00:00+00:00", extra_env=run_env(home))
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    issued = pd.Timestamp("2018-12-25 03:00", tz=UTC)
    np_forecast = forecasts(home).read_forecasts("NP", issued)
    assert len(np_forecast) == 24 and not np_forecast["is_fallback"].any()
    assert set(np_forecast["model_name"]) == {name} and set(np_forecast["model_version"]) == {str(version)}
    assert np_forecast[["yhat", "lower", "upper", *QUANTILE_COLUMNS]].notna().all().all()
    assert (np.diff(np_forecast[list(QUANTILE_COLUMNS)].to_numpy(), axis=1) >= 0).all()  # monotone on every row
    # the 90% interval is the 0.05 and 0.95 quantiles (with 14 validation days these are the extreme residuals of
    # each horizon, which need not straddle the point forecast)
    assert np_forecast["lower"].tolist() == np_forecast["q05"].tolist()
    assert np_forecast["upper"].tolist() == np_forecast["q95"].tolist()
    pjm = forecasts(home).read_forecasts("PJM", issued)
    assert len(pjm) == 24 and pjm["is_fallback"].all() and pjm[list(QUANTILE_COLUMNS)].isna().all().all()
    generated = airflow.xcoms(DAG_ID, "generate_forecasts")["generate_forecasts[NP,PJM]"]
    assert generated["failed"] == {}
    assert generated["forecasts"]["NP"] == {
        "model": name,
        "version": str(version),
        "is_fallback": False,
        "reason": None,
    }
    assert generated["forecasts"]["PJM"]["reason"].startswith("no Production model for PJM")


@pytest.mark.integration
def test_forecast_dag__publishes_each_regions_newest_forecast_to_redis(airflow, home, redis_url):
    result = airflow.dags_test(DAG_ID, "2018-12-25T06:00:00+00:00", extra_env=run_env(home, REDIS_URL=redis_url))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    for region in REGIONS:
        document = json.loads(client.get(f"eopt:forecast:latest:{region}"))
        stored = forecasts(home).read_forecasts(region)
        assert document["issued_at"] == "2018-12-25T06:00:00+00:00" and document["region"] == region
        assert document["model_name"] == stored["model_name"].iloc[0]
        assert document["is_fallback"] == bool(stored["is_fallback"].iloc[0])
        assert [p["target_ts"] for p in document["points"]] == [t.isoformat() for t in stored["target_ts"]]
        assert [p["yhat"] for p in document["points"]] == stored["yhat"].tolist()
        for column in QUANTILE_COLUMNS:  # null where the store holds NULL (the fallback)
            assert [p[column] for p in document["points"]] == [None if np.isnan(v) else v for v in stored[column]]
        assert 0 < client.ttl(f"eopt:forecast:latest:{region}") <= 7200
