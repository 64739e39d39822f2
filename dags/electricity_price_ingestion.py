"""electricity_price_ingestion: every 15 minutes, fetch, aggregate, validate, store and cache prices.

Thin wiring: each task is a call into ``ingestion``, ``quality`` and ``storage``.

- ``check_api_health``: providers' error rates over the last 24 h from ``api_health`` (logged).
- ``check_markets_open``: short-circuits when, for every region, all hours of the cycle window
  that its market can have published by now are already stored (day-ahead results are published
  at 13:00 CET for NP/BE/FR and 13:30 ET for PJM); ``conf={"force": true}`` always runs.
- ``fetch_flatpeak``, ``fetch_nrel`` (NREL + OpenEI), ``fetch_iea``, ``fetch_entsoe``: in parallel
  in ``pricing_api_pool``; a failing provider fails its own task after saving what it got, and
  ``aggregate_prices`` (trigger rule ``all_done``) goes on with the others' rows.
- ``aggregate_prices`` -> ``validate_data_quality`` -> ``store_prices`` -> ``update_cache``;
  rejected rows are quarantined with their reason at each step.
- ``trigger_forecast_dag``: only when ``conf={"trigger_forecast": true}`` or the variable
  ``trigger_forecast_after_ingestion`` is true (gate task ``forecast_requested``).
- A 5-minute deadline alert (from the run's queued time) replaces the old SLA.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import TriggerRule, Variable, dag, get_current_context, task

from dag_defaults import shared_dag_arguments
from core.settings import Settings
from pricing_api_hook import PricingAPIHook, task_settings

DAG_ID = "electricity_price_ingestion"
SETTINGS = Settings.from_env()


def _run_time():
    context = get_current_context()
    interval_end = context.get("data_interval_end") or context.get("logical_date")
    import pandas as pd

    return pd.Timestamp(interval_end).tz_convert("UTC")


def _run_dir() -> Path:
    context = get_current_context()
    run_id = re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
    return task_settings().stores.home / "runs" / DAG_ID / run_id


def _stores():
    from storage.cache import PriceCache
    from storage.database import create_store_engine
    from storage.prices import PriceStore

    settings = task_settings()
    store = PriceStore(create_store_engine(settings.stores.database_url))
    cache = PriceCache.from_url(settings.stores.redis_url, ttl_prices_s=settings.stores.cache_ttl_prices_s,
                                ttl_forecasts_s=settings.stores.cache_ttl_forecasts_s)
    return settings, store, cache


def _fetch(task_name: str) -> dict:
    """Fetch one provider group, save its rows for aggregate_prices, then fail loudly if it failed."""
    from ingestion.pipeline import cycle_window, fetch_task, save_rows
    from ingestion.providers import FETCH_TASKS
    from storage.health import ApiHealthStore, QuarantineStore

    settings, store, _ = _stores()
    start, end = cycle_window(_run_time())
    configs = {s: PricingAPIHook(s, settings).get_config() for s in FETCH_TASKS[task_name]}
    outcomes = fetch_task(task_name, settings, start, end, configs=configs,
                          health=ApiHealthStore(store.engine), quarantine=QuarantineStore(store.engine))
    import pandas as pd

    rows = pd.concat([o.rows for o in outcomes], ignore_index=True) if outcomes else None
    path = save_rows(rows, _run_dir() / f"fetch_{task_name}.parquet") if rows is not None else None
    summary = {"path": path, "rows": {o.source: len(o.rows) for o in outcomes},
               "failures": {o.source: o.failures for o in outcomes if o.failures}}
    if summary["failures"]:
        raise RuntimeError(
            f"provider {', '.join(summary['failures'])} failed for this cycle ({summary['rows']} rows kept for the "
            f"other regions): {summary['failures']}"
        )
    return summary


@dag(
    dag_id=DAG_ID,
    schedule="*/15 * * * *",
    dagrun_timeout=timedelta(minutes=10),
    tags=["electricity-optimizer", "ingestion"],
    doc_md=__doc__,
    **shared_dag_arguments(SETTINGS, deadline_minutes=5),
)
def electricity_price_ingestion():
    @task
    def check_api_health() -> dict:
        from ingestion.pipeline import provider_health

        _, store, _ = _stores()
        return provider_health(store, since=_run_time() - timedelta(hours=24))

    @task.short_circuit
    def check_markets_open() -> bool:
        from ingestion.pipeline import missing_hours

        context = get_current_context()
        if (context["dag_run"].conf or {}).get("force"):
            print("conf force=true: running the cycle regardless of what is stored")
            return True
        settings, store, _ = _stores()
        missing = missing_hours(store, settings.regions, _run_time())
        print(f"publishable hours not yet stored, per region: {missing}")
        return any(missing.values())

    @task(task_id="fetch_flatpeak", pool="pricing_api_pool")
    def fetch_flatpeak() -> dict:
        return _fetch("flatpeak")

    @task(task_id="fetch_nrel", pool="pricing_api_pool")
    def fetch_nrel() -> dict:
        return _fetch("nrel")

    @task(task_id="fetch_iea", pool="pricing_api_pool")
    def fetch_iea() -> dict:
        return _fetch("iea")

    @task(task_id="fetch_entsoe", pool="pricing_api_pool")
    def fetch_entsoe() -> dict:
        return _fetch("entsoe")

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def aggregate_prices() -> dict:
        from ingestion.pipeline import aggregate_step, load_rows, save_rows
        from storage.health import QuarantineStore

        _, store, _ = _stores()
        run_dir = _run_dir()
        raw = load_rows(str(p) for p in sorted(run_dir.glob("fetch_*.parquet")))
        hourly, quarantined = aggregate_step(raw, QuarantineStore(store.engine))
        path = save_rows(hourly, run_dir / "hourly.parquet")
        print(f"aggregated {len(raw)} provider rows into {len(hourly)} hourly rows; {quarantined} quarantined")
        return {"path": path, "hourly": len(hourly), "quarantined": quarantined}

    @task
    def validate_data_quality(aggregated: dict) -> dict:
        from ingestion.pipeline import load_rows, save_rows, validate_step
        from storage.health import QuarantineStore

        settings, store, _ = _stores()
        validation, quarantined = validate_step(load_rows([aggregated["path"]]), _run_time(),
                                                settings.providers.min_records, QuarantineStore(store.engine))
        path = save_rows(validation.accepted, _run_dir() / "accepted.parquet")
        print(f"validation: {validation.summary()}; {quarantined} newly quarantined")
        return {"path": path, **validation.summary()}

    @task
    def store_prices(validated: dict) -> dict:
        from ingestion.pipeline import load_rows

        _, store, _ = _stores()
        accepted = load_rows([validated["path"]])
        result = store.upsert_prices(accepted)
        print(f"stored: {result.inserted} new, {result.updated} updated, {result.unchanged} unchanged")
        return {"inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged,
                "regions": sorted(accepted["region"].unique())}

    @task
    def update_cache(stored: dict) -> dict:
        from ingestion.pipeline import refresh_cache

        _, store, cache = _stores()
        writes = refresh_cache(store, cache, stored["regions"])
        for write in writes:
            print(f"cache {write.key}: {'ok' if write.ok else 'FAILED ' + str(write.error)}")
        return {w.key: w.ok for w in writes}

    @task.short_circuit
    def forecast_requested() -> bool:
        context = get_current_context()
        asked = (context["dag_run"].conf or {}).get("trigger_forecast")
        if asked is None:
            asked = str(Variable.get("trigger_forecast_after_ingestion", default="false")).lower() == "true"
        return bool(asked)

    trigger_forecast_dag = TriggerDagRunOperator(
        task_id="trigger_forecast_dag",
        trigger_dag_id="forecast_generation",
        conf={"triggered_by": DAG_ID},
        wait_for_completion=False,
    )

    health = check_api_health()
    gate = check_markets_open()
    fetches = [fetch_flatpeak(), fetch_nrel(), fetch_iea(), fetch_entsoe()]
    health >> gate >> fetches
    aggregated = aggregate_prices()
    fetches >> aggregated
    cached = update_cache(store_prices(validate_data_quality(aggregated)))
    cached >> forecast_requested() >> trigger_forecast_dag


electricity_price_ingestion()
