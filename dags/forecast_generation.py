"""forecast_generation: hourly, forecast each region's next 24 hours and store and cache them.

Thin wiring: each task calls the function of the same name in ``pipelines.forecast_generation``;
the model's request (JSON) and the forecast frame (parquet) pass between tasks as files in the
run's folder, never through XCom.

- ``check_model_ready``: which regions have a Production model (alias ``champion``) and which
  will fall back to the seasonal naive; returns the run's regions (``conf={"regions": ["NP"]}``
  narrows the run).
- Then, per region (a task group mapped over those regions; the grid names each instance by its
  region, so one region's failure is one red square and leaves the others alone):
  - ``prepare_features``: the origin (the hour after the newest price known before the run) and
    the registered model's raw request of it (the prices of the week before and the exogenous
    day-ahead forecasts, the body a client posts to ``mlflow models serve``; the model builds its
    features from it). A region whose newest price is older than the model's lag window
    (168 h) or that has no price fails here, naming it and what to check.
  - ``generate_forecasts``: the champion's forecast, or the labelled seasonal-naive fallback
    (``is_fallback``) with an ERROR alert naming the region and the reason. A region that not
    even the fallback can forecast (no price a week before a target hour) fails here.
  - ``store_forecasts`` -> ``update_forecast_cache``: idempotent upsert keyed by
    ``(region, issued_at, target_ts)``, then the region's newest forecast into the cache.

``issued_at`` is the run's data interval end (or logical date) floored to the hour, so rerunning
a run rewrites the same rows. A 2-minute deadline alert (from the run's queued time) replaces
the old SLA.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task, task_group
from dag_defaults import REGION_LABEL, shared_dag_arguments
from pricing_api_hook import task_settings
from run_context import price_cache, price_store, registry_client, run_folder, run_hour, run_regions

from core.settings import Settings

DAG_ID = "forecast_generation"
SETTINGS = Settings.from_env()


def _folder(settings: Settings):
    return run_folder(settings.stores.home / "runs" / DAG_ID)


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
    def check_model_ready() -> list[str]:
        from pipelines.forecast_generation import check_model_ready

        settings = task_settings()
        return list(check_model_ready(registry_client(settings), run_regions(settings)))

    @task_group(group_id="forecast_region", prefix_group_id=False)
    def forecast_region(region: str):
        @task(map_index_template=REGION_LABEL)
        def prepare_features(region: str) -> str:
            from pipelines.forecast_generation import prepare_features

            settings = task_settings()
            return str(prepare_features(price_store(settings), region, run_hour(), _folder(settings)))

        @task(map_index_template=REGION_LABEL)
        def generate_forecasts(region: str) -> dict:
            from pipelines.forecast_generation import generate_forecasts

            settings = task_settings()
            return generate_forecasts(registry_client(settings), region, _folder(settings), run_hour())

        @task(map_index_template=REGION_LABEL)
        def store_forecasts(region: str) -> dict:
            from pipelines.forecast_generation import store_forecasts

            settings = task_settings()
            return store_forecasts(price_store(settings), region, _folder(settings))

        @task(map_index_template=REGION_LABEL)
        def update_forecast_cache(region: str) -> dict:
            from pipelines.forecast_generation import update_forecast_cache

            settings = task_settings()
            return update_forecast_cache(price_store(settings), price_cache(settings), region)

        prepared = prepare_features(region=region)
        generated = generate_forecasts(region=region)
        stored = store_forecasts(region=region)
        prepared >> generated >> stored >> update_forecast_cache(region=region)

    forecast_region.expand(region=check_model_ready())


forecast_generation()
