"""forecast_generation: hourly, forecast each region's next 24 hours and store and cache them.

Thin wiring: each task is a call into ``serving.forecasting`` and ``storage``; feature and
forecast frames pass between tasks as parquet files in the run's folder, never through XCom.

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

from airflow.sdk import TriggerRule, dag, get_current_context, task

from dag_defaults import shared_dag_arguments
from core.settings import Settings
from pricing_api_hook import task_settings
from run_context import price_store, registry_client, run_folder, run_hour

DAG_ID = "forecast_generation"
SETTINGS = Settings.from_env()


def _fail_naming(problems: dict[str, str], others: int) -> None:
    """Fail the task naming the regions it could not do, after the others' files are written."""
    if problems:
        raise RuntimeError(f"no forecast for {', '.join(problems)} ({others} other region(s) go on): "
                           + " | ".join(problems.values()))


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
        from serving.forecasting import model_readiness

        conf = get_current_context()["dag_run"].conf or {}
        regions = [r.upper() for r in conf.get("regions", task_settings().regions)]
        ready = model_readiness(registry_client(), regions)
        for region, uri in ready.items():
            print(f"{region}: {'Production model ' + uri if uri else 'no Production model, will fall back to the seasonal naive'}")
        return {"regions": regions, "champions": ready}

    @task
    def prepare_features(ready: dict) -> dict:
        from serving.forecasting import StaleDataError, forecast_origin
        from serving.forecasting import prepare_features as features_of
        from training.features import FeatureError

        store, folder, problems, paths = price_store(), run_folder(task_settings().stores.home / "runs" / DAG_ID), {}, {}
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("features_*.parquet"):
            old.unlink()  # a retry starts clean: generate_forecasts reads what is here
        for region in ready["regions"]:
            try:
                origin = forecast_origin(store, region, run_hour())
                features = features_of(store, region, origin)
            except (StaleDataError, FeatureError) as exc:
                problems[region] = str(exc)
                continue
            path = folder / f"features_{region}.parquet"
            features.to_parquet(path, index=False)
            paths[region] = str(path)
            print(f"{region}: origin {origin}, 24 feature rows in {path}")
        _fail_naming(problems, len(paths))
        return paths

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def generate_forecasts(ready: dict) -> dict:
        import pandas as pd

        from serving.forecasting import ForecastError, alert_fallback, generate_forecast

        client, folder, issued_at, problems, summary = registry_client(), run_folder(task_settings().stores.home / "runs" / DAG_ID), run_hour(), {}, {}
        for old in folder.glob("forecast_*.parquet"):
            old.unlink()
        for region in ready["regions"]:
            source = folder / f"features_{region}.parquet"
            if not source.is_file():
                continue  # prepare_features said why
            features = pd.read_parquet(source)
            try:
                forecast = generate_forecast(client, region, features, features["origin"].iloc[0], issued_at)
            except ForecastError as exc:
                problems[region] = str(exc)
                continue
            path = folder / f"forecast_{region}.parquet"
            forecast.frame.to_parquet(path, index=False)
            alert_fallback(forecast)
            print(f"{region}: {forecast.model_name} version {forecast.model_version}"
                  + (f", FALLBACK: {forecast.fallback_reason}" if forecast.is_fallback else ""))
            summary[region] = {"model": forecast.model_name, "version": forecast.model_version,
                               "is_fallback": forecast.is_fallback, "reason": forecast.fallback_reason}
        _fail_naming(problems, len(summary))
        if not summary:
            raise RuntimeError(f"no region had features to forecast from ({', '.join(ready['regions'])}); "
                               "see prepare_features")
        return summary

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def store_forecasts(ready: dict) -> dict:
        import pandas as pd

        from storage.forecasts import ForecastStore

        folder = run_folder(task_settings().stores.home / "runs" / DAG_ID)
        paths = {r: folder / f"forecast_{r}.parquet" for r in ready["regions"]}
        paths = {r: p for r, p in paths.items() if p.is_file()}
        if not paths:
            raise RuntimeError("no forecast to store: generate_forecasts forecast no region (its log says why)")
        frame = pd.concat([pd.read_parquet(p) for p in paths.values()], ignore_index=True)
        result = ForecastStore(price_store().engine).upsert_forecasts(frame)
        print(f"stored forecasts: {result.inserted} new, {result.updated} updated, {result.unchanged} unchanged")
        return {"inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged,
                "regions": sorted(paths)}

    @task
    def update_forecast_cache(stored: dict) -> dict:
        from serving.forecasting import Forecast, forecast_document
        from storage.cache import PriceCache
        from storage.forecasts import ForecastStore

        settings = task_settings()
        forecasts = ForecastStore(price_store().engine)
        cache = PriceCache.from_url(settings.stores.redis_url, ttl_prices_s=settings.stores.cache_ttl_prices_s,
                                    ttl_forecasts_s=settings.stores.cache_ttl_forecasts_s)
        writes = {}
        for region in stored["regions"]:
            newest = Forecast(forecasts.read_forecasts(region))  # the newest issue, even when this run re-ran an old one
            write = cache.publish_forecast(region, forecast_document(newest))
            print(f"cache {write.key}: issued {newest.issued_at}, {'ok' if write.ok else 'FAILED ' + str(write.error)}")
            writes[write.key] = write.ok
        return writes

    ready = check_model_ready()
    features = prepare_features(ready)
    generated = generate_forecasts(ready)
    features >> generated
    stored = store_forecasts(ready)
    generated >> stored
    update_forecast_cache(stored)


forecast_generation()
