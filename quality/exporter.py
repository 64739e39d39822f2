"""Prometheus metrics of the data-quality pipeline and the maintenance DAG, served by ``eopt metrics serve`` (an exporter endpoint).

Why an exporter and not the push gateway: the numbers already live in ``quality_reports``, so a
collector that reads the newest run at every scrape needs no extra service, survives restarts,
and never shows a value that the report does not (a push gateway keeps a pushed value forever,
even after the run that pushed it was deleted or re-run). Prometheus scrapes it like any target
(``monitoring/prometheus.yml``, job ``electricity-optimizer``).

Every metric name the product emits is in ``PRODUCT_METRICS``; the alert rules and dashboards
under ``monitoring/`` may only use these and the statsd mapping's names (a test checks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.check_results import STATUS_CODE
from storage.maintenance import MaintenanceRunStore
from storage.quality import QualityReportStore

log = logging.getLogger(__name__)

PRODUCT_METRICS: dict[str, str] = {
    "data_quality_health_score": "Health score (0-100) of the newest data-quality run: ok 1, warn 0.5, critical 0, skipped left out",
    "data_quality_checks_passed": "Checks of the newest data-quality run whose status is ok",
    "data_quality_checks_total": "Checks of the newest data-quality run, skipped ones included",
    "data_quality_checks_critical": "Checks of the newest data-quality run whose status is critical",
    "data_quality_checks_warning": "Checks of the newest data-quality run whose status is warn",
    "data_quality_checks_skipped": "Checks of the newest data-quality run that could not be checked",
    "data_quality_check_status": "Status of one check of the newest run: 0 ok, 1 warn, 2 critical, -1 skipped",
    "data_quality_check_value": "The measured value of one check of the newest run (see its threshold)",
    "data_quality_check_threshold": "The threshold one check of the newest run compared its value with",
    "data_quality_last_run_timestamp_seconds": "When the newest data-quality run wrote its report (Unix time)",
    "data_quality_drift_share": "Share of drifted columns in a region's Evidently drift report (newest run)",
    "data_quality_drift_rule_status": "Status of one drift rule of a region (family, series) in the newest run: 0 ok, 1 warn, 2 critical",
    "data_quality_drift_rule_score": "The statistic one drift rule of a region compared with its thresholds (newest run)",
    "model_error_cusum": "CUSUM of a region's champion's standardised realised absolute errors (newest run; see its threshold)",
    "price_data_age_hours": "Hours between the newest stored price of a region and the newest data-quality run",
    "model_realized_mape_percent": "Guarded MAPE (%) of a region's stored forecasts against the prices that arrived",
    "model_realized_mape_limit_percent": "The realized-MAPE limit (%) of a region: 15, or its promotion threshold when higher",
    "model_realized_rmae": "rMAE (MAE over the weekly seasonal naive's) of a region's stored forecasts, realized",
    "data_quality_exporter_up": "1 when the exporter could read the quality store at this scrape, else 0",
    "maintenance_last_success_timestamp_seconds": "When a maintenance DAG task last finished a real (not dry) run (Unix time)",
    "maintenance_last_removed_bytes": "Bytes a maintenance DAG task removed in its last real run (rows: estimated)",
}

# Per-check gauges with a name of their own (what alert rules and dashboards read most often).
_NAMED_VALUES = {"drift": "data_quality_drift_share", "freshness": "price_data_age_hours"}


class QualityMetricsCollector(Collector):
    """Reads the newest data-quality run from the store at every scrape."""

    def __init__(self, engine: sa.Engine) -> None:
        self.store = QualityReportStore(engine)

    def describe(self) -> list:
        return []  # the families are built per scrape; nothing to register ahead

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("data_quality_exporter_up", PRODUCT_METRICS["data_quality_exporter_up"])
        try:
            run = self.store.read_run()
        except sa.exc.SQLAlchemyError as exc:
            log.error("cannot read quality_reports (%s); serving data_quality_exporter_up 0", str(exc).splitlines()[0])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if run is None:
            return  # no run yet: no made-up numbers

        def gauge(name: str, labels: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, PRODUCT_METRICS[name], labels=labels)

        if run.health_score is not None:
            score = gauge("data_quality_health_score")
            score.add_metric([], float(run.health_score))
            yield score
        statuses = run.checks["status"].value_counts().to_dict()
        for name, counted in (
            ("data_quality_checks_passed", "ok"),
            ("data_quality_checks_critical", "critical"),
            ("data_quality_checks_warning", "warn"),
            ("data_quality_checks_skipped", "skipped"),
        ):
            family = gauge(name)
            family.add_metric([], float(statuses.get(counted, 0)))
            yield family
        total = gauge("data_quality_checks_total")
        total.add_metric([], float(len(run.checks)))
        yield total
        stamp = gauge("data_quality_last_run_timestamp_seconds")
        stamp.add_metric([], run.created_at.timestamp())
        yield stamp

        labels = ["check", "subject", "region"]
        status, value, threshold = (
            gauge(n, labels)
            for n in ("data_quality_check_status", "data_quality_check_value", "data_quality_check_threshold")
        )
        named = {check: gauge(metric, ["region"]) for check, metric in _NAMED_VALUES.items()}
        mape, rmae = gauge("model_realized_mape_percent", ["region"]), gauge("model_realized_rmae", ["region"])
        mape_limit = gauge("model_realized_mape_limit_percent", ["region"])
        rule_labels = ["region", "family", "series"]
        rule_status = gauge("data_quality_drift_rule_status", rule_labels)
        rule_score = gauge("data_quality_drift_rule_score", rule_labels)
        error_cusum = gauge("model_error_cusum", ["region"])
        for row in run.checks.itertuples(index=False):
            check, _, subject = row.check_name.partition(":")
            key = [check, subject, row.region]
            status.add_metric(key, float(STATUS_CODE[row.status]))
            if row.value is not None and row.value == row.value:
                value.add_metric(key, float(row.value))
                if check in named and not subject:
                    named[check].add_metric([row.region], float(row.value))
            if row.threshold is not None and row.threshold == row.threshold:
                threshold.add_metric(key, float(row.threshold))
            details = row.details or {}
            if check == "drift" and subject == "performance" and row.value is not None and row.value == row.value:
                error_cusum.add_metric([row.region], float(row.value))
            if check == "drift" and not subject:
                for rule in details.get("rules") or []:
                    labels = [row.region, rule["family"], rule.get("subject") or ""]
                    rule_status.add_metric(labels, float(STATUS_CODE[rule["status"]]))
                    if rule.get("score") is not None and rule["score"] == rule["score"]:
                        rule_score.add_metric(labels, min(float(rule["score"]), 1e9))
            if check == "model_accuracy" and row.status != "skipped":
                if details.get("mape") is not None:
                    mape.add_metric([row.region], float(details["mape"]))
                if details.get("rmae") is not None:
                    rmae.add_metric([row.region], float(details["rmae"]))
                if details.get("mape_limit") is not None:
                    mape_limit.add_metric([row.region], float(details["mape_limit"]))
        yield from (status, value, threshold, *named.values(), mape, mape_limit, rmae)
        yield from (rule_status, rule_score, error_cusum)


class MaintenanceMetricsCollector(Collector):
    """Reads each maintenance task's last real run from ``maintenance_runs`` at every scrape."""

    def __init__(self, engine: sa.Engine) -> None:
        self.store = MaintenanceRunStore(engine)

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            runs = self.store.last_successes()
        except sa.exc.SQLAlchemyError as exc:  # data_quality_exporter_up says whether the store is readable
            log.error("cannot read maintenance_runs (%s); no maintenance metrics", str(exc).splitlines()[0])
            return
        if runs.empty:
            return  # maintenance never ran for real: no made-up times
        names = ("maintenance_last_success_timestamp_seconds", "maintenance_last_removed_bytes")
        stamp, removed = (GaugeMetricFamily(n, PRODUCT_METRICS[n], labels=["task_id"]) for n in names)
        for row in runs.itertuples(index=False):
            stamp.add_metric([row.step], row.finished_at.timestamp())
            removed.add_metric([row.step], float(row.bytes))
        yield from (stamp, removed)


def metrics_registry(engine: sa.Engine) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QualityMetricsCollector(engine))
    registry.register(MaintenanceMetricsCollector(engine))
    return registry


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # Prometheus scrapes every 15 s: keep logs quiet


class MetricsServer:
    """``/metrics`` over HTTP on (host, port); port 0 picks a free one. Use as a context manager or ``serve_forever``."""

    def __init__(self, engine: sa.Engine, host: str, port: int) -> None:
        self.server: WSGIServer = make_server(
            host, port, make_wsgi_app(metrics_registry(engine)), handler_class=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        if not isinstance(host, str):  # typeshed allows bytes (AF_UNIX); a TCP server's host is a str
            host = host.decode()
        return f"http://{host}:{port}/metrics"

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def __enter__(self) -> MetricsServer:
        self._thread = threading.Thread(target=self.server.serve_forever, name="eopt-metrics", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
