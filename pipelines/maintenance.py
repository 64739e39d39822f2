"""The maintenance DAGs' tasks as plain functions, named as the tasks; ``eopt maintenance`` runs them.

``maintenance`` (daily) removes, ``maintenance_weekly`` cleans the Airflow metadata, vacuums and
evaluates the models, ``maintenance_monthly`` reviews the pools and tests the connections
(``DAG_TASKS``); ``eopt maintenance run`` takes every removal, the clean and the vacuum in a row.

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

import json
import logging
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from core.settings import Settings
from ingestion.http import ProviderConfig
from quality.alerts import Channel, connection_alert, send_alert
from retention import (
    airflow_metadata,
    connections,
    files,
    model_evaluation,
    optuna_studies,
    pool_review,
    quality_runs,
    rejected_versions,
    store_rows,
)
from retention.protected import protected
from retention.removals import ReportOutcome, StepReport
from storage.health import ApiHealthStore
from storage.maintenance import MaintenanceRunStore
from storage.prices import PriceStore
from storage.promotions import PromotionStore

log = logging.getLogger(__name__)

# Every step of the DAG in the order ``eopt maintenance run`` takes them.
STEPS = (
    "remove_quality_runs",
    "remove_rejected_versions",
    "remove_quality_report_folders",
    "remove_quarantine_rows",
    "remove_raw_payloads",
    "remove_hourly_forecasts",
    "remove_superseded_studies",
    "remove_airflow_logs",
    "remove_product_logs",
    "clean_airflow_metadata",
    "vacuum_stores",
)
# The reports, each its own command and task: weekly model evaluation, monthly pool review and connection test.
REPORTS = ("evaluate_models", "review_pools", "check_connections")
# Each DAG's tasks (the deployment guide's cadences): removals daily; metadata clean, vacuum and model
# evaluation weekly; pool review and connection test monthly.
DAG_TASKS = {
    "maintenance": STEPS[:9],
    "maintenance_weekly": ("clean_airflow_metadata", "vacuum_stores", "evaluate_models"),
    "maintenance_monthly": ("review_pools", "check_connections"),
}
POOL_REVIEW_DAYS = 30  # the pool review looks at the task instances that started in the last 30 days


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


def remove_rejected_versions(
    store: PriceStore, client: Any, settings: Settings, as_of: pd.Timestamp, *, dry_run: bool
) -> StepReport:
    """Rejected model versions registered before ``EOPT_RETENTION_REJECTED_VERSION_DAYS``, with their MLflow
    runs: deleted through MLflow, then ``mlflow gc``; never a kept version or its run."""
    promotions = PromotionStore(store.engine)
    keep = protected(client, promotions, settings.retention.archived_champions)
    report = rejected_versions.remove_rejected_versions(client, settings, promotions, keep, as_of, dry_run=dry_run)
    return _recorded(store, report)


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


def remove_product_logs(store: PriceStore, settings: Settings, as_of: pd.Timestamp, *, dry_run: bool) -> StepReport:
    """The product's own service logs under ``$EOPT_HOME/run`` not written for ``EOPT_RETENTION_PRODUCT_LOG_DAYS``."""
    cutoff = _before(as_of, settings.retention.product_log_days)
    return _recorded(store, files.remove_product_logs(settings.service_dir, cutoff, dry_run=dry_run))


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
        remove_rejected_versions(store, client, settings, as_of, dry_run=dry_run),
        remove_quality_report_folders(store, settings, as_of, dry_run=dry_run),
        remove_quarantine_rows(store, settings, as_of, dry_run=dry_run),
        remove_raw_payloads(store, settings, as_of, dry_run=dry_run),
        remove_hourly_forecasts(store, settings, as_of, dry_run=dry_run),
        remove_superseded_studies(store, settings, dry_run=dry_run),
        remove_airflow_logs(store, settings, log_folder, as_of, dry_run=dry_run),
        remove_product_logs(store, settings, as_of, dry_run=dry_run),
    ]
    if airflow_metadata:
        reports.append(clean_airflow_metadata(store, settings, environment, as_of, dry_run=dry_run))
    reports.append(vacuum_stores(store, settings, dry_run=dry_run))
    return reports


