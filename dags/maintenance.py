"""The maintenance schedule as three DAGs, one per cadence (the deployment guide's table):

| DAG | when | tasks |
|---|---|---|
| ``maintenance`` | daily, 03:30 UTC | the removals and log rotation |
| ``maintenance_weekly`` | Mondays, 04:30 UTC | ``airflow db clean`` then ``VACUUM``; the model evaluation |
| ``maintenance_monthly`` | the 1st, 05:00 UTC | the pool review and the connection test |

Thin wiring: each task calls the function of the same name in ``pipelines.maintenance`` (``eopt
maintenance run`` runs every removal and the vacuum in a row; ``eopt maintenance <step>`` one of
them). The bounds are the ``EOPT_RETENTION_*`` settings, measured back from the run's time.
``conf={"dry_run": true}`` lists what every removal would remove, with its bytes, and removes
nothing. Each task returns its report (step, count, bytes, rows, the first items) through XCom
and logs every item.

``maintenance`` (daily; the removals are independent: a failed one fails the run, not the others):

- ``remove_quality_runs``: data-quality MLflow runs (Evidently and quality reports): deleted
  through MLflow, then ``mlflow gc``; never a run behind a Production/Staging version, an alias
  or one of the newest former champions.
- ``remove_rejected_versions``: model versions the gate rejected, past retention, with their MLflow
  runs (deleted through MLflow, then ``mlflow gc``); never a kept version.
- ``remove_quality_report_folders``: their local copies under ``$EOPT_HOME/quality``.
- ``remove_quarantine_rows`` -> ``remove_raw_payloads``: old quarantine rows, then the archived
  payloads no kept row references.
- ``remove_hourly_forecasts``: old target hours keep only their day-ahead issue.
- ``remove_superseded_studies``: Optuna studies of superseded training windows.
- ``remove_airflow_logs``: task log files under Airflow's ``base_log_folder``.
- ``remove_product_logs``: the product's own service logs under ``$EOPT_HOME/run`` (``eopt up``).

Promotion history and stored prices are never touched.

``maintenance_weekly``:

- ``clean_airflow_metadata``: ``airflow db clean`` without archive tables.
- ``vacuum_stores`` (a teardown of the clean: it runs when the clean is done, failed or not; a
  failed clean fails the run, a failed vacuum only its task): ``VACUUM`` of the product's store
  (``VACUUM ANALYZE`` of its trimmed tables on PostgreSQL) and the embedded MLflow store, so what
  the week's removals deleted leaves the files.
- ``evaluate_models``: each region's realised MAE, rMAE and interval coverage over the last 1, 4
  and 13 weeks against its champion's promotion figures: a table and a trend picture in MLflow
  (experiment ``EOPT_MAINTENANCE_EXPERIMENT``).

``maintenance_monthly``:

- ``review_pools``: each pool's slots, waits for a slot, peak concurrency and a suggested size,
  from this deployment's metadata database over the last 30 days: a table and a bar picture in MLflow.
- ``check_connections``: every provider's connection (``PricingAPIHook``) called once at its
  cheapest request; result and latency in ``api_health``; a failure alerts (Slack, email)
  naming the connection.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task, teardown
from dag_defaults import shared_dag_arguments
from pricing_api_hook import task_settings
from run_context import price_store, registry_client, run_conf, run_regions, run_time

from core.settings import Settings

DAG_ID = "maintenance"
WEEKLY_DAG_ID = "maintenance_weekly"
MONTHLY_DAG_ID = "maintenance_monthly"
SETTINGS = Settings.from_env()


def _dry_run() -> bool:
    value = run_conf().get("dry_run", False)
    if not isinstance(value, bool):
        raise ValueError(f'conf dry_run={value!r} is not true or false; trigger with conf {{"dry_run": true}}')
    return value


@dag(
    dag_id=DAG_ID,
    schedule="30 3 * * *",
    dagrun_timeout=timedelta(minutes=120),
    tags=["electricity-optimizer", "maintenance"],
    doc_md=__doc__,
    **shared_dag_arguments(SETTINGS),
)
def maintenance():
    @task
    def remove_quality_runs() -> dict:
        from pipelines.maintenance import remove_quality_runs

        settings = task_settings()
        client = registry_client(settings)
        return remove_quality_runs(price_store(settings), client, settings, run_time(), dry_run=_dry_run()).to_dict()

    @task
    def remove_rejected_versions() -> dict:
        from pipelines.maintenance import remove_rejected_versions

        settings = task_settings()
        client = registry_client(settings)
        return remove_rejected_versions(
            price_store(settings), client, settings, run_time(), dry_run=_dry_run()
        ).to_dict()

    @task
    def remove_quality_report_folders() -> dict:
        from pipelines.maintenance import remove_quality_report_folders

        settings = task_settings()
        return remove_quality_report_folders(price_store(settings), settings, run_time(), dry_run=_dry_run()).to_dict()

    @task
    def remove_quarantine_rows() -> dict:
        from pipelines.maintenance import remove_quarantine_rows

        settings = task_settings()
        return remove_quarantine_rows(price_store(settings), settings, run_time(), dry_run=_dry_run()).to_dict()

    @task
    def remove_raw_payloads() -> dict:
        from pipelines.maintenance import remove_raw_payloads

        settings = task_settings()
        return remove_raw_payloads(price_store(settings), settings, run_time(), dry_run=_dry_run()).to_dict()

    @task
    def remove_hourly_forecasts() -> dict:
        from pipelines.maintenance import remove_hourly_forecasts

        settings = task_settings()
        return remove_hourly_forecasts(price_store(settings), settings, run_time(), dry_run=_dry_run()).to_dict()

    @task
    def remove_superseded_studies() -> dict:
        from pipelines.maintenance import remove_superseded_studies

        settings = task_settings()
        return remove_superseded_studies(price_store(settings), settings, dry_run=_dry_run()).to_dict()

    @task
    def remove_airflow_logs() -> dict:
        from pathlib import Path

        from airflow.configuration import conf

        from pipelines.maintenance import remove_airflow_logs

        settings = task_settings()
        folder = Path(conf.get("logging", "base_log_folder"))
        return remove_airflow_logs(price_store(settings), settings, folder, run_time(), dry_run=_dry_run()).to_dict()

    @task
    def remove_product_logs() -> dict:
        from pipelines.maintenance import remove_product_logs

        settings = task_settings()
        return remove_product_logs(price_store(settings), settings, run_time(), dry_run=_dry_run()).to_dict()

    remove_quality_runs()
    remove_rejected_versions()
    remove_quality_report_folders()
    remove_quarantine_rows() >> remove_raw_payloads()
    remove_hourly_forecasts()
    remove_superseded_studies()
    remove_airflow_logs()
    remove_product_logs()


maintenance()


@dag(
    dag_id=WEEKLY_DAG_ID,
    schedule="30 4 * * 1",
    dagrun_timeout=timedelta(minutes=60),
    tags=["electricity-optimizer", "maintenance"],
    doc_md=__doc__,
    **shared_dag_arguments(SETTINGS),
)
def maintenance_weekly():
    @task
    def clean_airflow_metadata() -> dict:
        from pipelines.maintenance import clean_airflow_metadata

        # None: `airflow db clean` runs on this worker's environment, its metadata database
        settings = task_settings()
        return clean_airflow_metadata(price_store(settings), settings, None, run_time(), dry_run=_dry_run()).to_dict()

    # a teardown: it runs when the clean is done, failed or not, and the run's state is the clean's
    @teardown
    @task
    def vacuum_stores() -> dict:
        from pipelines.maintenance import vacuum_stores

        settings = task_settings()
        return vacuum_stores(price_store(settings), settings, dry_run=_dry_run()).to_dict()

    @task
    def evaluate_models() -> dict:
        from pipelines.maintenance import evaluate_models

        settings = task_settings()
        client = registry_client(settings)
        return evaluate_models(price_store(settings), client, settings, run_regions(settings), run_time()).to_dict()

    clean_airflow_metadata() >> vacuum_stores()
    evaluate_models()


@dag(
    dag_id=MONTHLY_DAG_ID,
    schedule="0 5 1 * *",
    dagrun_timeout=timedelta(minutes=60),
    tags=["electricity-optimizer", "maintenance"],
    doc_md=__doc__,
    **shared_dag_arguments(SETTINGS),
)
def maintenance_monthly():
    @task
    def review_pools() -> dict:
        from airflow.configuration import conf

        from pipelines.maintenance import review_pools

        settings = task_settings()
        client = registry_client(settings)
        metadata_url = conf.get("database", "sql_alchemy_conn")
        return review_pools(price_store(settings), client, settings, metadata_url, run_time()).to_dict()

    @task
    def check_connections() -> dict:
        from airflow.sdk import get_current_context
        from alert_channels import airflow_channels
        from pricing_api_hook import PricingAPIHook

        from pipelines.maintenance import check_connections

        settings = task_settings()
        # the connections are resolved here (only dags/ imports Airflow); the pipeline gets plain configurations
        configs = {source: PricingAPIHook(source, settings).get_config() for source in settings.providers.sources}
        run_id = get_current_context()["run_id"]
        outcome = check_connections(
            price_store(settings), settings, configs, run_time(), airflow_channels(settings), run_id=run_id
        )
        return outcome.to_dict()

    [review_pools(), check_connections()]


maintenance_weekly()
maintenance_monthly()
