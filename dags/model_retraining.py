"""model_retraining: weekly (Sunday 02:00 UTC), retrain each region's forecaster and register it.

Thin wiring: each task is a call into ``pipelines.model_retraining``; frames and fitted models pass
between tasks as files in the region's retraining workspace, never through XCom.

- ``check_data_freshness``: every region's newest price is at most
  ``EOPT_TRAINING_MAX_STALENESS_H`` older than the run's data interval end; fails naming the
  stale regions. ``conf={"regions": ["NP"]}`` narrows the run, ``conf={"budget": "smoke"}``
  changes the tuning budget.
- Then, per region (a task group mapped over the fresh regions, so one region's failure leaves
  the others alone): ``check_training_data_quality`` -> ``extract_training_data`` (two years) ->
  ``engineer_features`` -> ``train_cnn_lstm``, ``train_xgboost``, ``train_lightgbm`` (Optuna)
  and ``train_lear`` (the linear member) (in ``ml_training_pool``) -> ``evaluate_ensemble`` ->
  ``deploy_model``.
- ``deploy_model`` registers the candidate as a new version of the region's model in
  ``Staging`` with alias ``challenger``, then the promotion gate (``registry.promotion``) re-scores
  it and the champion on the same holdout and promotes it to ``Production`` (alias ``champion``)
  or archives it, with its reasons; the variable ``model_mape_threshold`` (a number, or JSON with
  a ``default`` and per-region values) sets the gate's MAPE threshold, and ``current_model_mape``
  (JSON, per region) follows the champions.
"""

from __future__ import annotations

import json
from datetime import timedelta

from airflow.sdk import Variable, dag, task, task_group
from dag_defaults import shared_dag_arguments
from pricing_api_hook import task_settings
from run_context import price_store, run_conf, run_hour, run_regions

from core.settings import Settings

DAG_ID = "model_retraining"
SETTINGS = Settings.from_env()


def _job(settings: Settings, region: str):
    """The region's retraining of this run (its workspace is named after the run's hour)."""
    from pipelines.model_retraining import Retraining

    return Retraining.open(settings, region, run_hour(), run_conf().get("budget"))


@dag(
    dag_id=DAG_ID,
    schedule="0 2 * * 0",
    dagrun_timeout=timedelta(hours=6),
    tags=["electricity-optimizer", "training"],
    doc_md=__doc__,
    **shared_dag_arguments(SETTINGS),
)
def model_retraining():
    @task
    def check_data_freshness() -> list[str]:
        from pipelines.model_retraining import check_data_freshness

        settings = task_settings()
        regions = run_regions(settings)
        for s in check_data_freshness(price_store(settings), regions, run_hour(), settings.training.max_staleness_h):
            print(f"{s.region}: newest price {s.latest}, {s.age} before {s.as_of}")
        return regions

    @task_group(group_id="retrain_region", prefix_group_id=False)
    def retrain_region(region: str):
        @task
        def check_training_data_quality(region: str) -> str:
            settings = task_settings()
            for note in _job(settings, region).check_training_data_quality(price_store(settings)):
                print(note)
            return region

        @task(pool="db_heavy_pool")
        def extract_training_data(region: str) -> str:
            settings = task_settings()
            print(_job(settings, region).extract_training_data(price_store(settings)))
            return region

        @task
        def engineer_features(region: str) -> str:
            print(_job(task_settings(), region).engineer_features())
            return region

        def member_summary(summary: dict) -> dict:
            return {
                "model": summary["model"],
                "test_mae": summary["test"]["mae"],
                "test_rmae": summary["test"]["rmae"],
                "run_id": summary["run_id"],
            }

        training = {"pool": "ml_training_pool", "execution_timeout": timedelta(hours=2)}

        @task(**training)
        def train_cnn_lstm(region: str) -> dict:
            return member_summary(_job(task_settings(), region).train_cnn_lstm())

        @task(**training)
        def train_xgboost(region: str) -> dict:
            return member_summary(_job(task_settings(), region).train_xgboost())

        @task(**training)
        def train_lightgbm(region: str) -> dict:
            return member_summary(_job(task_settings(), region).train_lightgbm())

        @task(**training)
        def train_lear(region: str) -> dict:
            return member_summary(_job(task_settings(), region).train_lear())

        @task
        def evaluate_ensemble(region: str) -> dict:
            settings = task_settings()
            return _job(settings, region).evaluate_ensemble(price_store(settings))

        @task
        def deploy_model(region: str) -> dict:
            settings = task_settings()
            gate = _job(settings, region).deploy_model(price_store(settings))
            print(
                f"{region}: version {gate['version']} {'PROMOTED' if gate['promoted'] else 'rejected'}: "
                + "; ".join(gate["reasons"])
            )
            if gate["champion_mape"] is not None:  # the variable follows each region's champion
                current = json.loads(Variable.get("current_model_mape", default="{}") or "{}")
                if not isinstance(current, dict):
                    current = {}
                current[region] = round(float(gate["champion_mape"]), 4)
                Variable.set("current_model_mape", json.dumps(current, sort_keys=True))
            return gate

        ready = engineer_features(extract_training_data(check_training_data_quality(region)))
        members = [train_cnn_lstm(ready), train_xgboost(ready), train_lightgbm(ready), train_lear(ready)]
        evaluated = evaluate_ensemble(region)
        members >> evaluated
        evaluated >> deploy_model(region)

    retrain_region.expand(region=check_data_freshness())


model_retraining()
