"""electricity_price_ingestion: every 15 minutes, fetch, aggregate, validate, store and cache prices.

Thin wiring: each task calls the function of the same name in
``pipelines.electricity_price_ingestion`` (``eopt ingest`` runs the same functions in a row).

- ``check_api_health``: providers' error rates over the last 24 h from ``api_health`` (logged).
- ``check_markets_open``: short-circuits when, for every region, all hours of the cycle window
  that its market can have published by now are already stored (day-ahead results are published
  at 13:00 CET for NP/BE/FR and 13:30 ET for PJM); ``conf={"force": true}`` always runs.
- ``fetch_flatpeak``, ``fetch_nrel`` (NREL + OpenEI), ``fetch_iea``, ``fetch_entsoe`` (prices A44 and
  the day-ahead load A65 and wind/solar A69 forecasts, stored in ``market_exogenous``): in parallel
  in ``pricing_api_pool``; a failing provider fails its own task after saving what it got, and
  ``aggregate_prices`` (trigger rule ``all_done``) goes on with the others' rows.
- ``aggregate_prices`` -> ``validate_data_quality`` -> ``store_prices`` -> ``update_cache``;
  rejected rows are quarantined with their reason at each step.
- ``trigger_forecast_dag``: only when ``conf={"trigger_forecast": true}`` or the variable
  ``trigger_forecast_after_ingestion`` is true (gate task ``forecast_requested``).
- A 5-minute deadline alert (from the run's queued time) replaces the old SLA.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import TriggerRule, Variable, dag, task
from dag_defaults import shared_dag_arguments
from pricing_api_hook import PricingAPIHook, task_settings
from run_context import price_cache, price_store, run_conf, run_folder, run_time

from core.settings import Settings

DAG_ID = "electricity_price_ingestion"
SETTINGS = Settings.from_env()


def _folder(settings: Settings):
    return run_folder(settings.stores.home / "runs" / DAG_ID)


def _fetch_inputs(task: str) -> tuple:
    """What a fetch task hands its function: settings, store, run time, folder, and its providers'
    configurations from their Airflow connections (``PricingAPIHook``)."""
    from ingestion.providers import FETCH_TASKS

    settings = task_settings()
    configs = {s: PricingAPIHook(s, settings).get_config() for s in FETCH_TASKS[task]}
    return settings, price_store(settings), run_time(), _folder(settings), configs


# A fetch task retries within its provider's budget (EOPT_PROVIDER_BUDGET_S, under the 5-minute
# deadline); an Airflow retry on top would run past the deadline, and the next cycle is 15 minutes
# away. The execution timeout is the budget plus room to save what was fetched.
FETCH = {
    "pool": "pricing_api_pool",
    "retries": 0,
    "execution_timeout": timedelta(seconds=SETTINGS.providers.budget_s + 30),
}


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
        from pipelines.electricity_price_ingestion import check_api_health

        settings = task_settings()
        return check_api_health(price_store(settings), settings, run_time())

    @task.short_circuit
    def check_markets_open() -> bool:
        from pipelines.electricity_price_ingestion import check_markets_open

        settings = task_settings()
        return check_markets_open(
            price_store(settings), settings.regions, run_time(), settings.catalogue, bool(run_conf().get("force"))
        )

    @task(**FETCH)
    def fetch_flatpeak() -> dict:
        from pipelines.electricity_price_ingestion import fetch_flatpeak

        return fetch_flatpeak(*_fetch_inputs("flatpeak"))

    @task(**FETCH)
    def fetch_nrel() -> dict:
        from pipelines.electricity_price_ingestion import fetch_nrel

        return fetch_nrel(*_fetch_inputs("nrel"))

    @task(**FETCH)
    def fetch_iea() -> dict:
        from pipelines.electricity_price_ingestion import fetch_iea

        return fetch_iea(*_fetch_inputs("iea"))

    @task(**FETCH)
    def fetch_entsoe() -> dict:
        from pipelines.electricity_price_ingestion import fetch_entsoe

        return fetch_entsoe(*_fetch_inputs("entsoe"))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def aggregate_prices() -> dict:
        from pipelines.electricity_price_ingestion import aggregate_prices

        settings = task_settings()
        return aggregate_prices(price_store(settings), _folder(settings))

    @task
    def validate_data_quality(aggregated: dict) -> dict:
        from pipelines.electricity_price_ingestion import validate_data_quality

        settings = task_settings()
        return validate_data_quality(
            price_store(settings),
            run_time(),
            settings.providers.min_records,
            _folder(settings),
            aggregated["path"],
            settings.catalogue,
        )

    @task
    def store_prices(validated: dict, aggregated: dict) -> dict:
        from pipelines.electricity_price_ingestion import store_prices

        return store_prices(price_store(task_settings()), validated["path"], aggregated.get("exogenous_path"))

    @task
    def update_cache(stored: dict) -> dict:
        from pipelines.electricity_price_ingestion import update_cache

        settings = task_settings()
        return update_cache(price_store(settings), price_cache(settings), stored["regions"])

    @task.short_circuit
    def forecast_requested() -> bool:
        from pipelines.electricity_price_ingestion import forecast_requested

        return forecast_requested(run_conf(), Variable.get("trigger_forecast_after_ingestion", default=None))

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
    cached = update_cache(store_prices(validate_data_quality(aggregated), aggregated))
    cached >> forecast_requested() >> trigger_forecast_dag


electricity_price_ingestion()
