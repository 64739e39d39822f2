"""The data-quality report of one run: results, health score and links to the drift reports.

``publish_report`` writes ``report.md`` and ``report.html`` (and ``results.json``) into the run's
folder, stores one ``quality_reports`` row per result plus the summary row, and logs the report,
the results and every drift report (HTML + JSON) to one MLflow run in the ``data-quality``
experiment. MLflow being down costs the MLflow copy only: the files and the table rows are the
report, and the summary says MLflow could not be reached.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from core.settings import Settings
from core.check_results import CheckResult, health_score, worst_status
from storage.quality import QualityReportStore
from training import tracking

log = logging.getLogger(__name__)

CHECK_ORDER = ("freshness", "completeness", "price_range", "api_health", "model_accuracy", "drift")
STATUS_MARK = {"ok": "OK", "warn": "WARN", "critical": "CRITICAL", "skipped": "SKIPPED"}


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
        self.results = sorted(self.results, key=lambda r: (CHECK_ORDER.index(r.name) if r.name in CHECK_ORDER
                                                           else len(CHECK_ORDER), r.region, r.subject or ""))
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
            "run_id": self.run_id, "as_of": self.as_of.isoformat(), "status": self.status,
            "health_score": self.health_score, "checks": len(self.results),
            **{status: self.count(status) for status in ("ok", "warn", "critical", "skipped")},
            "report_html": self.paths.get("html"), "report_markdown": self.paths.get("markdown"),
            "mlflow_run_id": self.mlflow_run_id, "mlflow_error": self.mlflow_error,
            "drift_reports": self.drift_reports(), "plots": self.plots(),
        }

    def plots(self) -> dict[str, str]:
        """Per region, the forecast-vs-actual picture of the realized accuracy check."""
        return {r.region: r.details["plot"] for r in self.results
                if r.name == "model_accuracy" and r.details.get("plot")}

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

    # -- rendering ------------------------------------------------------------------------------
    def _link(self, path: str) -> str:
        """A path relative to the report's folder when the file is inside it (links survive a copy)."""
        try:
            return str(Path(path).resolve().relative_to(self.folder.resolve()))
        except ValueError:
            return path

    def markdown(self) -> str:
        score = "n/a (nothing could be checked)" if self.health_score is None else f"{self.health_score:.1f} / 100"
        lines = [
            f"# Data quality report: {self.as_of:%Y-%m-%d %H:%M} UTC",
            "",
            f"Run `{self.run_id}`. Health score **{score}**; overall **{STATUS_MARK[self.status]}**: "
            f"{self.count('ok')} ok, {self.count('warn')} warn, {self.count('critical')} critical, "
            f"{self.count('skipped')} could not be checked.",
            "",
        ]
        if self.critical():
            lines += ["## Critical", ""] + [f"- {r.line()}" for r in self.critical()] + [""]
        lines += ["## Results", "", "| check | region | subject | status | value | threshold | finding |",
                  "|---|---|---|---|---|---|---|"]
        for r in self.results:
            value = "" if r.value is None else f"{r.value:g}"
            threshold = "" if r.threshold is None else f"{r.threshold:g}"
            message = r.message.replace("|", "\\|")
            lines.append(f"| {r.name} | {r.region} | {r.subject or ''} | {STATUS_MARK[r.status]} | {value} | "
                         f"{threshold} | {message} |")
        skipped = [r for r in self.results if r.status == "skipped"]
        if skipped:
            lines += ["", "## Not checked", ""] + [f"- {r.name} {r.region}"
                                                   + (f"/{r.subject}" if r.subject else "") + f": {r.message}"
                                                   for r in skipped]
        drift = self.drift_reports()
        if drift:
            lines += ["", "## Drift reports (Evidently)", ""]
            for region, files in sorted(drift.items()):
                links = ", ".join(f"[{kind.replace('report_', '').replace('_', ' ')}]({self._link(path)})"
                                  for kind, path in sorted(files.items()))
                lines.append(f"- {region}: {links}")
        if self.plots():
            lines += ["", "## Served forecasts vs realized prices", ""]
            lines += [f"![{region}]({self._link(path)})" for region, path in sorted(self.plots().items())]
        if self.mlflow_run_id:
            lines += ["", f"MLflow: run `{self.mlflow_run_id}` in the data-quality experiment holds this report and "
                      "the drift reports as artifacts."]
        elif self.mlflow_error:
            lines += ["", f"MLflow: not logged ({self.mlflow_error}); the files next to this report are complete."]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        colours = {"ok": "#1a7f37", "warn": "#9a6700", "critical": "#cf222e", "skipped": "#6e7781"}
        score = "n/a" if self.health_score is None else f"{self.health_score:.1f}"
        rows = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td>{html.escape(r.region)}</td><td>{html.escape(r.subject or '')}</td>"
            f"<td style='color:{colours[r.status]};font-weight:bold'>{STATUS_MARK[r.status]}</td>"
            f"<td>{'' if r.value is None else f'{r.value:g}'}</td>"
            f"<td>{'' if r.threshold is None else f'{r.threshold:g}'}</td><td>{html.escape(r.message)}</td></tr>"
            for r in self.results)
        drift = "".join(
            f"<li>{html.escape(region)}: " + ", ".join(
                f"<a href='{html.escape(self._link(path))}'>{html.escape(kind.replace('report_', '').replace('_', ' '))}</a>"
                for kind, path in sorted(files.items())) + "</li>"
            for region, files in sorted(self.drift_reports().items()))
        critical = "".join(f"<li>{html.escape(r.line())}</li>" for r in self.critical())
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Data quality {self.as_of:%Y-%m-%d %H:%M}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}</style></head><body>"
            f"<h1>Data quality report: {self.as_of:%Y-%m-%d %H:%M} UTC</h1>"
            f"<p>Run <code>{html.escape(self.run_id)}</code>. Health score <b>{score}</b> / 100; overall "
            f"<b style='color:{colours[self.status]}'>{STATUS_MARK[self.status]}</b>: {self.count('ok')} ok, "
            f"{self.count('warn')} warn, {self.count('critical')} critical, {self.count('skipped')} not checked.</p>"
            + (f"<h2>Critical</h2><ul>{critical}</ul>" if critical else "")
            + "<h2>Results</h2><table><tr><th>check</th><th>region</th><th>subject</th><th>status</th><th>value</th>"
              f"<th>threshold</th><th>finding</th></tr>{rows}</table>"
            + (f"<h2>Drift reports (Evidently)</h2><ul>{drift}</ul>" if drift else "")
            + ("<h2>Served forecasts vs realized prices</h2>" + "".join(
                f"<p><img src='{html.escape(self._link(path))}' alt='{html.escape(region)}' style='max-width:100%'></p>"
                for region, path in sorted(self.plots().items())) if self.plots() else "")
            + "</body></html>"
        )


