"""`eopt airflow-init`: the Airflow home bootstrapped from airflow/*.json, idempotently, with a real `airflow` CLI."""

from __future__ import annotations

import json

import pytest

from core.settings import Settings
from eopt.airflow_home import airflow_command, bootstrap

pytestmark = pytest.mark.dag


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    home = tmp_path_factory.mktemp("eopt")
    settings = Settings.from_env({"EOPT_HOME": str(home)})
    bootstrap(settings)
    return settings


def exported(settings: Settings, what: str) -> dict:
    out = settings.airflow.home / f"{what}.json"
    airflow_command(settings, what, "export", str(out))
    return json.loads(out.read_text())


def test_airflow_init__imports_the_pools_and_variables_the_deployment_guide_gives(settings):
    pools = exported(settings, "pools")
    assert {name: pool["slots"] for name, pool in pools.items() if name != "default_pool"} == {
        "pricing_api_pool": 5,
        "ml_training_pool": 2,
        "db_heavy_pool": 3,
    }
    variables = exported(settings, "variables")
    assert set(variables) == {
        "current_model_mape",
        "model_mape_threshold",
        "price_ingestion_min_records",
        "enable_slack_alerts",
        "retrain_on_drift",
        "trigger_forecast_after_ingestion",
    }
    assert variables["model_mape_threshold"] == {"default": 10, "PJM": 20, "BE": 25, "FR": 25}
    assert variables["price_ingestion_min_records"] == 24 and variables["enable_slack_alerts"] is False


def test_airflow_init__rerun_keeps_state_the_pipelines_wrote_and_operators_edited(settings):
    airflow_command(settings, "variables", "set", "current_model_mape", '{"NP": 3.9}')
    airflow_command(settings, "connections", "delete", "iea_default")
    airflow_command(
        settings,
        "connections",
        "add",
        "iea_default",
        "--conn-json",
        json.dumps({"conn_type": "http", "extra": {"base_url": "https://api.iea.example"}}),
    )
    bootstrap(settings)
    assert exported(settings, "variables")["current_model_mape"] == {"NP": 3.9}
    iea = airflow_command(settings, "connections", "get", "iea_default", "-o", "json").stdout
    assert "https://api.iea.example" in iea
    assert len(exported(settings, "variables")) == 6  # nothing doubled


def test_airflow_init__connections_point_each_provider_at_the_local_sandbox(settings):
    connections = exported(settings, "connections")
    extras = {
        conn_id: json.loads(c["extra"]) if isinstance(c["extra"], str) else c["extra"]
        for conn_id, c in connections.items()
    }
    sandbox = "http://127.0.0.1:8765"
    assert {c: e["base_url"] for c, e in extras.items() if c != "iea_default"} == {
        "flatpeak_default": f"{sandbox}/flatpeak",
        "nrel_default": f"{sandbox}/nrel",
        "entsoe_default": f"{sandbox}/entsoe",
    }
    assert extras["nrel_default"]["openei_base_url"] == f"{sandbox}/openei"  # OpenEI takes the NREL/NLR key
    # the sandbox's published test credentials, as its providers check them (ingestion.sandbox.server)
    from ingestion.sandbox.server import DEFAULT_CREDENTIALS

    assert (connections["flatpeak_default"]["login"], connections["flatpeak_default"]["password"]) == (
        DEFAULT_CREDENTIALS["flatpeak"]["account_id"],
        DEFAULT_CREDENTIALS["flatpeak"]["api_key"],
    )
    assert connections["entsoe_default"]["password"] == DEFAULT_CREDENTIALS["entsoe"]["token"]
    assert connections["nrel_default"]["password"] == DEFAULT_CREDENTIALS["nrel"]["api_key"]
