"""forecast_generation: hourly, forecast each region's next 24 hours and store and cache them.

Thin wiring: each task calls the function of the same name in ``pipelines.forecast_generation``;
feature and forecast frames pass between tasks as parquet files in the run's folder, never
through XCom.

- ``check_model_ready``: which regions have a Production model (alias ``champion``) and which
  will fall back to the seasonal naive; ``conf={"regions": ["NP"]}`` narrows the run.
- ``prepare_features``: per region, the origin (the hour after the newest price known before the
  run) and its 24 feature rows. A region whose newest price is older than the model's lag window
  (168 h) or that has no price fails this task naming it, after the other regions' files are
  written; ``generate_forecasts`` (trigger rule ``all_done``) goes on with those, so one stale
  region costs no other region its forecast (the run's state follows its last tasks, as in
  ``electricity_price_ingestion``: the red ``prepare_features`` is what names the stale region).
- ``generate_forecasts``: the champion's forecast, or the labelled seasonal-naive fallback
  (``is_fallback``) with an ERROR alert naming the region and the reason. A region that not
  even the fallback can forecast (no price a week before a target hour) fails this task naming
  it, after the others' forecasts are written; ``store_forecasts`` (``all_done``) stores those.
- ``store_forecasts`` -> ``update_forecast_cache``: idempotent upsert keyed by
  ``(region, issued_at, target_ts)``, then each region's newest forecast into the cache.

``issued_at`` is the run's data interval end (or logical date) floored to the hour, so rerunning
a run rewrites the same rows. A 2-minute deadline alert (from the run's queued time) replaces
the old SLA.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import TriggerRule, dag, task
from dag_defaults import shared_dag_arguments
from pricing_api_hook import task_settings
from run_context import price_cache, price_store, registry_client, run_conf, run_folder, run_hour

from core.settings import Settings

DAG_ID = "forecast_generation"
SETTINGS = Settings.from_env()


def _folder():
    return run_folder(task_settings().stores.home / "runs" / DAG_ID)


@dag(
    dag_id=DAG_ID,
    schedule="0 * * * *",
    dagrun_timeout=timedelta(minutes=10),
    tags=["electricity-optimizer", "serving"],
    doc_md=__doc__,
    **shared_dag_arguments(SETTINGS, deadline_minutes=2),
)
def forecast_generation():
    @task
    def check_model_ready() -> dict:
        from pipelines.forecast_generation import check_model_ready

        regions = [r.upper() for r in run_conf().get("regions", task_settings().regions)]
        return {"regions": regions, "champions": check_model_ready(registry_client(), regions)}

    @task
    def prepare_features(ready: dict) -> dict:
        from pipelines.forecast_generation import prepare_features

        return prepare_features(price_store(), ready["regions"], run_hour(), _folder())

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def generate_forecasts(ready: dict) -> dict:
        from pipelines.forecast_generation import generate_forecasts

        return generate_forecasts(registry_client(), ready["regions"], _folder(), run_hour())

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def store_forecasts(ready: dict) -> dict:
        from pipelines.forecast_generation import store_forecasts

        return store_forecasts(price_store(), ready["regions"], _folder())

    @task
    def update_forecast_cache(stored: dict) -> dict:
        from pipelines.forecast_generation import update_forecast_cache

        return update_forecast_cache(price_store(), price_cache(), stored["regions"])

    ready = check_model_ready()
    features = prepare_features(ready)
    generated = generate_forecasts(ready)
    features >> generated
    stored = store_forecasts(ready)
    generated >> stored
    update_forecast_cache(stored)


forecast_generation()