def publish_report(settings: Settings, store: QualityReportStore, report: QualityReport,
                   client: Any | None = None) -> QualityReport:
    """Write the files, log them to MLflow, store the rows; idempotent for the same run id (its
    MLflow run is reused, its rows replaced). MLflow failing at any step costs the MLflow copy only."""
    report.folder.mkdir(parents=True, exist_ok=True)
    markdown, page, results = report.folder / "report.md", report.folder / "report.html", report.folder / "results.json"
    report.paths = {"markdown": str(markdown), "html": str(page), "results": str(results)}

    def write_files() -> None:
        markdown.write_text(report.markdown())
        page.write_text(report.html())
        results.write_text(json.dumps({"summary": report.summary(), "results": [r.to_dict() for r in report.results]},
                                      indent=2, default=str))

    def mlflow_failed(exc: BaseException) -> None:
        report.mlflow_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.error("data-quality report %s: logging to MLflow failed (%s); the report files and the "
                  "quality_reports rows are complete", report.run_id, report.mlflow_error)

    if client is not None:
        try:
            report.mlflow_run_id = _mlflow_run(settings, client, report)
        except Exception as exc:  # noqa: BLE001 - an unreachable MLflow must not lose the report itself
            mlflow_failed(exc)
    write_files()
    if client is not None and report.mlflow_run_id:
        try:
            _log_to_mlflow(client, report.mlflow_run_id, report, [markdown, page, results])
        except Exception as exc:  # noqa: BLE001 - e.g. the artifact store refuses: keep the report, say so
            mlflow_failed(exc)
            _finish_quietly(client, report.mlflow_run_id)
            report.mlflow_run_id = None
            write_files()  # the files must not claim an MLflow copy that is incomplete
    store.write_run(report.run_id, report.results, health_score=report.health_score, summary=report.summary(),
                    report_path=str(page))
    return report


def _mlflow_run(settings: Settings, client: Any, report: QualityReport) -> str:
    """The MLflow run of this data-quality run: the one an earlier attempt started, else a new one."""
    experiment = tracking.experiment_id(client, settings, settings.quality.experiment,
                                        purpose="daily data-quality checks and Evidently drift reports")
    tags = {"eopt.kind": "data-quality", "eopt.airflow_run_id": report.run_id, "eopt.as_of": report.as_of.isoformat(),
            "eopt.status": report.status}
    earlier = client.search_runs([experiment], f"tags.`eopt.airflow_run_id` = '{report.run_id.replace(chr(39), '')}'",
                                 max_results=1)
    if earlier:
        run = earlier[0].info.run_id
        for key, value in tags.items():
            client.set_tag(run, key, value)
        return run
    return tracking.start_run(client, experiment, f"data quality {report.as_of:%Y-%m-%d %H:%M}", tags=tags)


def _log_to_mlflow(client: Any, run: str, report: QualityReport, files: list[Path]) -> None:
    metrics: dict[str, float] = {"health_score": report.health_score,
                                 **{f"checks_{s}": float(report.count(s)) for s in ("ok", "warn", "critical", "skipped")}}
    for r in report.results:
        if r.name in ("drift", "model_accuracy", "freshness") and r.value is not None:
            metrics[f"{r.name}_{r.region}"] = r.value
    tracking.log_metrics(client, run, metrics)
    tracking.log_artifacts(client, run, [Path(p) for p in report.plots().values() if Path(p).is_file()], "accuracy")
    for region, files_of_region in report.drift_reports().items():
        tracking.log_artifacts(client, run, [Path(p) for p in files_of_region.values() if Path(p).is_file()],
                               f"drift/{region}")
    tracking.log_artifacts(client, run, files)
    tracking.finish(client, run, ok=True)


def _finish_quietly(client: Any, run: str) -> None:
    """Mark a run whose logging failed as FAILED, so the MLflow UI does not show it running forever."""
    try:
        tracking.finish(client, run, ok=False)
    except Exception as exc:  # noqa: BLE001 - MLflow is what failed; the report says so already
        log.warning("could not mark MLflow run %s failed: %s", run, exc)


def results_of(payloads: Iterable[Any]) -> list[CheckResult]:
    """Check results from what the check tasks returned (lists of dicts; None for a task that did not run)."""
    out: list[CheckResult] = []
    for payload in payloads:
        for item in payload or []:
            out.append(item if isinstance(item, CheckResult) else CheckResult.from_dict(item))
    return out
