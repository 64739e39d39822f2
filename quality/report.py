"""The data-quality report of one run: results, health score and links to the drift reports.

``publish_report`` writes ``report.md`` and ``report.html`` (rendered from ``quality/templates/``)
and ``results.json`` into the run's folder, stores one ``quality_reports`` row per result plus the
summary row, and logs the report, the results and every drift report (HTML + JSON) to one MLflow
run in the ``data-quality`` experiment. MLflow being down costs the MLflow copy only: the files and
the table rows are the report, and the summary says MLflow could not be reached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.check_results import CheckResult, health_score, worst_status
from core.settings import Settings
from quality.rendering import render
from storage.quality import QualityReportStore
from training import tracking

log = logging.getLogger(__name__)

CHECK_ORDER = ("freshness", "completeness", "price_range", "api_health", "model_accuracy", "drift")
STATUS_MARK = {"ok": "OK", "warn": "WARN", "critical": "CRITICAL", "skipped": "SKIPPED"}
STATUS_COLOUR = {"ok": "#1a7f37", "warn": "#9a6700", "critical": "#cf222e", "skipped": "#6e7781"}


@dataclass
class QualityReport:
    run_id: str
    as_of: pd.Timestamp
    results: list[CheckResult]
    folder: Path
    health_score: float | None = None
    mlflow_run_id: str | None = None
    mlflow_error: str | None = None
    paths: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.results = sorted(
            self.results,
            key=lambda r: (
                CHECK_ORDER.index(r.name) if r.name in CHECK_ORDER else len(CHECK_ORDER),
                r.region,
                r.subject or "",
            ),
        )
        self.health_score = health_score(self.results)

    @property
    def status(self) -> str:
        return worst_status(self.results)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def critical(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "critical"]

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "status": self.status,
            "health_score": self.health_score,
            "checks": len(self.results),
            **{status: self.count(status) for status in ("ok", "warn", "critical", "skipped")},
            "report_html": self.paths.get("html"),
            "report_markdown": self.paths.get("markdown"),
            "mlflow_run_id": self.mlflow_run_id,
            "mlflow_error": self.mlflow_error,
            "drift_reports": self.drift_reports(),
            "plots": self.plots(),
        }

    def plots(self) -> dict[str, str]:
        """Per region, the forecast-vs-actual picture of the realized accuracy check."""
        return {
            r.region: r.details["plot"] for r in self.results if r.name == "model_accuracy" and r.details.get("plot")
        }

    def drift_reports(self) -> dict[str, dict[str, str]]:
        """Per region, the drift report files (feature and prediction drift, HTML and JSON)."""
        out: dict[str, dict[str, str]] = {}
        for r in self.results:
            if r.name != "drift":
                continue
            files = {k: v for k, v in r.details.items() if k.startswith("report_") and v}
            prediction = r.details.get("prediction") or {}
            files.update({f"prediction_{k}": v for k, v in prediction.items() if k.startswith("report_") and v})
            if files:
                out[r.region] = files
        return out

    def drift_findings(self) -> list[dict[str, Any]]:
        """Every drift finding of the run, per region: each rule past its warn threshold (family, series,
        its statistic and thresholds, the text naming what moved and by how much), and the
        forecast-performance result when it is not ok."""
        out: list[dict[str, Any]] = []
        for r in self.results:
            if r.name != "drift" or r.status == "skipped":
                continue
            for finding in r.details.get("findings") or []:
                out.append({"region": r.region, **finding})
            if r.subject == "performance" and r.status in ("warn", "critical"):
                out.append(
                    {
                        "region": r.region,
                        "family": "forecast_errors",
                        "subject": r.details.get("model"),
                        "status": r.status,
                        "score": r.value,
                        "warn": r.details.get("warn_h"),
                        "critical": r.threshold,
                        "text": r.message,
                    }
                )
        return out

    # -- rendering ------------------------------------------------------------------------------
    def _link(self, path: str) -> str:
        """A path relative to the report's folder when the file is inside it (links survive a copy)."""
        try:
            return str(Path(path).resolve().relative_to(self.folder.resolve()))
        except ValueError:
            return path

    def _drift_links(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Per region, the drift report files as (label, link): ``("NP", [("html", "drift/drift_NP.html"), ...])``."""
        return [
            (
                region,
                [
                    (kind.replace("report_", "").replace("_", " "), self._link(path))
                    for kind, path in sorted(files.items())
                ],
            )
            for region, files in sorted(self.drift_reports().items())
        ]

    def _render(self, template: str) -> str:
        return render(
            template,
            report=self,
            marks=STATUS_MARK,
            colours=STATUS_COLOUR,
            drift=self._drift_links(),
            plots=[(region, self._link(path)) for region, path in sorted(self.plots().items())],
        )

    def markdown(self) -> str:
        """``report.md``: quality/templates/report.md.j2."""
        return self._render("report.md.j2")

    def html(self) -> str:
        """``report.html``: quality/templates/report.html.j2 (autoescaped)."""
        return self._render("report.html.j2")


def publish_report(
    settings: Settings, store: QualityReportStore, report: QualityReport, client: Any | None = None
) -> QualityReport:
    """Write the files, log them to MLflow, store the rows; idempotent for the same run id (its
    MLflow run is reused, its rows replaced). MLflow failing at any step costs the MLflow copy only."""
    report.folder.mkdir(parents=True, exist_ok=True)
    markdown, page, results = report.folder / "report.md", report.folder / "report.html", report.folder / "results.json"
    report.paths = {"markdown": str(markdown), "html": str(page), "results": str(results)}

    def write_files() -> None:
        markdown.write_text(report.markdown())
        page.write_text(report.html())
        results.write_text(
            json.dumps(
                {"summary": report.summary(), "results": [r.to_dict() for r in report.results]}, indent=2, default=str
            )
        )

    def mlflow_failed(exc: BaseException) -> None:
        report.mlflow_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.error(
            "data-quality report %s: logging to MLflow failed (%s); the report files and the "
            "quality_reports rows are complete",
            report.run_id,
            report.mlflow_error,
        )

    if client is not None:
        try:
            report.mlflow_run_id = _mlflow_run(settings, client, report)
        except Exception as exc:
            mlflow_failed(exc)
    write_files()
    if client is not None and report.mlflow_run_id:
        try:
            _log_to_mlflow(client, report.mlflow_run_id, report, [markdown, page, results])
        except Exception as exc:
            mlflow_failed(exc)
            _finish_quietly(client, report.mlflow_run_id)
            report.mlflow_run_id = None
            write_files()  # the files must not claim an MLflow copy that is incomplete
    store.write_run(
        report.run_id, report.results, health_score=report.health_score, summary=report.summary(), report_path=str(page)
    )
    return report


def _mlflow_run(settings: Settings, client: Any, report: QualityReport) -> str:
    """The MLflow run of this data-quality run: the one an earlier attempt started, else a new one."""
    experiment = tracking.experiment_id(
        client, settings, settings.quality.experiment, purpose="daily data-quality checks and Evidently drift reports"
    )
    tags = {
        "eopt.kind": "data-quality",
        "eopt.airflow_run_id": report.run_id,
        "eopt.as_of": report.as_of.isoformat(),
        "eopt.status": report.status,
    }
    earlier = client.search_runs(
        [experiment], f"tags.`eopt.airflow_run_id` = '{report.run_id.replace(chr(39), '')}'", max_results=1
    )
    if earlier:
        run = earlier[0].info.run_id
        for key, value in tags.items():
            client.set_tag(run, key, value)
        return run
    return tracking.start_run(client, experiment, f"data quality {report.as_of:%Y-%m-%d %H:%M}", tags=tags)


def _log_to_mlflow(client: Any, run: str, report: QualityReport, files: list[Path]) -> None:
    metrics: dict[str, float | None] = {  # log_metrics leaves out None (no health score when nothing was checked)
        "health_score": report.health_score,
        **{f"checks_{s}": float(report.count(s)) for s in ("ok", "warn", "critical", "skipped")},
    }
    for r in report.results:
        if r.name in ("drift", "model_accuracy", "freshness") and r.value is not None:
            metrics[f"{r.name}_{r.region}"] = r.value
    tracking.log_metrics(client, run, metrics)
    tracking.log_artifacts(client, run, [Path(p) for p in report.plots().values() if Path(p).is_file()], "accuracy")
    for region, files_of_region in report.drift_reports().items():
        tracking.log_artifacts(
            client, run, [Path(p) for p in files_of_region.values() if Path(p).is_file()], f"drift/{region}"
        )
    tracking.log_artifacts(client, run, files)
    tracking.finish(client, run, ok=True)


def _finish_quietly(client: Any, run: str) -> None:
    """Mark a run whose logging failed as FAILED, so the MLflow UI does not show it running forever."""
    try:
        tracking.finish(client, run, ok=False)
    except Exception as exc:
        log.warning("could not mark MLflow run %s failed: %s", run, exc)


def results_of(payloads: Iterable[Any]) -> list[CheckResult]:
    """Check results from what the check tasks returned (lists of dicts; None for a task that did not run)."""
    out: list[CheckResult] = []
    for payload in payloads:
        for item in payload or []:
            out.append(item if isinstance(item, CheckResult) else CheckResult.from_dict(item))
    return out
