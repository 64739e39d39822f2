"""monitoring/: Prometheus config, alert rules, the statsd mapping of Airflow's metrics, Grafana.

The cross-check holds the three together: every metric name an alert rule or a dashboard query
reads must be one the product exporter serves (``quality.exporter.PRODUCT_METRICS``), one the
statsd mapping produces from Airflow's StatsD lines, or one Prometheus makes itself. The mapping
is fed the real lines Airflow 3.3 sends (its own metrics code, over UDP), and promtool checks the
config, the rules and the rules' unit tests where it is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from core.settings import Settings
from quality.exporter import PRODUCT_METRICS

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
DASHBOARDS = MONITORING / "grafana-dashboards"
PROVISIONING = MONITORING / "grafana" / "provisioning"
DASHBOARD_FILES = ("airflow-overview", "data-quality", "ml-pipeline", "api-health")
DAG_IDS = {"electricity_price_ingestion", "model_retraining", "forecast_generation", "data_quality"}
PROMTOOL = shutil.which("promtool")


@pytest.fixture
def promtool_on_path() -> None:
    """Skips without promtool; fails instead under EOPT_REQUIRE_SERVICES=1 (CI installs it)."""
    if PROMTOOL is None:
        message = (
            "promtool is not on PATH (Debian/Ubuntu, as root: apt-get update && apt-get install prometheus, "
            "which scripts/ensure-services.sh does; or a Prometheus release)"
        )
        if Settings.from_env().require_services:
            pytest.fail(f"{message} (EOPT_REQUIRE_SERVICES=1 makes this a failure)", pytrace=False)
        pytest.skip(message)


needs_promtool = pytest.mark.usefixtures("promtool_on_path")


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def mapping() -> dict:
    return _yaml(MONITORING / "statsd_mapping.yml")


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    return [rule for group in _yaml(MONITORING / "alerts.yml")["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return {name: json.loads((DASHBOARDS / f"{name}.json").read_text()) for name in DASHBOARD_FILES}


# -- PromQL: the metric names an expression reads -------------------------------------------------

PROMQL_FUNCTIONS = {
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "double_exponential_smoothing",
    "exp",
    "floor",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "info",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "mad_over_time",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_by_label",
    "sort_by_label_desc",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
}
PROMQL_AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
PROMQL_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}  # followed by (label, ...)
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "start", "end", "inf", "nan"} | PROMQL_LABEL_LISTS
PROMETHEUS_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "ALERTS",
    "ALERTS_FOR_STATE",
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_TOKEN = re.compile(
    r"(?P<duration>(?:\d+(?:ms|[smhdwy]))+)|(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)"
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<open>\()|(?P<close>\))|(?P<other>\S)"
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects; an unknown function comes back as ``name()`` so it is reported too.

    String literals, Grafana variables, label matchers ``{...}``, ranges ``[...]``, label lists after
    by/without/on/ignoring/group_left/group_right, keywords, numbers and durations are not names."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VARIABLE.sub("0", text)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else (None, None)
        if kind != "ident":
            i += 1
            continue
        if value in PROMQL_LABEL_LISTS:
            if following[0] == "open":  # skip the label list
                depth, i = 0, i + 1
                while i < len(tokens):
                    depth += {"open": 1, "close": -1}.get(tokens[i][0], 0)
                    i += 1
                    if depth == 0:
                        break
                continue
        elif value.lower() in PROMQL_KEYWORDS or (
            value in PROMQL_AGGREGATIONS and (following[0] == "open" or following[1] in ("by", "without"))
        ):
            pass
        elif following[0] == "open":
            if value not in PROMQL_FUNCTIONS:
                names.add(f"{value}()")
        else:
            names.add(value)
        i += 1
    return names


def grafana_variable_expr(query: str) -> str | None:
    """The PromQL inside a Prometheus template-variable query (label_values(expr, label), query_result(expr))."""
    query = query.strip()
    if m := re.fullmatch(r"label_values\((.+),\s*[A-Za-z_]\w*\s*\)", query, re.S):
        return m.group(1)
    if m := re.fullmatch(r"query_result\((.+)\)", query, re.S):
        return m.group(1)
    return None  # label_values(label), label_names(), metrics(re): no metric selector


def mapped_names(mapping: dict) -> set[str]:
    """Prometheus series names the statsd mapping produces: histograms expose _bucket/_sum/_count, summaries
    the name (with quantile) and _sum/_count."""
    default_observer = mapping.get("defaults", {}).get("observer_type", "summary")
    names: set[str] = set()
    for m in mapping["mappings"]:
        if m.get("action", "map") == "drop":
            continue
        if m.get("match_metric_type") == "observer":
            if m.get("observer_type", default_observer) == "histogram":
                names |= {f"{m['name']}_bucket", f"{m['name']}_sum", f"{m['name']}_count"}
            else:
                names |= {m["name"], f"{m['name']}_sum", f"{m['name']}_count"}
        else:
            names.add(m["name"])
    return names


def unknown_names(exprs: dict[str, str], mapping: dict) -> dict[str, set[str]]:
    known = set(PRODUCT_METRICS) | mapped_names(mapping) | PROMETHEUS_SERIES
    found = {where: promql_metric_names(expr) - known for where, expr in exprs.items()}
    return {where: names for where, names in found.items() if names}


def alert_exprs(rules: list[dict]) -> dict[str, str]:
    return {f"alerts.yml {rule['alert']}": rule["expr"] for rule in rules}


def dashboard_exprs(dashboards: dict[str, dict]) -> dict[str, str]:
    exprs = {}
    for name, board in dashboards.items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                exprs[f"{name}.json panel {panel['title']!r} {target['refId']}"] = target["expr"]
        for variable in board["templating"]["list"]:
            query = variable.get("definition") or variable["query"]["query"]
            if (expr := grafana_variable_expr(query)) is not None:
                exprs[f"{name}.json variable ${variable['name']}"] = expr
    return exprs


def test_promql_names__skip_functions_labels_strings_durations_and_grafana_variables():
    expr = """
      sum by (dag_id, le) (increase(
        airflow_dagrun_duration_seconds_bucket{dag_id=~"$dag_id", le=~"300(\\\\.0)?"}[$__rate_interval]))
      - on (dag_id) group_left (status) sum without (instance) (rate(airflow_task_finish_total[5m] offset 1h))
      > bool 0.5 unless label_replace(up{job="statsd-exporter"}, "by", "$1", "job", "(.*)")
      or histogram_quantile(0.95, x_bucket) * 1e3 and vector(0) or sum(max_over_time(y[1h:5m])) / time()
    """
    assert promql_metric_names(expr) == {
        "airflow_dagrun_duration_seconds_bucket",
        "airflow_task_finish_total",
        "up",
        "x_bucket",
        "y",
    }
    assert promql_metric_names("topk(10, histogram_quantile(0.95, sum(rate(a_bucket[1h])) by (le)))") == {"a_bucket"}
    assert (
        grafana_variable_expr('label_values(data_quality_check_status{check="api_health"}, subject)')
        == 'data_quality_check_status{check="api_health"}'
    )
    assert grafana_variable_expr("label_values(region)") is None


def test_cross_check__reports_a_made_up_metric_a_bare_histogram_name_and_a_misspelled_function(mapping):
    exprs = {
        "made-up": 'increase(airflow_made_up_metric{dag_id="model_retraining"}[1h]) > 0',
        "histogram without suffix": "airflow_dagrun_duration_seconds > 300",
        "misspelled function": "rat(airflow_scheduler_heartbeat_total[5m]) == 0",
        "fine": 'sum by (pool) (airflow_pool_open_slots) + on () group_left data_quality_checks_critical * up{job="x"}',
    }
    assert unknown_names(exprs, mapping) == {
        "made-up": {"airflow_made_up_metric"},
        "histogram without suffix": {"airflow_dagrun_duration_seconds"},
        "misspelled function": {"rat()"},
    }


def test_cross_check__every_alert_rule_reads_only_known_metrics(rules, mapping):
    exprs = alert_exprs(rules)
    assert len(exprs) == len(rules) >= 10
    assert unknown_names(exprs, mapping) == {}, (
        "add the metric to statsd_mapping.yml or PRODUCT_METRICS, or fix the name"
    )


def test_cross_check__every_dashboard_query_reads_only_known_metrics(dashboards, mapping):
    exprs = dashboard_exprs(dashboards)
    assert len(exprs) > 50
    assert unknown_names(exprs, mapping) == {}, (
        "add the metric to statsd_mapping.yml or PRODUCT_METRICS, or fix the name"
    )


def test_cross_check__every_product_metric_is_charted_and_the_key_ones_alerted(rules, dashboards):
    charted = set().union(*map(promql_metric_names, dashboard_exprs(dashboards).values()))
    assert set(PRODUCT_METRICS) - charted == set()
    alerted = set().union(*map(promql_metric_names, alert_exprs(rules).values()))
    assert {
        "data_quality_checks_critical",
        "data_quality_last_run_timestamp_seconds",
        "model_realized_mape_percent",
        "model_realized_mape_limit_percent",
        "data_quality_drift_rule_status",
        "model_error_cusum",
        "price_data_age_hours",
        "data_quality_exporter_up",
    } <= alerted


# -- Prometheus config and alert rules ------------------------------------------------------------


def test_prometheus_config__scrapes_the_four_jobs_at_their_compose_services_and_loads_the_rules():
    config = _yaml(MONITORING / "prometheus.yml")
    assert config["global"]["scrape_interval"] and config["global"]["evaluation_interval"]
    assert config["rule_files"] == ["alerts.yml"] and (MONITORING / "alerts.yml").is_file()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {name: [t for sc in job["static_configs"] for t in sc["targets"]] for name, job in jobs.items()}
    assert targets == {
        "prometheus": ["localhost:9090"],
        "statsd-exporter": ["statsd-exporter:9102"],
        "electricity-optimizer": ["eopt-metrics:9108"],
        "mlflow": ["mlflow:5000"],
    }
    assert jobs["electricity-optimizer"]["metrics_path"] == jobs["mlflow"]["metrics_path"] == "/metrics"


def test_alert_rules__each_has_for_a_severity_and_annotations_that_say_what_to_do(rules):
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        where = f"alerts.yml {rule['alert']}"
        assert re.fullmatch(r"\d+[smh]", rule["for"]), where
        assert rule["labels"]["severity"] in ("warning", "critical"), where
        assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip(), where
        assert "See docs/monitoring-and-alerts.md." in rule["annotations"]["description"], where
        runbook = rule["annotations"]["runbook"]
        assert (MONITORING.parent / runbook.partition("#")[0]).is_file(), f"{where}: runbook {runbook} names no file"
    readme = (MONITORING / "README.md").read_text()
    assert [name for name in names if f"`{name}`" not in readme] == [], "list every alert in monitoring/README.md"
    assert {
        "IngestionDeadlineMissed",
        "ForecastDeadlineMissed",
        "DagRunFailed",
        "TaskFailedAfterRetries",
        "AirflowSchedulerHeartbeatMissing",
        "DataQualityCriticalChecks",
        "DataQualityRunStale",
        "ModelRealizedMapeHigh",
        "DataDriftHigh",
        "ModelErrorsDrifting",
        "PriceDataStale",
        "ElectricityOptimizerExporterDown",
        "DataQualityStoreUnreadable",
    } <= set(names)


def test_alert_rules__name_the_dag_task_pool_or_region_they_fire_for(rules):
    per_region = {
        "data_quality_drift_share",
        "data_quality_drift_rule_status",
        "model_error_cusum",
        "price_data_age_hours",
        "model_realized_mape_percent",
        "model_realized_mape_limit_percent",
        "model_realized_rmae",
    }
    for rule in rules:
        text = rule["annotations"]["summary"] + rule["annotations"]["description"]
        grouped = set().union(*(re.findall(r"\w+", g) for g in re.findall(r"\bby \(([^)]*)\)", rule["expr"])))
        expected = grouped & {"dag_id", "task_id"}
        if promql_metric_names(rule["expr"]) & per_region:
            expected.add("region")
        if "airflow_pool_" in rule["expr"]:
            expected.add("pool")
        for label in expected:
            assert f"$labels.{label}" in text, f"alerts.yml {rule['alert']}: name the {label} in summary/description"


def test_alert_rules__deadline_rules_read_their_dags_at_the_deadline_bucket_edges(rules, mapping):
    by_name = {rule["alert"]: rule["expr"] for rule in rules}
    for alert, dag_id, seconds in (
        ("IngestionDeadlineMissed", "electricity_price_ingestion", 300),
        ("ForecastDeadlineMissed", "forecast_generation", 120),
    ):
        assert f'dag_id="{dag_id}"' in by_name[alert] and f'le=~"{seconds}(' in by_name[alert], alert
        dagrun = next(m for m in mapping["mappings"] if m["match"] == "airflow.dagrun.duration.success.*")
        assert seconds in dagrun["histogram_options"]["buckets"], f"{seconds} s must stay a bucket edge for {alert}"
    quoted = {d for rule in rules for d in re.findall(r'dag_id="(\w+)"', rule["expr"])}
    assert quoted <= DAG_IDS


# -- statsd mapping -------------------------------------------------------------------------------

# statsd_exporter's own validation (pkg/mapper): glob lines, label names, metric names.
_GLOB_LINE = re.compile(r"^(\*|[a-zA-Z_][a-zA-Z0-9_\-]*)(\.\*|\.[a-zA-Z0-9_][a-zA-Z0-9_\-]*)*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")
_METRIC_NAME = re.compile(r"^([a-zA-Z_]|\$\{?\d+\}?)([a-zA-Z0-9_]|\$\{?\d+\}?)*$")
_CAPTURE = re.compile(r"\$\{?(\d+)\}?")


def test_statsd_mapping__globs_are_valid_and_every_star_feeds_a_label(mapping):
    assert mapping["defaults"]["match_type"] == "glob"
    for m in mapping["mappings"]:
        where = f"statsd_mapping.yml {m['match']}"
        assert _GLOB_LINE.match(m["match"]) and m["match"].startswith("airflow."), where
        assert _METRIC_NAME.match(m["name"]), where
        stars = m["match"].split(".").count("*")
        used = {
            int(n) for value in (m["name"], *map(str, m.get("labels", {}).values())) for n in _CAPTURE.findall(value)
        }
        assert all(_LABEL_NAME.match(key) for key in m.get("labels", {})), where
        if m.get("action") == "drop":
            assert stars == 0 and not used, f"{where}: drops exactly the bare tagged name"
            continue
        assert used == set(range(1, stars + 1)), f"{where}: {stars} '*' but labels use ${sorted(used)}"
        kind = m["match_metric_type"]
        assert kind in ("counter", "gauge", "observer"), where
        if kind == "counter":
            assert m["name"].endswith("_total"), where
        if kind == "observer":
            observer = m.get("observer_type", mapping["defaults"]["observer_type"])
            assert m["name"].endswith("_seconds") and observer == "histogram", where
            buckets = m.get("histogram_options", mapping["defaults"]["histogram_options"])["buckets"]
            assert buckets == sorted(set(buckets)), where


def test_statsd_mapping__one_prometheus_name_has_one_type_and_one_label_set(mapping):
    seen: dict[str, tuple] = {}
    for m in mapping["mappings"]:
        if m.get("action") == "drop":
            continue
        shape = (m["match_metric_type"], frozenset(m.get("labels", {})), str(m.get("histogram_options")), m.get("help"))
        assert seen.setdefault(m["name"], shape) == shape, (
            f"{m['name']}: mappings disagree on type, labels, buckets or help"
        )


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    kind: str  # counter, gauge, observer
    value: float


_STATSD_KINDS = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}


def map_statsd_line(line: str, mapping: dict) -> Sample | None:
    """What statsd_exporter makes of one StatsD line with this mapping (glob rules, first match in file order,
    ``*`` = one dot-separated part, timers from ms to seconds); None when a rule drops it. Unmatched lines keep
    their name with every character outside [a-zA-Z0-9_] turned into ``_`` and no labels."""
    name, _, rest = line.partition(":")
    value, statsd_type = rest.split("|")[:2]
    kind = _STATSD_KINDS[statsd_type]
    number = float(value) / 1000.0 if statsd_type == "ms" else float(value)
    parts = name.split(".")
    for m in mapping["mappings"]:
        if m.get("match_metric_type", kind) != kind:
            continue
        pattern = m["match"].split(".")
        if len(pattern) != len(parts) or any(p != "*" and p != q for p, q in zip(pattern, parts, strict=False)):
            continue
        if m.get("action") == "drop":
            return None
        captures = [q for p, q in zip(pattern, parts, strict=False) if p == "*"]

        def fill(template: str) -> str:
            return _CAPTURE.sub(lambda g: captures[int(g.group(1)) - 1], str(template))  # noqa: B023 - called in this iteration

        return Sample(
            fill(m["name"]), tuple(sorted((k, fill(v)) for k, v in m.get("labels", {}).items())), kind, number
        )
    return Sample(re.sub(r"[^a-zA-Z0-9_]", "_", name), (), kind, number)


# Run in a subprocess with its own AIRFLOW_HOME: Airflow's metrics code, configured only by the
# AIRFLOW__METRICS__* variables the README documents, sends every metric of Airflow's registry
# (with the tags the call sites give) plus the product's own call shapes to a UDP port of the test.
_EMIT_AIRFLOW_METRICS = textwrap.dedent("""
    from datetime import timedelta
    from airflow.configuration import conf
    from airflow.observability.metrics import stats_utils
    from airflow._shared.observability.metrics import stats
    from airflow._shared.observability.metrics.metrics_registry import YAML_REGISTRY_PATH, read_metrics_yaml
    from airflow.sdk._shared.observability.metrics import stats as task_stats
    from airflow.sdk.configuration import conf as task_conf
    from airflow.sdk.observability.metrics import stats_utils as task_stats_utils

    stats.initialize(factory=stats_utils.get_stats_factory(),
                     export_legacy_names=conf.getboolean("metrics", "legacy_names_on"))
    task_stats.initialize(factory=task_stats_utils.get_stats_factory(),
                          export_legacy_names=task_conf.getboolean("metrics", "legacy_names_on"))
    SAMPLE = {"dag_id": "data_quality", "task_id": "run_checks", "state": "success", "pool_name": "db_heavy_pool",
              "executor_class_name": "LocalExecutor", "hostname": "triggerer-1.eopt.internal", "queue": "default",
              "file_name": "electricity_price_ingestion.py", "bundle_name": "dags-folder", "job_name": "SchedulerJob",
              "dag_file": "forecast_generation", "job_id": "7", "return_code": "0"}
    for metric in read_metrics_yaml(YAML_REGISTRY_PATH):
        variables = metric.get("name_variables") or []
        tags = {v: SAMPLE.get(v, "sample") for v in variables}
        name = metric["name"].format(**tags) if "{" in metric["name"] else metric["name"]
        if metric["type"] == "counter":
            stats.incr(name, tags=tags)
        elif metric["type"] == "gauge":
            stats.gauge(name, 3, tags=tags)
        else:
            stats.timing(name, 1500, tags=tags)

    # The call shapes of the scheduler (dag runs, pools, heartbeat) and of the task runner (task instances).
    run = {"run_type": "scheduled"}
    stats.timing("dagrun.duration.success", dt=timedelta(minutes=6), tags={**run, "dag_id": "electricity_price_ingestion"})
    stats.timing("dagrun.duration.failed", dt=timedelta(hours=2), tags={**run, "dag_id": "model_retraining"})
    stats.timing("dagrun.schedule_delay", timedelta(seconds=4), tags={"dag_id": "forecast_generation"})
    stats.incr("scheduler_heartbeat", 1, 1)
    stats.incr("deadline_alerts.deadline_missed", tags={"dag_id": "forecast_generation", "dagrun_id": "scheduled__x"})
    stats.gauge("pool.open_slots", 2, tags={"pool_name": "pricing_api_pool"})
    stats.gauge("pool.running_slots", 3, tags={"pool_name": "pricing_api_pool"})
    stats.gauge("pool.starving_tasks", 1, tags={"pool_name": "ml_training_pool"})
    stats.gauge("dag_processing.import_errors", 1)
    ti = {"dag_id": "electricity_price_ingestion", "task_id": "fetch_entsoe"}
    task_stats.incr("ti.finish", tags={**ti, "state": "failed"})
    task_stats.incr("ti.finish", tags={"dag_id": "model_retraining", "task_id": "retrain_region.train_xgboost",
                                       "state": "up_for_retry"})
    task_stats.timing("task.duration", 41250.0, tags=ti)
    task_stats.incr("ti_failures", tags=ti)
