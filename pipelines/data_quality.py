"""data_quality's tasks as plain functions, named as the DAG's tasks; ``eopt quality`` runs them in a row.

Each check returns ``CheckResult`` objects (the DAG hands them on as dicts through XCom); the
report reads them all, with a "not checked" result for a check task that did not complete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from core.check_results import CheckResult, skipped
from core.settings import Settings
from drift.monitor import region_drift
from quality import checks
from quality.alerts import Channel, send_quality_alerts
from quality.report import QualityReport, publish_report, results_of
from storage.health import ApiHealthStore
from storage.prices import PriceStore
from storage.quality import QualityReportStore

log = logging.getLogger(__name__)

CHECK_TASKS = (
    "check_data_freshness",
    "check_completeness",
    "check_price_range",
    "check_api_health",
    "check_model_accuracy",
    "check_drift",
)


def check_data_freshness(
    store: PriceStore, settings: Settings, regions: Sequence[str], as_of: pd.Timestamp
) -> list[CheckResult]:
    """How old each region's newest price is (``quality.checks.freshness``)."""
    return checks.freshness(store, settings, regions, as_of)


def check_completeness(
    store: PriceStore, settings: Settings, regions: Sequence[str], as_of: pd.Timestamp
) -> list[CheckResult]:
    """Missing hours and gaps per region and source over the window (``quality.checks.completeness``)."""
    return checks.completeness(store, settings, regions, as_of)


def check_price_range(
    store: PriceStore, settings: Settings, regions: Sequence[str], as_of: pd.Timestamp
) -> list[CheckResult]:
    """Outlier hours against the weeks before the window (``quality.checks.price_range``)."""
    return checks.price_range(store, settings, regions, as_of)


def check_api_health(store: PriceStore, settings: Settings, as_of: pd.Timestamp) -> list[CheckResult]:
    """Each provider's error rate and latency over the last day (``quality.checks.api_health``)."""
    return checks.api_health(ApiHealthStore(store.engine), settings, as_of)


def check_model_accuracy(
    store: PriceStore, client: Any, settings: Settings, regions: Sequence[str], as_of: pd.Timestamp, folder: Path
) -> list[CheckResult]:
    """The served forecasts' realised accuracy against the champion's promotion figures, with a
    forecast-vs-actual picture per region in ``folder/accuracy``."""
    return checks.model_accuracy(store, client, settings, regions, as_of, plot_dir=folder / "accuracy")


def check_drift(
    store: PriceStore, client: Any, settings: Settings, regions: Sequence[str], as_of: pd.Timestamp, folder: Path
) -> list[CheckResult]:
    """Evidently drift of each region's week against the same season of its champion's training
    window, reports in ``folder/drift``."""
    (folder / "drift").mkdir(parents=True, exist_ok=True)
    return [region_drift(settings, store, client, region, as_of, folder / "drift") for region in regions]


def generate_quality_report(
    store: PriceStore,
    client: Any,
    settings: Settings,
    run_id: str,
    as_of: pd.Timestamp,
    folder: Path,
    payloads: Mapping[str, Any],
) -> QualityReport:
    """The report of every check task's results (``payloads``: task id -> its results, or None when
    the task did not complete, which is reported as "not checked"), stored and logged to MLflow."""
    results = results_of(payloads.values())
    for name, payload in payloads.items():
        if payload is None:  # the task failed or was skipped: say so instead of dropping the check
            results.append(
                skipped(
                    name.removeprefix("check_").replace("data_", ""),
                    "all",
                    f"the {name} task did not complete; its log in this run says why",
                )
            )
    report = publish_report(
        settings, QualityReportStore(store.engine), QualityReport(run_id, as_of, results, folder), client
    )
    summary = report.summary()
    log.info(
        "health score %s: %s ok, %s warn, %s critical, %s not checked; report %s",
        summary["health_score"],
        summary["ok"],
        summary["warn"],
        summary["critical"],
        summary["skipped"],
        summary["report_html"],
    )
    return report


def alert_on_critical(
    settings: Settings,
    results: list[CheckResult],
    channels: Mapping[str, Channel],
    summary: Mapping[str, Any],
    context: dict | None = None,
) -> dict[str, str]:
    """Slack and email when any result is critical; per channel what happened (never raises)."""
    outcome = send_quality_alerts(
        settings,
        results,
        channels,
        run_id=summary["run_id"],
        health_score=summary["health_score"],
        report_path=summary["report_html"],
        context=context,
    )
    for channel, state in outcome.items():
        log.info("alert via %s: %s", channel, state)
    return outcome


def drift_retraining_needed(settings: Settings, results: Iterable[Mapping[str, Any]]) -> dict[str, list[str]] | None:
    """``{"regions": [...]}`` (model_retraining's conf) for the regions with critical drift when
    ``retrain_on_drift`` is on; None otherwise."""
    regions = sorted({r["region"] for r in results if r["name"] == "drift" and r["status"] == "critical"})
    if not regions:
        log.info("no critical drift: model_retraining is not triggered")
        return None
    if not settings.quality.retrain_on_drift:
        log.info(
            "critical drift in %s, but retrain_on_drift is off: not triggering model_retraining", ", ".join(regions)
        )
        return None
    log.info("critical drift in %s: triggering model_retraining for them", ", ".join(regions))
    return {"regions": regions}


def run_checks(
    store: PriceStore, client: Any, settings: Settings, regions: Sequence[str], as_of: pd.Timestamp, folder: Path
) -> dict[str, list[CheckResult]]:
    """Every check task's results in one process (``eopt quality``), keyed by task id."""
    return {
        "check_data_freshness": check_data_freshness(store, settings, regions, as_of),
        "check_completeness": check_completeness(store, settings, regions, as_of),
        "check_price_range": check_price_range(store, settings, regions, as_of),
        "check_api_health": check_api_health(store, settings, as_of),
        "check_model_accuracy": check_model_accuracy(store, client, settings, regions, as_of, folder),
        "check_drift": check_drift(store, client, settings, regions, as_of, folder),
    }
