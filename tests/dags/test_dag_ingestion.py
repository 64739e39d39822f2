"""electricity_price_ingestion under the real `airflow dags test`, against the real sandbox server."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import redis
import sqlalchemy as sa

from ingestion.sandbox.server import DEFAULT_CREDENTIALS, Fault
from storage.database import create_store_engine, upgrade
from storage.health import ApiHealthStore, QuarantineStore
from storage.prices import PriceStore
from tests.airflow_harness import AirflowHome, connection_env

pytestmark = pytest.mark.dag

DAG_ID = "electricity_price_ingestion"
LOGICAL_DATE = "2016-06-01T12:00:00+00:00"  # inside every market's bundled history
FAST_RETRY = {"max_attempts": 2, "backoff_base_s": 0.05, "read_timeout_s": 10, "provider_budget_s": 30}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> AirflowHome:
    return AirflowHome.create(tmp_path_factory.mktemp("airflow"))


def provider_connections(sandbox_url: str) -> dict[str, str]:
    env = {}
    env.update(
        connection_env(
            "flatpeak_default",
            login=DEFAULT_CREDENTIALS["flatpeak"]["account_id"],
            password=DEFAULT_CREDENTIALS["flatpeak"]["api_key"],
            extra={"base_url": f"{sandbox_url}/flatpeak", **FAST_RETRY},
        )
    )
    env.update(
        connection_env(
            "nrel_default",
            password=DEFAULT_CREDENTIALS["nrel"]["api_key"],
            extra={
                "base_url": f"{sandbox_url}/nrel",
                "openei_base_url": f"{sandbox_url}/openei",
                **FAST_RETRY,
                **{f"openei_{k}": v for k, v in FAST_RETRY.items()},
            },
        )
    )
    env.update(connection_env("iea_default", extra={"base_url": f"{sandbox_url}/iea", **FAST_RETRY}))
    env.update(
        connection_env(
            "entsoe_default",
            password=DEFAULT_CREDENTIALS["entsoe"]["token"],
            extra={"base_url": f"{sandbox_url}/entsoe", **FAST_RETRY},
        )
    )
    return env


def run_env(tmp_path, store_url: str, sandbox_url: str, redis_url: str | None = None) -> dict[str, str]:
    env = {
        "EOPT_HOME": str(tmp_path / "eopt"),
        "EOPT_DATABASE_URL": store_url,
        "EOPT_AIRFLOW_RETRY_DELAY_S": "1",
        "EOPT_AIRFLOW_TASK_RETRIES": "0",
        # `dags test` crashes after a successful run of a DAG with a deadline (apache/airflow#73428);
        # the alert itself is checked in test_ingestion_dag__has_a_five_minute_deadline_alert.
        "EOPT_AIRFLOW_DEADLINE_ALERTS": "0",
        **provider_connections(sandbox_url),
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def migrated_store(url: str) -> PriceStore:
    engine = create_store_engine(url)
    upgrade(engine)
    return PriceStore(engine)


def counts_by_region_and_source(store: PriceStore) -> dict[tuple[str, str], int]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT region, source, count(*) FROM electricity_prices GROUP BY region, source")
        ).all()
    return {(r, s): n for r, s, n in rows}


@pytest.mark.integration
def test_ingestion_dag__stores_every_region_in_postgresql_refreshes_redis_and_reruns_as_a_no_op(
    airflow, sandbox, tmp_path, postgres_url, redis_url
):
    store = migrated_store(postgres_url)
    env = run_env(tmp_path, postgres_url, sandbox.url, redis_url)

    first = airflow.dags_test(DAG_ID, LOGICAL_DATE, conf={"force": True}, extra_env=env)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-6000:]

    counts = counts_by_region_and_source(store)
    # the window is [run - 24 h, run + 24 h): 48 hours per region and source
    assert counts[("BE", "entsoe")] == 48 and counts[("FR", "entsoe")] == 48
    assert counts[("NP", "iea")] == 48 and counts[("PJM", "openei")] == 48 and counts[("PJM", "nrel")] == 48
    assert {region for region, _ in counts} == {"NP", "PJM", "BE", "FR"}
    be = store.read_prices("BE", source="entsoe")
    assert be["ts"].min() == pd.Timestamp("2016-05-31 12:00", tz="UTC")
    replay = sandbox.history.hourly("BE", be["ts"].min(), be["ts"].max() + pd.Timedelta(hours=1))
    assert be["price"].round(6).tolist() == replay.round(6).tolist()

    exogenous = store.read_exogenous("BE", source="entsoe")  # ENTSO-E's A65 and A69 forecasts, hourly
    assert list(exogenous.columns) == ["system_load_forecast", "wind_solar_forecast"] and len(exogenous) == 48
    assert exogenous.index[0] == pd.Timestamp("2016-05-31 12:00", tz="UTC")
    load = sandbox.history.exogenous(
        "BE", "system_load_forecast", exogenous.index[0], be["ts"].max() + pd.Timedelta(hours=1)
    )
    assert exogenous["system_load_forecast"].round(2).tolist() == load.round(2).tolist()

    cached = json.loads(redis.Redis.from_url(redis_url).get("eopt:prices:latest:BE"))
    assert len(cached["points"]) == 24 and cached["points"][-1]["source"] == "entsoe"
    assert ApiHealthStore(store.engine).read()["status"].eq("ok").all()

    second = airflow.dags_test(DAG_ID, LOGICAL_DATE, conf={"force": True}, extra_env=env)
    assert second.returncode == 0, second.stdout[-6000:]
    assert counts_by_region_and_source(store) == counts
    [stored] = airflow.xcoms(DAG_ID, "store_prices").values()
    assert (stored["inserted"], stored["updated"], stored["unchanged"]) == (0, 0, sum(counts.values()))
    assert stored["exogenous"] == {"inserted": 0, "updated": 0, "unchanged": 2 * 2 * 48}
    assert stored["regions"] == ["BE", "FR", "NP", "PJM"]


def test_ingestion_dag__stores_in_sqlite_and_short_circuits_when_nothing_new_can_be_published(
    airflow, sandbox, tmp_path
):
    url = f"sqlite:///{tmp_path / 'prices.db'}"
    store = migrated_store(url)
    env = run_env(tmp_path, url, sandbox.url)

    first = airflow.dags_test(DAG_ID, LOGICAL_DATE, extra_env=env)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-6000:]
    stored = store.count_prices()
    assert {r for r, _ in counts_by_region_and_source(store)} == {"NP", "PJM", "BE", "FR"}

    calls_before = sum(sandbox.stats.values())
    second = airflow.dags_test(DAG_ID, LOGICAL_DATE, extra_env=env)
    assert second.returncode == 0
    states = airflow.task_states(DAG_ID)  # check_markets_open found nothing new: everything after it is skipped
    assert states["check_api_health"] == states["check_markets_open"] == "success"
    assert {t for t, state in states.items() if state != "skipped"} == {"check_api_health", "check_markets_open"}
    assert sum(sandbox.stats.values()) == calls_before  # short-circuited: no provider was called
    assert store.count_prices() == stored


def test_ingestion_dag__one_failing_provider_does_not_lose_the_others(airflow, sandbox, tmp_path):
    url = f"sqlite:///{tmp_path / 'prices.db'}"
    store = migrated_store(url)
    sandbox.set_faults({"entsoe": Fault("500"), "iea": Fault("429-bare")})

    result = airflow.dags_test(
        DAG_ID, LOGICAL_DATE, conf={"force": True}, extra_env=run_env(tmp_path, url, sandbox.url)
    )
    states = airflow.task_states(DAG_ID)
    assert (states["fetch_entsoe"], states["fetch_iea"]) == ("failed", "failed")  # red, each naming its provider
    assert {states[t] for t in ("fetch_flatpeak", "fetch_nrel", "aggregate_prices", "store_prices")} == {"success"}

    counts = counts_by_region_and_source(store)
    assert ("BE", "entsoe") not in counts and ("NP", "iea") not in counts
    assert counts[("PJM", "openei")] == 48 and counts[("BE", "flatpeak")] == 48  # the others' rows are stored
    health = ApiHealthStore(store.engine).read()
    entsoe = health[health["source"] == "entsoe"]
    # two regions x three documents (A44 prices, A65 load, A69 wind and solar) x two attempts
    assert len(entsoe) == 2 * 3 * 2 and set(entsoe["http_status"]) == {500} and set(entsoe["status"]) == {"error"}
    assert set(health.loc[health["source"] == "iea", "http_status"]) == {429}
    log = result.stdout + result.stderr  # the failed tasks' errors say which provider and why
    assert "provider entsoe failed for this cycle" in log and "gave up after 2 attempts: HTTP 500" in log
    assert "provider iea failed for this cycle" in log and "still rate limited after 2 attempts" in log


def test_ingestion_dag__a_malformed_payload_is_archived_and_quarantined(airflow, sandbox, tmp_path):
    url = f"sqlite:///{tmp_path / 'prices.db'}"
    store = migrated_store(url)
    sandbox.set_faults({"entsoe": Fault("malformed")})

    airflow.dags_test(DAG_ID, LOGICAL_DATE, conf={"force": True}, extra_env=run_env(tmp_path, url, sandbox.url))

    quarantined = QuarantineStore(store.engine).read(source="entsoe")
    # per region the A44 prices, the A65 load and the A69 wind and solar forecast answers
    assert len(quarantined) == 2 * 3 and set(quarantined["region"]) == {"BE", "FR"}
    roots = []
    for ref in quarantined["payload_ref"]:
        body = Path(ref).read_bytes()
        root = b"GL_MarketDocument" if b"<GL_MarketDocument" in body else b"Publication_MarketDocument"
        assert body.startswith(b"<?xml") and not body.rstrip().endswith(b"</" + root + b">")
        roots.append(root)
    assert sorted(roots).count(b"GL_MarketDocument") == 4
    assert ("BE", "entsoe") not in counts_by_region_and_source(store)
    assert store.read_exogenous("BE").empty


def test_ingestion_dag__has_a_five_minute_deadline_alert_and_the_documented_shape(airflow):
    script = (
        "from airflow.dag_processing.dagbag import BundleDagBag; import json, os\n"
        "folder = os.environ['AIRFLOW__CORE__DAGS_FOLDER']\n"
        "bag = BundleDagBag(dag_folder=folder, bundle_path=folder)\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "dag = bag.get_dag('electricity_price_ingestion')\n"
        "alert = dag.deadline[0] if isinstance(dag.deadline, list) else dag.deadline\n"
        "print(json.dumps({'schedule': str(dag.schedule), 'catchup': dag.catchup,"
        " 'interval_s': alert.interval.total_seconds(), 'reference': type(alert.reference).__name__,"
        " 'callback': alert.callback.path, 'tasks': sorted(dag.task_ids),"
        " 'pools': sorted({t.pool for t in dag.tasks if t.task_id.startswith('fetch_')}),"
        " 'fetch_limits': sorted({(t.retries, t.execution_timeout.total_seconds())"
        " for t in dag.tasks if t.task_id.startswith('fetch_')}),"
        " 'aggregate_rule': dag.get_task('aggregate_prices').trigger_rule.value}))\n"
    )
    result = airflow.run_python(script)
    shape = json.loads(result.stdout.strip().splitlines()[-1])
    assert shape["schedule"] == "*/15 * * * *" and shape["catchup"] is False
    assert shape["interval_s"] == 300 and "QueuedAt" in shape["reference"]
    assert shape["callback"] == "quality.alerts.deadline_missed"
    assert shape["pools"] == ["pricing_api_pool"] and shape["aggregate_rule"] == "all_done"
    # a fetch retries within its provider's budget (180 s), never again through Airflow: 210 s < the 5-minute deadline
    assert shape["fetch_limits"] == [[0, 210.0]]
    assert {
        "check_api_health",
        "check_markets_open",
        "fetch_flatpeak",
        "fetch_nrel",
        "fetch_iea",
        "fetch_entsoe",
        "aggregate_prices",
        "validate_data_quality",
        "store_prices",
        "update_cache",
        "trigger_forecast_dag",
    } <= set(shape["tasks"])


def test_backfill_create__queues_one_run_per_quarter_hour_for_the_scheduler(airflow):
    import sqlite3

    airflow.run("dags", "reserialize")
    airflow.run(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        "2016-06-01T00:00:00+00:00",
        "--to-date",
        "2016-06-01T01:00:00+00:00",
    )
    with sqlite3.connect(airflow.home / "airflow.db") as db:
        runs = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? AND run_type = 'backfill' ORDER BY run_id", (DAG_ID,)
        ).fetchall()
    assert [r for r, _ in runs] == [
        f"backfill__2016-06-01T{t}:00+00:00" for t in ("00:00", "00:15", "00:30", "00:45", "01:00")
    ]
    assert {state for _, state in runs} == {"queued"}