# -- reports ---------------------------------------------------------------------------------------


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (times as ISO text, NaN as None) for XCom and the CLI."""
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", date_format="iso"))
    return rows


def _report_run(client: Any, settings: Settings, step: str, as_of: pd.Timestamp, title: str) -> str:
    """The MLflow run of a report (experiment ``EOPT_MAINTENANCE_EXPERIMENT``): the one a run of
    the same step and time started before (a retried task logs into it again), else a new one."""
    from training import tracking

    experiment = tracking.experiment_id(
        client,
        settings,
        settings.retention.report_experiment,
        purpose="maintenance reports: model evaluation, pool review",
    )
    stamp = as_of.isoformat()
    earlier = client.search_runs(
        [experiment], f"tags.`eopt.kind` = '{step}' and tags.`eopt.as_of` = '{stamp}'", max_results=1
    )
    if earlier:
        return str(earlier[0].info.run_id)
    return tracking.start_run(client, experiment, title, tags={"eopt.kind": step, "eopt.as_of": stamp})


def _log_report(
    client: Any,
    run: str,
    tables: Mapping[str, pd.DataFrame],
    pictures: Iterable[Path],
    metrics: Mapping[str, float | None],
) -> None:
    """Each table as an MLflow table (``<name>.json``, shown in the UI's evaluation view) and a CSV,
    the pictures and the metrics; the run finished."""
    from training import tracking

    with tempfile.TemporaryDirectory(prefix="eopt-report-") as scratch:
        for name, frame in tables.items():
            text = frame.astype({c: str for c in frame.columns if str(frame[c].dtype).startswith("datetime")})
            client.log_table(run, text, f"{name}.json")
            csv = Path(scratch) / f"{name}.csv"
            frame.to_csv(csv, index=False)
            client.log_artifact(run, str(csv))
    tracking.log_artifacts(client, run, [p for p in pictures if p.is_file()])
    tracking.log_metrics(client, run, metrics)
    tracking.finish(client, run)


def evaluate_models(
    store: PriceStore, client: Any, settings: Settings, regions: Iterable[str], as_of: pd.Timestamp
) -> ReportOutcome:
    """Each region's realised accuracy over the last 1, 4 and 13 weeks (MAE, rMAE, interval coverage)
    against the champion's promotion figures: a table and a weekly trend picture in MLflow."""
    as_of = pd.Timestamp(as_of).floor("h")
    table, trend = model_evaluation.evaluate_models(store, client, list(regions), as_of)
    outcome = ReportOutcome("evaluate_models", _records(table))
    for row in outcome.rows:
        promoted = (
            "no champion"
            if row["champion_version"] is None
            else f"v{row['champion_version']} at promotion: MAE {row['promotion_mae']}, rMAE {row['promotion_rmae']}"
        )
        outcome.notes.append(
            f"{row['region']} last {row['weeks']} week(s): MAE {row['mae']}, rMAE {row['rmae']}, coverage "
            f"{row['coverage']} over {row['hours']} h ({promoted})"
        )
    run = _report_run(client, settings, "evaluate_models", as_of, f"model evaluation {as_of:%Y-%m-%d %H:%M}")
    metrics = {
        f"{row['region']}_{name}_{row['weeks']}w": row[name]
        for row in outcome.rows
        for name in ("mae", "rmae", "coverage")
    }
    with tempfile.TemporaryDirectory(prefix="eopt-evaluation-") as scratch:
        picture = model_evaluation.trend_plot(
            trend,
            table,
            Path(scratch) / "model_evaluation_trend.png",
            f"served forecasts, weekly, the 13 weeks to {as_of:%Y-%m-%d %H:%M} UTC",
        )
        _log_report(client, run, {"model_evaluation": table, "model_evaluation_trend": trend}, [picture], metrics)
    outcome.mlflow_run_id = run
    MaintenanceRunStore(store.engine).record(outcome.step, dry_run=False, items=0, size=0, rows=len(outcome.rows))
    return outcome.logged()


def review_pools(
    store: PriceStore, client: Any, settings: Settings, metadata_url: str, as_of: pd.Timestamp
) -> ReportOutcome:
    """Each Airflow pool's use over the last ``POOL_REVIEW_DAYS`` days from the metadata database at
    ``metadata_url``: slots, waits for a slot, peak concurrency, a suggested size (a table and a bar
    picture in MLflow)."""
    until = pd.Timestamp(as_of)
    since = until - pd.Timedelta(days=POOL_REVIEW_DAYS)
    table = pool_review.review_metadata(metadata_url, since, until)
    outcome = ReportOutcome("review_pools", _records(table), notes=[pool_review.SUGGESTION_RULE])
    for row in outcome.rows:
        outcome.notes.append(
            f"{row['pool']}: {row['slots']} slot(s), {row['tasks']} task(s), waited for a slot "
            f"{row['slot_wait_total_s']} s in all (p95 {row['slot_wait_p95_s']} s), peak {row['peak_slots_used']} "
            f"used / {row['peak_slots_wanted']} wanted: suggested {row['suggested_slots']}"
        )
    run = _report_run(client, settings, "review_pools", until, f"pool review {until:%Y-%m-%d %H:%M}")
    metrics = {
        f"{row['pool']}_{name}": row[name]
        for row in outcome.rows
        for name in ("slots", "slot_wait_p95_s", "peak_slots_used", "suggested_slots")
    }
    with tempfile.TemporaryDirectory(prefix="eopt-pools-") as scratch:
        picture = pool_review.pool_plot(
            table, Path(scratch) / "pool_review.png", f"pools, {since:%Y-%m-%d} to {until:%Y-%m-%d}"
        )
        _log_report(client, run, {"pool_review": table}, [picture], metrics)
    outcome.mlflow_run_id = run
    MaintenanceRunStore(store.engine).record(outcome.step, dry_run=False, items=0, size=0, rows=len(outcome.rows))
    return outcome.logged()


def check_connections(
    store: PriceStore,
    settings: Settings,
    configs: Mapping[str, ProviderConfig],
    as_of: pd.Timestamp,
    channels: Mapping[str, Channel] | None,
    *,
    run_id: str,
) -> ReportOutcome:
    """Every provider in ``configs`` called once (``retention.connections``), result and latency in
    ``api_health``; a failure alerts through ``channels`` (Slack, email) naming the connection
    (``channels`` None: no alert, as from the command line)."""
    checks = connections.check_connections(configs, settings, ApiHealthStore(store.engine), as_of)
    outcome = ReportOutcome("check_connections", [c.to_dict() for c in checks], notes=[c.line() for c in checks])
    failed = [(c.connection_id, c.source, c.error or "failed") for c in checks if not c.ok]
    if failed and channels is not None:
        sent = send_alert(settings, connection_alert(failed, checked=len(checks), run_id=run_id), channels, {})
        outcome.notes.append(f"alert: slack {sent['slack']}, email {sent['email']}")
    elif failed:
        outcome.notes.append("alert: not sent (no alert channels from the command line)")
    MaintenanceRunStore(store.engine).record(outcome.step, dry_run=False, items=0, size=0, rows=len(outcome.rows))
    return outcome.logged()
