"""model_retraining under the real `airflow dags test`: embedded store, real MLflow registry, smoke budget."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from core.markets import load_market
from registry.models import registered_model_name
from serving.model_request import build_request
from tests.airflow_harness import AirflowHome
from tests.market_frames import store_with_history

pytestmark = pytest.mark.dag

DAG_ID = "model_retraining"
ROOT = Path(__file__).resolve().parents[2]
LOGICAL_DATE = "2018-12-25T02:00:00+00:00"  # a Sunday-ish run just after the NP and PJM histories end
REGIONS = ("NP", "PJM")


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> AirflowHome:
    return AirflowHome.create(tmp_path_factory.mktemp("airflow"))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """An embedded store holding the last 150 days of the NP, PJM and BE histories (the 120-day window
    and a margin; BE ends in 2016: stale in 2018)."""
    home = tmp_path_factory.mktemp("eopt")
    store_with_history(f"sqlite:///{home / 'prices.db'}", dict.fromkeys((*REGIONS, "BE"), 150)).engine.dispose()
    return home


def run_env(home: Path, regions: tuple[str, ...] = REGIONS) -> dict[str, str]:
    return {
        "EOPT_HOME": str(home),
        "EOPT_REGIONS": ",".join(regions),
        "EOPT_TRAINING_BUDGET": "smoke",
        # the DAG is under test, not the models: the other DAG tests' 120-day window, one Optuna trial
        # per member and one thread per fit (`make test` runs two workers on the two cores)
        "EOPT_TRAINING_WINDOW_DAYS": "120",
        "EOPT_VALIDATION_DAYS": "14",
        "EOPT_TEST_DAYS": "14",
        "EOPT_TUNING_TRIALS": "1",
        "EOPT_TRAINING_THREADS": "1",
        "EOPT_AIRFLOW_RETRY_DELAY_S": "1",
        "EOPT_AIRFLOW_TASK_RETRIES": "0",
        "EOPT_AIRFLOW_DEADLINE_ALERTS": "0",
    }


def registry(home: Path) -> MlflowClient:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def test_retraining_dag__has_the_documented_schedule_timeout_tasks_and_pools(airflow):
    script = (
        "from airflow.dag_processing.dagbag import BundleDagBag; import json, os\n"
        "folder = os.environ['AIRFLOW__CORE__DAGS_FOLDER']\n"
        "bag = BundleDagBag(dag_folder=folder, bundle_path=folder)\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "dag = bag.get_dag('model_retraining')\n"
        "print(json.dumps({'schedule': str(dag.schedule), 'catchup': dag.catchup,"
        " 'timeout_s': dag.dagrun_timeout.total_seconds(), 'tasks': sorted(dag.task_ids),"
        " 'pools': {t.task_id: t.pool for t in dag.tasks},"
        " 'upstream': {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}}))\n"
    )
    shape = json.loads(airflow.run_python(script).stdout.strip().splitlines()[-1])
    assert shape["schedule"] == "0 2 * * 0" and shape["catchup"] is False
    assert shape["timeout_s"] == 6 * 3600
    assert shape["tasks"] == sorted(
        [
            "check_data_freshness",
            "check_training_data_quality",
            "extract_training_data",
            "engineer_features",
            "train_cnn_lstm",
            "train_xgboost",
            "train_lightgbm",
            "train_lear",
            "evaluate_ensemble",
            "deploy_model",
        ]
    )
    assert {shape["pools"][f"train_{m}"] for m in ("cnn_lstm", "xgboost", "lightgbm", "lear")} == {"ml_training_pool"}
    # every task of the region's group also reads its region from check_data_freshness
    assert shape["upstream"]["evaluate_ensemble"] == [
        "check_data_freshness",
        "train_cnn_lstm",
        "train_lear",
        "train_lightgbm",
        "train_xgboost",
    ]
    assert shape["upstream"]["deploy_model"] == ["check_data_freshness", "evaluate_ensemble"]
    assert shape["upstream"]["train_xgboost"] == shape["upstream"]["train_lear"] == ["engineer_features"]


def test_retraining_dag__registers_a_new_version_per_region_that_forecasts_24_hours(airflow, home):
    result = airflow.dags_test(DAG_ID, LOGICAL_DATE, extra_env=run_env(home), timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    client = registry(home)
    for region in REGIONS:
        name = registered_model_name(region)
        # the first version of a region has no champion to beat: the threshold and the naive decide
        version = client.get_model_version(name, "1")
        assert version.current_stage == "Production" and version.tags["eopt.gate.decision"] == "promoted"
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
        assert (
            "seasonal naive" in version.tags["eopt.gate.reasons"]
            and "no champion yet" in version.tags["eopt.gate.reasons"]
        )
        run = client.get_run(version.run_id)
        assert run.info.status == "FINISHED" and run.data.tags["eopt.region"] == region
        assert run.data.params["as_of"] == "2018-12-25 02:00:00+00:00"
        assert run.data.metrics["test_rmae"] < 1.0
        children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
        assert sorted(r.data.tags["eopt.model"] for r in children) == ["cnn_lstm", "lear", "lightgbm", "xgboost"]

        history = load_market(region, ROOT / "data" / "markets")
        prices = history.prices.set_index("ts")["price"]
        exog = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
        request = build_request(prices, exog, region, pd.Timestamp("2018-12-23 23:00", tz="UTC"))
        forecast = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}").predict(
            request.table, params=request.params
        )
        assert len(forecast) == 24 and np.isfinite(forecast["yhat"]).all()

    mapes = json.loads(airflow.run("variables", "get", "current_model_mape").stdout.strip().splitlines()[-1])
    assert set(mapes) == set(REGIONS) and all(0 < v < 25 for v in mapes.values())

    workspace = home / "retraining" / "20181225T0200Z"
    assert sorted(p.name for p in workspace.iterdir()) == sorted(REGIONS)
    assert (workspace / "NP" / "features.parquet").is_file()  # frames moved as files, not XCom


def test_retraining_dag__stale_region_fails_the_freshness_check_naming_it(airflow, home, tmp_path):
    result = airflow.dags_test(DAG_ID, LOGICAL_DATE, conf={"regions": ["NP", "BE"]}, extra_env=run_env(home))
    assert result.returncode != 0
    states = airflow.task_states(DAG_ID)
    assert states["check_data_freshness"] == "failed"
    assert {state for task, state in states.items() if task != "check_data_freshness"} <= {"upstream_failed"}
    log = result.stdout + result.stderr  # the error names the stale region and what to check
    assert "BE: newest price is 2016-12-31 22:00:00+00:00" in log
    assert "check the ingestion DAG for this region" in log
    assert "NP: newest price" not in log  # only the stale region is blamed
