"""data_quality's tasks as plain functions, named as the DAG's tasks; ``eopt quality`` runs them in a row.

``select_regions`` names the run's regions; each per-region check looks at one region (the DAG
maps it over them), ``check_api_health`` at every provider. A check returns ``CheckResult``
objects (the DAG hands them on as dicts through XCom) and logs one line per result; the report
reads them all, with a "not checked" result for each check of a region that did not complete.
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
from drift.performance import performance_drift
from quality import checks
from quality.alerts import Channel, send_quality_alerts
from quality.report import QualityReport, publish_report, results_of
from storage.health import ApiHealthStore
from storage.prices import PriceStore
from storage.quality import QualityReportStore

log = logging.getLogger(__name__)

REGION_CHECKS = (
    "check_data_freshness",
    "check_completeness",
    "check_price_range",
    "check_model_accuracy",
    "check_drift",
)
ALL_REGIONS = "all"  # the region of a check that looks at providers, not regions

# (check task, region) -> its results, or None when that check of that region did not complete
Payloads = Mapping[tuple[str, str], Any]


def _logged(results: list[CheckResult]) -> list[CheckResult]:
    for result in results:
        log.info("%s", result.line())
    return results


def select_regions(settings: Settings, requested: Sequence[str] | None) -> list[str]:
    """The run's regions: ``conf={"regions": [...]}`` or the configured ones; an unknown region is refused by name."""
    regions = settings.chosen_regions(requested)
    log.info("checking %s", ", ".join(regions))
    return regions


def expected_results(regions: Sequence[str]) -> list[tuple[str, str, int | None]]:
    """Every (check task, region, map index) the report reads: the per-region checks mapped over
    ``regions`` in order, and ``check_api_health`` once (not mapped)."""
    per_region: list[tuple[str, str, int | None]] = [
        (task, region, index) for task in REGION_CHECKS for index, region in enumerate(regions)
    ]
    return [*per_region, ("check_api_health", ALL_REGIONS, None)]


def check_data_freshness(store: PriceStore, settings: Settings, region: str, as_of: pd.Timestamp) -> list[CheckResult]:
    """How old the region's newest price is (``quality.checks.freshness``)."""
    return _logged(checks.freshness(store, settings, [region], as_of))


def check_completeness(store: PriceStore, settings: Settings, region: str, as_of: pd.Timestamp) -> list[CheckResult]:
    """Missing hours and gaps of the region, per source, over the window (``quality.checks.completeness``)."""
    return _logged(checks.completeness(store, settings, [region], as_of))


def check_price_range(store: PriceStore, settings: Settings, region: str, as_of: pd.Timestamp) -> list[CheckResult]:
    """The region's outlier hours against the weeks before the window (``quality.checks.price_range``)."""
    return _logged(checks.price_range(store, settings, [region], as_of))


def check_api_health(store: PriceStore, settings: Settings, as_of: pd.Timestamp) -> list[CheckResult]:
    """Each provider's error rate and latency over the last day (``quality.checks.api_health``)."""
    return _logged(checks.api_health(ApiHealthStore(store.engine), settings, as_of))


def check_model_accuracy(
    store: PriceStore, client: Any, settings: Settings, region: str, as_of: pd.Timestamp, folder: Path
) -> list[CheckResult]:
    """The region's served forecasts' realised accuracy against its champion's promotion figures,
    with a forecast-vs-actual picture in ``folder/accuracy``."""
    return _logged(checks.model_accuracy(store, client, settings, [region], as_of, plot_dir=folder / "accuracy"))


def check_drift(
    store: PriceStore, client: Any, settings: Settings, region: str, as_of: pd.Timestamp, folder: Path
) -> list[CheckResult]:
    """The region's input drift (per-family rules, Evidently reports in ``folder/drift``) against the
    same season of its champion's training window, and its champion's forecast-performance drift
    (CUSUM on the realised errors, ``drift.performance``): two results named ``drift``."""
    (folder / "drift").mkdir(parents=True, exist_ok=True)
    return _logged(
        [
            region_drift(settings, store, client, region, as_of, folder / "drift"),
            performance_drift(settings, store, client, region, as_of),
        ]
    )


def generate_quality_report(
    store: PriceStore,
    client: Any,
    settings: Settings,
    run_id: str,
    as_of: pd.Timestamp,
    folder: Path,
    payloads: Payloads,
) -> QualityReport:
    """The report of every check's results (``payloads``; a check of a region that did not
    complete is reported as "not checked", naming the task and the region), stored and logged to MLflow."""
    results = results_of(payloads.values())
    for (task, region), payload in payloads.items():
        if payload is None:  # the task failed or was skipped: say so instead of dropping the check
            where = "" if region == ALL_REGIONS else f" for {region}"
            results.append(
                skipped(
                    task.removeprefix("check_").replace("data_", ""),
                    region,
                    f"the {task} task{where} did not complete; its log in this run says why",
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
    """``{"regions": [...]}`` (model_retraining's conf) for the regions with critical drift (input
    rules or forecast performance) when ``retrain_on_drift`` is on; None otherwise."""
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
) -> dict[tuple[str, str], list[CheckResult]]:
    """Every check of every region in one process (``eopt quality``), keyed as the report reads them."""
    by_task = {
        "check_data_freshness": lambda r: check_data_freshness(store, settings, r, as_of),
        "check_completeness": lambda r: check_completeness(store, settings, r, as_of),
        "check_price_range": lambda r: check_price_range(store, settings, r, as_of),
        "check_model_accuracy": lambda r: check_model_accuracy(store, client, settings, r, as_of, folder),
        "check_drift": lambda r: check_drift(store, client, settings, r, as_of, folder),
        "check_api_health": lambda _: check_api_health(store, settings, as_of),
    }
    return {(task, region): by_task[task](region) for task, region, _ in expected_results(regions)}
