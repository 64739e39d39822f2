"""model_retraining: weekly (Sunday 02:00 UTC), retrain each region's forecaster and register it.

Thin wiring: each task is a call into ``pipelines.model_retraining``; frames and fitted models pass
between tasks as files in the region's retraining workspace, never through XCom.

- ``check_data_freshness``: every region's newest price is at most
  ``EOPT_TRAINING_MAX_STALENESS_H`` older than the run's data interval end; fails naming the
  stale regions. ``conf={"regions": ["NP"]}`` narrows the run, ``conf={"budget": "smoke"}``
  changes the tuning budget.
- Then, per region (a task group mapped over the fresh regions, so one region's failure leaves
  the others alone): ``check_training_data_quality`` -> ``extract_training_data`` (two years) ->
  ``engineer_features`` -> ``train_cnn_lstm``, ``train_xgboost``, ``train_lightgbm`` (in
  ``ml_training_pool``) -> ``evaluate_ensemble`` -> ``deploy_model``.
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

from airflow.sdk import Variable, dag, get_current_context, task, task_group

from dag_defaults import shared_dag_arguments
from core.settings import Settings
from pricing_api_hook import task_settings

DAG_ID = "model_retraining"
SETTINGS = Settings.from_env()


def _conf() -> dict:
    return get_current_context()["dag_run"].conf or {}


def _as_of():
    import pandas as pd

    context = get_current_context()
    return pd.Timestamp(context.get("data_interval_end") or context.get("logical_date")).tz_convert("UTC")


def _store():
    from storage.database import create_store_engine
    from storage.prices import PriceStore

    return PriceStore(create_store_engine(task_settings().stores.database_url))


def _step(region: str, step: str, *args):
    """Run one retraining step of a region; a failure marks the region's MLflow run failed too."""
    from pipelines.model_retraining import Retraining

    job = Retraining.open(task_settings(), region, _as_of(), _conf().get("budget"))
    try:
        return getattr(job, step)(*args)
    except Exception as exc:
        job.fail(f"{step}: {type(exc).__name__}: {exc}")
        raise


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
        from pipelines.model_retraining import check_freshness

        settings = task_settings()
        regions = [r.upper() for r in _conf().get("regions", settings.regions)]
        statuses = check_freshness(_store(), regions, _as_of(), settings.training.max_staleness_h)
        for s in statuses:
            print(f"{s.region}: newest price {s.latest}, {s.age} before {s.as_of}")
        return regions

    @task_group(group_id="retrain_region", prefix_group_id=False)
    def retrain_region(region: str):
        @task
        def check_training_data_quality(region: str) -> str:
            for note in _step(region, "check_quality", _store()):
                print(note)
            return region

        @task(pool="db_heavy_pool")
        def extract_training_data(region: str) -> str:
            print(_step(region, "extract", _store()))
            return region

        @task
        def engineer_features(region: str) -> str:
            print(_step(region, "engineer"))
            return region

        def train(model: str):
            @task(task_id=f"train_{model}", pool="ml_training_pool", execution_timeout=timedelta(hours=2))
            def train_member(region: str) -> dict:
                summary = _step(region, "train_member", model)
                return {"model": model, "test_mae": summary["test"]["mae"], "test_rmae": summary["test"]["rmae"],
                        "run_id": summary["run_id"]}

            return train_member

        @task
        def evaluate_ensemble(region: str) -> dict:
            return _step(region, "evaluate")

        @task
        def deploy_model(region: str) -> dict:
            gate = _step(region, "deploy", _store())
            print(f"{region}: version {gate['version']} {'PROMOTED' if gate['promoted'] else 'rejected'}: "
                  + "; ".join(gate["reasons"]))
            if gate["champion_mape"] is not None:  # the variable follows each region's champion
                current = json.loads(Variable.get("current_model_mape", default="{}") or "{}")
                if not isinstance(current, dict):
                    current = {}
                current[region] = round(float(gate["champion_mape"]), 4)
                Variable.set("current_model_mape", json.dumps(current, sort_keys=True))
            return gate

        ready = engineer_features(extract_training_data(check_training_data_quality(region)))
        members = [train(model)(ready) for model in ("cnn_lstm", "xgboost", "lightgbm")]
        evaluated = evaluate_ensemble(region)
        members >> evaluated
        evaluated >> deploy_model(region)

    retrain_region.expand(region=check_data_freshness())


model_retraining()
