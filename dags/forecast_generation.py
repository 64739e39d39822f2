"""forecast_generation: hourly, forecast each zone's next 24 hours and store and cache them.

Thin wiring: each task calls the function of the same name in ``pipelines.forecast_generation``;
the model's request (JSON) and the forecast frame (parquet) pass between tasks as files in the
run's folder, never through XCom.

- ``check_model_ready``: which zones have a Production model (alias ``champion``) and which will
  fall back to the seasonal naive; returns the run's zones (``conf={"regions": ["NP"]}`` narrows
  the run) in chunks of at most ``EOPT_FORECAST_CHUNK_ZONES`` (25; 46 zones: two chunks of 23).
- Then, per chunk (a task group mapped over the chunks; the grid names each instance by the zones
  it holds), four task instances for all of the chunk's zones at once:
  - ``prepare_features``: each zone's origin (the hour after the newest price known before the
    run) and the registered model's raw request of it (the prices of the week before and the
    exogenous day-ahead forecasts, the body a client posts to ``mlflow models serve``; the model
    builds its features from it), the chunk's prices in one query. A zone whose newest price is
    older than the model's lag window (168 h) or that has no price is not forecast (its error,
    naming it and what to check, is logged and recorded).
  - ``generate_forecasts``: each zone's champion's forecast (each champion loaded once), or the
    labelled seasonal-naive fallback (``is_fallback``) with an ERROR alert naming the zone and the
    reason. A zone that not even the fallback can forecast (no price a week before a target hour)
    is not forecast (its error recorded).
  - ``store_forecasts`` -> ``update_forecast_cache``: one idempotent upsert of the chunk's
    forecasts keyed by ``(region, issued_at, target_ts)``, then each zone's newest forecast into
    the cache. If a zone of the chunk was not forecast, ``update_forecast_cache`` then fails
    (``ZonesNotForecast``, naming each such zone, its task and the reason; no retry, which could
    not change it): one zone's failure costs no other zone its forecast, and the chunk's square
    is red.

``issued_at`` is the run's data interval end (or logical date) floored to the hour, so rerunning
a run rewrites the same rows. A 2-minute deadline alert (from the run's queued time) replaces
the old SLA.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task, task_group
from dag_defaults import ZONES_LABEL, shared_dag_arguments
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
    def check_model_ready() -> list[list[str]]:
        from pipelines.forecast_generation import check_model_ready

        settings = task_settings()
        return check_model_ready(
            registry_client(settings), run_regions(settings), settings.airflow.forecast_chunk_zones
        )

    @task_group(group_id="forecast_chunk", prefix_group_id=False)
    def forecast_chunk(zones: list[str]):
        @task(map_index_template=ZONES_LABEL)
        def prepare_features(zones: list[str]) -> dict:
            from pipelines.forecast_generation import prepare_features

            settings = task_settings()
            return prepare_features(price_store(settings), zones, run_hour(), _folder(settings))

        @task(map_index_template=ZONES_LABEL)
        def generate_forecasts(zones: list[str]) -> dict:
            from pipelines.forecast_generation import generate_forecasts

            settings = task_settings()
            return generate_forecasts(registry_client(settings), zones, _folder(settings), run_hour())

        @task(map_index_template=ZONES_LABEL)
        def store_forecasts(zones: list[str]) -> dict:
            from pipelines.forecast_generation import store_forecasts

            settings = task_settings()
            return store_forecasts(price_store(settings), zones, _folder(settings))

        @task(map_index_template=ZONES_LABEL, retries=0)  # a retry cannot forecast the zones that failed before it
        def update_forecast_cache(zones: list[str]) -> dict:
            from pipelines.forecast_generation import update_forecast_cache

            settings = task_settings()
            return update_forecast_cache(price_store(settings), price_cache(settings), zones, _folder(settings))

        prepared = prepare_features(zones=zones)
        generated = generate_forecasts(zones=zones)
        stored = store_forecasts(zones=zones)
        prepared >> generated >> stored >> update_forecast_cache(zones=zones)

    forecast_chunk.expand(zones=check_model_ready())


forecast_generation()
