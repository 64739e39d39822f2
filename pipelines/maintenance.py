"""maintenance's tasks as plain functions, named as the DAG's tasks; ``eopt maintenance`` runs them in a row.

Each step removes what is past its bound in ``settings.retention`` as of ``as_of`` (the DAG
run's time), or with ``dry_run`` lists it and removes nothing, and returns a ``StepReport``
(every item with its bytes), recorded in ``maintenance_runs`` (``eopt metrics serve`` exports each
step's last success and bytes). The order matters once: quarantine rows go before the payloads they
reference, so a payload is removed only when no kept row points at it.

What is never removed: registered model versions in Production or Staging, with an alias, or
among the newest ``EOPT_RETENTION_ARCHIVED_CHAMPIONS`` former champions, the runs behind them,
the promotion history and the stored prices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from core.settings import Settings
from retention import airflow_metadata, files, optuna_studies, quality_runs, store_rows
from retention.protected import protected
from retention.removals import StepReport
from storage.maintenance import MaintenanceRunStore
from storage.prices import PriceStore
from storage.promotions import PromotionStore

log = logging.getLogger(__name__)

# Every step of the DAG in the order ``eopt maintenance run`` takes them.
STEPS = (
    "remove_quality_runs",
    "remove_quality_report_folders",
    "remove_quarantine_rows",
    "remove_raw_payloads",
    "remove_hourly_forecasts",
    "remove_superseded_studies",
    "remove_airflow_logs",
    "clean_airflow_metadata",
    "vacuum_stores",
)


def _recorded(store: PriceStore, report: StepReport) -> StepReport:
    """The report, recorded in ``maintenance_runs`` (the exporter's time of the step's last success)."""
    MaintenanceRunStore(store.engine).record(
        report.step, dry_run=report.dry_run, items=report.count, size=report.bytes, rows=report.rows
    )
    return report


def _before(as_of: pd.Timestamp, days: int) -> pd.Timestamp:
    return pd.Timestamp(as_of) - pd.Timedelta(days=days)


def remove_quality_runs(
    store: PriceStore, client: Any, settings: Settings, as_of: pd.Timestamp, *, dry_run: bool
) -> StepReport:
    """Data-quality MLflow runs past ``EOPT_RETENTION_QUALITY_RUN_DAYS``: deleted, then ``mlflow gc``;
    never a run behind a kept model version."""
    keep = protected(client, PromotionStore(store.engine), settings.retention.archived_champions)
    for line in keep.describe():
        log.info("%s", line)
    return _recorded(store, quality_runs.remove_quality_runs(client, settings, keep, as_of, dry_run=dry_run))


def remove_quality_report_folders(
    store: PriceStore, settings: Settings, as_of: pd.Timestamp, *, dry_run: bool
) -> StepReport:
    """Local data-quality run folders (``$EOPT_HOME/quality/<run id>``) past ``EOPT_RETENTION_QUALITY_RUN_DAYS``."""
    cutoff = _before(as_of, settings.retention.quality_run_days)
    return _recorded(store, files.remove_report_folders(settings.quality_dir, cutoff, dry_run=dry_run))


def remove_quarantine_rows(store: PriceStore, settings: Settings, as_of: pd.Timestamp, *, dry_run: bool) -> StepReport:
    """Quarantine rows last seen before ``EOPT_RETENTION_QUARANTINE_DAYS``."""
    cutoff = _before(as_of, settings.retention.quarantine_days)
    return _recorded(store, store_rows.remove_quarantine_rows(store.engine, cutoff, dry_run=dry_run))


def remove_raw_payloads(store: PriceStore, settings: Settings, as_of: pd.Timestamp, *, dry_run: bool) -> StepReport:
    """Archived payloads past ``EOPT_RETENTION_RAW_PAYLOAD_DAYS`` that no kept quarantine row references
    (the rows ``remove_quarantine_rows`` keeps, so a dry run of both lists what a real run removes)."""
    referenced = store_rows.kept_payload_refs(store.engine, _before(as_of, settings.retention.quarantine_days))
    cutoff = _before(as_of, settings.retention.raw_payload_days)
    return _recorded(store, files.remove_raw_payloads(settings.raw_payload_dir, referenced, cutoff, dry_run=dry_run))


def remove_hourly_forecasts(store: PriceStore, settings: Settings, as_of: pd.Timestamp, *, dry_run: bool) -> StepReport:
    """Target hours older than ``EOPT_RETENTION_FORECAST_HOURLY_DAYS`` keep only their day-ahead issue."""
    cutoff = _before(as_of, settings.retention.forecast_hourly_days)
    return _recorded(store, store_rows.remove_hourly_forecasts(store.engine, cutoff, dry_run=dry_run))


def remove_superseded_studies(store: PriceStore, settings: Settings, *, dry_run: bool) -> StepReport:
    """Optuna studies of superseded windows: all but the newest ``EOPT_RETENTION_OPTUNA_STUDIES`` per region and model."""
    report = optuna_studies.remove_superseded_studies(
        settings.stores.optuna_storage, settings.retention.optuna_studies, dry_run=dry_run
    )
    return _recorded(store, report)


def remove_airflow_logs(
    store: PriceStore, settings: Settings, log_folder: Path, as_of: pd.Timestamp, *, dry_run: bool
) -> StepReport:
    """Airflow log files under ``log_folder`` not written for ``EOPT_RETENTION_AIRFLOW_LOG_DAYS`` (a DAG
    in ``EOPT_RETENTION_AIRFLOW_LOG_DAYS_BY_DAG``: its own days)."""
    retention = settings.retention
    cutoff = _before(as_of, retention.airflow_log_days)
    by_dag = {dag: _before(as_of, days) for dag, days in retention.airflow_log_days_by_dag.items()}
    return _recorded(store, files.remove_task_logs(log_folder, cutoff, dry_run=dry_run, cutoffs_by_dag=by_dag))


def clean_airflow_metadata(
    store: PriceStore, settings: Settings, environment: Mapping[str, str] | None, as_of: pd.Timestamp, *, dry_run: bool
) -> StepReport:
    """``airflow db clean`` of rows older than ``EOPT_RETENTION_AIRFLOW_METADATA_DAYS`` (no archive tables), on
    ``environment`` (None: this process's, as inside an Airflow task)."""
    cutoff = _before(as_of, settings.retention.airflow_metadata_days)
    return _recorded(store, airflow_metadata.clean_airflow_metadata(environment, cutoff, dry_run=dry_run))


def vacuum_stores(store: PriceStore, settings: Settings, *, dry_run: bool) -> StepReport:
    """``VACUUM`` of the product's store (``VACUUM ANALYZE`` of its trimmed tables on PostgreSQL) and of
    an embedded SQLite MLflow store, so what the other steps deleted leaves the files."""
    engines = {"the price and forecast store": store.engine}
    tracking_uri = settings.stores.mlflow_tracking_uri
    mlflow_engine = sa.create_engine(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    if mlflow_engine is not None:
        engines["the MLflow store"] = mlflow_engine
    try:
        return _recorded(store, store_rows.vacuum_stores(engines, dry_run=dry_run))
    finally:
        if mlflow_engine is not None:
            mlflow_engine.dispose()


def run_maintenance(
    store: PriceStore,
    client: Any,
    settings: Settings,
    as_of: pd.Timestamp,
    log_folder: Path,
    environment: Mapping[str, str] | None,
    *,
    dry_run: bool,
    airflow_metadata: bool = True,
) -> list[StepReport]:
    """Every step in ``STEPS`` order in one process; ``airflow_metadata`` False leaves the
    Airflow metadata alone (no Airflow database to clean)."""
    reports = [
        remove_quality_runs(store, client, settings, as_of, dry_run=dry_run),
        remove_quality_report_folders(store, settings, as_of, dry_run=dry_run),
        remove_quarantine_rows(store, settings, as_of, dry_run=dry_run),
        remove_raw_payloads(store, settings, as_of, dry_run=dry_run),
        remove_hourly_forecasts(store, settings, as_of, dry_run=dry_run),
        remove_superseded_studies(store, settings, dry_run=dry_run),
        remove_airflow_logs(store, settings, log_folder, as_of, dry_run=dry_run),
    ]
    if airflow_metadata:
        reports.append(clean_airflow_metadata(store, settings, environment, as_of, dry_run=dry_run))
    reports.append(vacuum_stores(store, settings, dry_run=dry_run))
    return reports