""")


@pytest.fixture(scope="module")
def airflow_statsd_lines(tmp_path_factory) -> list[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind(("127.0.0.1", 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            AIRFLOW_HOME=str(tmp_path_factory.mktemp("airflow-home")),
            AIRFLOW__METRICS__STATSD_ON="True",
            AIRFLOW__METRICS__STATSD_HOST="127.0.0.1",
            AIRFLOW__METRICS__STATSD_PORT=str(sock.getsockname()[1]),
            AIRFLOW__METRICS__STATSD_PREFIX="airflow",
        )
        result = subprocess.run(
            [sys.executable, "-c", _EMIT_AIRFLOW_METRICS], capture_output=True, text=True, env=env, timeout=120
        )
        assert result.returncode == 0, result.stderr[-3000:]
        sock.settimeout(0.5)
        lines = []
        try:
            while True:
                lines.extend(sock.recv(65535).decode().splitlines())
        except TimeoutError:
            pass
    return lines


def _samples(lines: list[str], mapping: dict) -> dict[str, Sample | None]:
    return {line.partition(":")[0]: map_statsd_line(line, mapping) for line in lines}


def test_statsd_mapping__turns_the_lines_airflow_sends_into_labelled_metrics(airflow_statsd_lines, mapping):
    samples = _samples(airflow_statsd_lines, mapping)
    expected = {
        "airflow.dagrun.duration.success.electricity_price_ingestion": Sample(
            "airflow_dagrun_duration_seconds",
            (("dag_id", "electricity_price_ingestion"), ("status", "success")),
            "observer",
            360.0,
        ),
        "airflow.dagrun.duration.failed.model_retraining": Sample(
            "airflow_dagrun_duration_seconds",
            (("dag_id", "model_retraining"), ("status", "failed")),
            "observer",
            7200.0,
        ),
        "airflow.dagrun.schedule_delay.forecast_generation": Sample(
            "airflow_dagrun_schedule_delay_seconds", (("dag_id", "forecast_generation"),), "observer", 4.0
        ),
        "airflow.ti.finish.electricity_price_ingestion.fetch_entsoe.failed": Sample(
            "airflow_task_finish_total",
            (("dag_id", "electricity_price_ingestion"), ("state", "failed"), ("task_id", "fetch_entsoe")),
            "counter",
            1.0,
        ),
        "airflow.ti.finish.model_retraining.retrain_region__train_xgboost.up_for_retry": Sample(
            "airflow_task_finish_total",
            (("dag_id", "model_retraining"), ("state", "up_for_retry"), ("task_id", "retrain_region__train_xgboost")),
            "counter",
            1.0,
        ),
        "airflow.dag.electricity_price_ingestion.fetch_entsoe.duration": Sample(
            "airflow_task_duration_seconds",
            (("dag_id", "electricity_price_ingestion"), ("task_id", "fetch_entsoe")),
            "observer",
            41.25,
        ),
        "airflow.pool.open_slots.pricing_api_pool": Sample(
            "airflow_pool_open_slots", (("pool", "pricing_api_pool"),), "gauge", 2.0
        ),
        "airflow.pool.running_slots.pricing_api_pool": Sample(
            "airflow_pool_running_slots", (("pool", "pricing_api_pool"),), "gauge", 3.0
        ),
        "airflow.pool.starving_tasks.ml_training_pool": Sample(
            "airflow_pool_starving_tasks", (("pool", "ml_training_pool"),), "gauge", 1.0
        ),
        "airflow.scheduler_heartbeat": Sample("airflow_scheduler_heartbeat_total", (), "counter", 1.0),
        "airflow.deadline_alerts.deadline_missed": Sample("airflow_deadline_missed_total", (), "counter", 1.0),
        "airflow.dag_processing.import_errors": Sample("airflow_dag_processing_import_errors", (), "gauge", 1.0),
        "airflow.ti_failures": Sample("airflow_task_failures_total", (), "counter", 1.0),
        "airflow.executor.open_slots.LocalExecutor": Sample(
            "airflow_executor_open_slots", (("executor", "LocalExecutor"),), "gauge", 3.0
        ),
        "airflow.triggers.running.triggerer-1__eopt__internal": Sample(
            "airflow_triggers_running", (("hostname", "triggerer-1__eopt__internal"),), "gauge", 3.0
        ),
    }
    assert {line: samples.get(line) for line in expected} == expected
    # The same numbers also arrive under the bare tagged names, which the mapping drops.
    for bare in (
        "airflow.dagrun.duration.success",
        "airflow.ti.finish",
        "airflow.task.duration",
        "airflow.pool.open_slots",
        "airflow.executor.open_slots",
        "airflow.triggers.running",
    ):
        assert bare in samples and samples[bare] is None, bare


def test_statsd_mapping__every_airflow_line_maps_without_clashes_and_every_mapping_is_fed(
    airflow_statsd_lines, mapping
):
    samples = [s for s in _samples(airflow_statsd_lines, mapping).values() if s is not None]
    assert len(airflow_statsd_lines) > 150
    shapes: dict[str, set] = {}
    for sample in samples:
        shapes.setdefault(sample.name, set()).add((sample.kind, tuple(k for k, _ in sample.labels)))
    clashes = {name: shape for name, shape in shapes.items() if len(shape) > 1}
    assert clashes == {}, "statsd_exporter rejects a name seen with two types or label sets"
    produced = {s.name for s in samples}
    declared = {m["name"] for m in mapping["mappings"] if m.get("action") != "drop"}
    assert declared - produced == set(), "a mapping that no Airflow 3.3 metric reaches"


# -- Grafana --------------------------------------------------------------------------------------


def test_dashboards__the_four_exist_with_unique_uids_and_product_titles(dashboards):
    titles = {
        "airflow-overview": "Airflow Overview",
        "data-quality": "Data Quality",
        "ml-pipeline": "ML Pipeline",
        "api-health": "API Health",
    }
    assert {name: board["title"] for name, board in dashboards.items()} == {
        name: f"Electricity Optimizer - {title}" for name, title in titles.items()
    }
    uids = [board["uid"] for board in dashboards.values()]
    assert len(set(uids)) == 4 and all(re.fullmatch(r"[a-z0-9-]{1,40}", uid) for uid in uids)
    assert {board["schemaVersion"] for board in dashboards.values()} == {39}


def test_dashboards__every_panel_queries_the_provisioned_prometheus_datasource(dashboards):
    provisioned = _yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert [(d["uid"], d["type"], d["url"]) for d in provisioned] == [
        ("prometheus", "prometheus", "http://prometheus:9090")
    ]
    uid = provisioned[0]["uid"]
    for name, board in dashboards.items():
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert len(panels) >= 8, name
        assert len({p["id"] for p in board["panels"]}) == len(board["panels"]), f"{name}: panel ids repeat"
        for panel in panels:
            where = f"{name}.json {panel['title']!r}"
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["expr"].strip() and target["datasource"]["uid"] == uid, where
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, where
        for variable in board["templating"]["list"]:
            assert variable["datasource"]["uid"] == uid, f"{name}: ${variable['name']}"


def test_dashboards__variables_in_queries_are_defined_and_the_expected_ones_exist(dashboards):
    for name, board in dashboards.items():
        defined = {v["name"] for v in board["templating"]["list"]}
        used = {v for t in dashboard_exprs({name: board}).values() for v in re.findall(r"\$\{?([A-Za-z]\w*)", t)}
        assert used <= defined, f"{name}: undefined variables {used - defined}"
    assert {v["name"] for v in dashboards["airflow-overview"]["templating"]["list"]} >= {"dag_id"}
    assert {v["name"] for v in dashboards["data-quality"]["templating"]["list"]} >= {"region"}


def test_dashboards__api_health_and_ml_pipeline_show_what_their_users_look_for(dashboards):
    api = " ".join(dashboard_exprs({"api-health": dashboards["api-health"]}).values())
    assert 'check="api_health"' in api and "data_quality_check_threshold" in api
    assert 'pool="pricing_api_pool"' in api and 'task_id=~"fetch_.*"' in api and "airflow_task_finish_total" in api
    ml = " ".join(dashboard_exprs({"ml-pipeline": dashboards["ml-pipeline"]}).values())
    for needle in (
        'dag_id="model_retraining"',
        'dag_id="forecast_generation"',
        "model_realized_mape_percent",
        "model_realized_rmae",
        "data_quality_drift_share",
        "ml_training_pool",
    ):
        assert needle in ml, needle
    dq = " ".join(dashboard_exprs({"data-quality": dashboards["data-quality"]}).values())
    for needle in (
        "data_quality_health_score",
        "data_quality_checks_passed",
        "data_quality_checks_critical",
        "data_quality_checks_warning",
        "data_quality_checks_skipped",
        "data_quality_check_status",
        "price_data_age_hours",
    ):
        assert needle in dq, needle


def test_grafana_provisioning__loads_the_dashboards_from_the_documented_mount():
    providers = _yaml(PROVISIONING / "dashboards" / "dashboards.yml")["providers"]
    assert [(p["type"], p["options"]["path"]) for p in providers] == [("file", "/var/lib/grafana/dashboards")]
    readme = (MONITORING / "README.md").read_text()
    assert "/var/lib/grafana/dashboards" in readme and "/etc/grafana/provisioning" in readme


# -- promtool -------------------------------------------------------------------------------------


def _promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@needs_promtool
def test_promtool__accepts_the_prometheus_config_and_its_rule_file():
    result = _promtool("check", "config", "monitoring/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


@needs_promtool
def test_promtool__accepts_every_alert_rule(rules):
    result = _promtool("check", "rules", "monitoring/alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@needs_promtool
def test_promtool__alert_unit_tests_pass():
    tests = _yaml(MONITORING / "tests" / "alerts_test.yml")["tests"]
    checked = {(case["alertname"], bool(case["exp_alerts"])) for t in tests for case in t["alert_rule_test"]}
    assert {
        ("ModelRealizedMapeHigh", True),
        ("ModelRealizedMapeHigh", False),
        ("IngestionDeadlineMissed", True),
    } <= checked
    result = _promtool("test", "rules", "monitoring/tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool__alert_unit_tests_fail_when_a_threshold_drifts(tmp_path):
    rules = (MONITORING / "alerts.yml").read_text()
    comparison = "model_realized_mape_percent > model_realized_mape_limit_percent"
    assert comparison in rules
    (tmp_path / "alerts.yml").write_text(rules.replace(comparison, f"{comparison} + 5"))
    (tmp_path / "tests").mkdir()
    shutil.copy(MONITORING / "tests" / "alerts_test.yml", tmp_path / "tests" / "alerts_test.yml")
    result = _promtool("test", "rules", "tests/alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "alertname: ModelRealizedMapeHigh" in result.stdout + result.stderr


@needs_promtool
def test_promtool__every_dashboard_query_is_valid_promql(dashboards, tmp_path):
    exprs = dashboard_exprs(dashboards)
    substituted = [re.sub(r"\$__\w+", "5m", re.sub(r"\$\{?[A-Za-z]\w*\}?", ".*", expr)) for expr in exprs.values()]
    rules_file = tmp_path / "dashboard_queries.yml"
    rules_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboards",
                        "rules": [
                            {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(substituted)
                        ],
                    }
                ]
            }
        )
    )
    result = _promtool("check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr + "\n" + "\n".join(exprs)
    assert f"SUCCESS: {len(substituted)} rules found" in result.stdout
