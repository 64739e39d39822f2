"""maintenance_weekly and maintenance_monthly under the real `airflow dags test`.

The weekly DAG (metadata clean, vacuum, model evaluation) runs on an empty store; its model evaluation (the numbers are tested in
``tests/retention/test_model_evaluation.py``) and leaves its table in MLflow. The monthly DAG
reviews this Airflow home's own metadata database, which by then holds the weekly run's task
instance, and calls every provider through ``PricingAPIHook``: the connections point at the local
sandbox, ``entsoe_default`` with a token the sandbox refuses, so the run's alert reaches Slack (a
local stand-in) naming that connection.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.settings import PRICING_SOURCES, Settings
from storage.database import create_store_engine, upgrade
from storage.health import ApiHealthStore
from storage.maintenance import MaintenanceRunStore
from tests.airflow_harness import AirflowHome, connection_env
from tests.alert_servers import SlackStandIn
from training import tracking

pytestmark = pytest.mark.dag


def test_weekly_then_monthly__evaluation_in_mlflow__pool_review_of_this_home__connection_alert(tmp_path, sandbox):
    airflow = AirflowHome.create(tmp_path / "airflow")
    env = {
        "EOPT_HOME": str(tmp_path / "eopt"),
        "EOPT_REGIONS": "NP,BE",
        "EOPT_AIRFLOW_DEADLINE_ALERTS": "0",
        "EOPT_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_env(env)
    engine = create_store_engine(settings.stores.database_url)
    upgrade(engine)

    weekly_at = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    weekly = airflow.dags_test("maintenance_weekly", weekly_at.isoformat(), extra_env=env)
    assert weekly.returncode == 0, weekly.stdout[-3000:] + weekly.stderr[-3000:]
    assert airflow.task_states("maintenance_weekly") == {
        "clean_airflow_metadata": "success",
        "vacuum_stores": "success",
        "evaluate_models": "success",
    }
    evaluation = airflow.xcoms("maintenance_weekly", "evaluate_models")["evaluate_models"]
    assert [(row["region"], row["weeks"], row["hours"]) for row in evaluation["rows"]] == [
        (region, weeks, 0) for region in ("NP", "BE") for weeks in (1, 4, 13)
    ]
    client = tracking.configure(settings)
    logged = client.get_run(evaluation["mlflow_run_id"])
    assert logged.data.tags["eopt.kind"] == "evaluate_models"

    connections = {}
    for source in PRICING_SOURCES:
        conn_id = f"{source}_default"
        if source == "openei":  # it shares nrel_default
            continue
        extra = {"base_url": f"{sandbox.url}/{source}"}
        if source == "nrel":
            extra["openei_base_url"] = f"{sandbox.url}/openei"
        connections.update(connection_env(conn_id, extra=json.dumps(extra)))
    connections.update(
        connection_env(
            "entsoe_default", password="not-the-token", extra=json.dumps({"base_url": f"{sandbox.url}/entsoe"})
        )
    )
    with SlackStandIn() as slack:
        monthly_env = {
            **env,
            **connections,
            **slack.connection_env("slack_data_quality"),
            "EOPT_PRICING_SANDBOX_URL": sandbox.url,  # the sandbox's credentials, where a connection has none
            "EOPT_ENABLE_SLACK_ALERTS": "1",
            "EOPT_PROVIDER_READ_TIMEOUT_S": "2",
        }
        monthly_at = pd.Timestamp.now(tz="UTC")
        monthly = airflow.dags_test("maintenance_monthly", monthly_at.isoformat(), extra_env=monthly_env)
    assert monthly.returncode == 0, monthly.stdout[-3000:] + monthly.stderr[-3000:]
    assert airflow.task_states("maintenance_monthly") == {"review_pools": "success", "check_connections": "success"}

    pools = {row["pool"]: row for row in airflow.xcoms("maintenance_monthly", "review_pools")["review_pools"]["rows"]}
    assert {p: pools[p]["slots"] for p in ("pricing_api_pool", "ml_training_pool", "db_heavy_pool")} == {
        "pricing_api_pool": 5,
        "ml_training_pool": 2,
        "db_heavy_pool": 3,
    }
    assert pools["default_pool"]["tasks"] >= 1  # the weekly run's evaluate_models, a real task instance
    assert pools["default_pool"]["peak_slots_used"] >= 1

    checks = airflow.xcoms("maintenance_monthly", "check_connections")["check_connections"]
    by_source = {row["source"]: row for row in checks["rows"]}
    assert {s: row["status"] for s, row in by_source.items()} == {
        "flatpeak": "ok",
        "iea": "ok",
        "entsoe": "failed",
        "nrel": "not called",  # NREL and OpenEI serve PJM only; EOPT_REGIONS is NP here
        "openei": "not called",
    }
    assert by_source["entsoe"]["http_status"] == 401 and by_source["openei"]["connection_id"] == "nrel_default"
    health = ApiHealthStore(engine).read()
    assert sorted(set(health["source"])) == ["entsoe", "flatpeak", "iea"]
    assert len(slack.messages) == 1 and "entsoe_default" in slack.messages[0]
    assert "nrel_default" not in slack.messages[0]
    steps = set(MaintenanceRunStore(engine).last_successes()["step"])
    assert steps == {"clean_airflow_metadata", "vacuum_stores", "evaluate_models", "review_pools", "check_connections"}
    engine.dispose()
