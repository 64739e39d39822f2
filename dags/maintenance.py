"""maintenance: daily at 03:30 UTC, remove what is past retention and keep the disks bounded.

Thin wiring: each task calls the function of the same name in ``pipelines.maintenance`` (``eopt
maintenance run`` runs them in a row; ``eopt maintenance <step>`` one of them). The bounds are
the ``EOPT_RETENTION_*`` settings, measured back from the run's time. ``conf={"dry_run": true}``
lists what every task would remove, with its bytes, and removes nothing. Each task returns its
report (step, count, bytes, rows, the first items) through XCom and logs every item.

- ``remove_quality_runs``: data-quality MLflow runs (Evidently and quality reports): deleted
  through MLflow, then ``mlflow gc``; never a run behind a Production/Staging version, an alias
  or one of the newest former champions.
- ``remove_quality_report_folders``: their local copies under ``$EOPT_HOME/quality``.
- ``remove_quarantine_rows`` -> ``remove_raw_payloads``: old quarantine rows, then the archived
  payloads no kept row references.
- ``remove_hourly_forecasts``: old target hours keep only their day-ahead issue.
- ``remove_superseded_studies``: Optuna studies of superseded training windows.
- ``remove_airflow_logs``: task log files under Airflow's ``base_log_folder``.
- ``clean_airflow_metadata``: ``airflow db clean`` without archive tables.
- ``vacuum_stores`` (a teardown: after every removal, failed or not; a failed removal fails the
  run, a failed vacuum only its task): ``VACUUM`` of the product's store and the embedded MLflow store.

Promotion history and stored prices are never touched.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task, teardown
from dag_defaults import shared_dag_arguments
from pricing_api_hook import task_settings
from run_context import price_store, registry_client, run_conf, run_time

from core.settings import Settings

DAG_ID = "maintenance"
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
    def clean_airflow_metadata() -> dict:
        from pipelines.maintenance import clean_airflow_metadata

        # None: `airflow db clean` runs on this worker's environment, its metadata database
        settings = task_settings()
        return clean_airflow_metadata(price_store(settings), settings, None, run_time(), dry_run=_dry_run()).to_dict()

    # a teardown: it runs when every removal is done, failed or not, and the run's state is theirs
    @teardown
    @task
    def vacuum_stores() -> dict:
        from pipelines.maintenance import vacuum_stores

        settings = task_settings()
        return vacuum_stores(price_store(settings), settings, dry_run=_dry_run()).to_dict()

    removals = [
        remove_quality_runs(),
        remove_quality_report_folders(),
        remove_quarantine_rows() >> remove_raw_payloads(),
        remove_hourly_forecasts(),
        remove_superseded_studies(),
        remove_airflow_logs(),
        clean_airflow_metadata(),
    ]
    removals >> vacuum_stores()


maintenance()
