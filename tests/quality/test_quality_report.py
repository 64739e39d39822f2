"""The data-quality report and what reads it: health score, the quality_reports store (SQLite and
PostgreSQL), publish_report (files, rows, MLflow), the Prometheus exporter over real HTTP, and the
``eopt quality`` / ``eopt metrics serve`` commands.

The results are those of the real checks on a real store: NP and PJM history for the week before
Monday 2018-11-12 06:00 UTC with one NP price spike and PJM's last 30 hours missing, a week of
stored forecasts per region, a day of entsoe calls (iea: none), and NP's real Evidently drift report.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from core.check_results import CheckResult, health_score, worst_status
from core.markets import load_market
from core.settings import Settings
from drift.monitor import region_drift
from eopt.cli import cli
from ingestion.http import ApiCall
from quality import checks
from quality.exporter import PRODUCT_METRICS, MetricsServer
from quality.report import QualityReport, publish_report, results_of
from registry.models import registered_model_name
from storage.database import create_store_engine, upgrade
from storage.forecasts import ForecastStore
from storage.health import ApiHealthStore
from storage.maintenance import MaintenanceRunStore
from storage.prices import PriceStore
from storage.quality import QualityReportStore
from storage.schema import quality_reports
from training import tracking

ROOT = Path(__file__).resolve().parents[2]
EOPT = Path(sys.executable).parent / "eopt"
AS_OF = pd.Timestamp("2018-11-12 06:00", tz="UTC")
WINDOW_START = AS_OF - pd.Timedelta(days=7)
SPIKE_AT = pd.Timestamp("2018-11-08 17:00", tz="UTC")
PJM_CUT = AS_OF - pd.Timedelta(hours=30)  # PJM's newest price: 30 h before the run
STATUS_CODES = {"ok": 0, "warn": 1, "critical": 2, "skipped": -1}  # what the alert rules compare against
QUALITY_ENV = {"EOPT_REGIONS": "NP,PJM", "EOPT_INGESTION_SOURCES": "entsoe,iea", "EOPT_LOG_LEVEL": "WARNING"}


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, {f.name: f for f in text_string_to_metric_families(answer.read().decode())}


def load_week(store: PriceStore, regions=("NP", "PJM"), days: int = 60) -> None:
    for region in regions:
        history = load_market(region, ROOT / "data" / "markets").between(AS_OF - pd.Timedelta(days=days), AS_OF)
        prices = history.prices
        if region == "NP":
            prices.loc[prices["ts"] == SPIKE_AT, "price"] = 190.0
        if region == "PJM":
            prices = prices[prices["ts"] <= PJM_CUT]
        store.upsert_history(prices, history.exogenous)


def day_of_calls(source: str) -> list[ApiCall]:
    return [
        ApiCall(
            source,
            f"https://{source}.example/api/prices",
            "ok",
            200,
            150.0 + 37.0 * (i % 11),
            24,
            None,
            (AS_OF - pd.Timedelta(minutes=15 * (i + 1))).to_pydatetime(),
        )
        for i in range(96)
    ]


def forecast_week(store: PriceStore, region: str, factor: float) -> None:
    """Seven daily issues of ``factor`` x the region's realized prices (the hours after PJM's cut: x its last day)."""
    targets = pd.date_range(WINDOW_START, AS_OF, freq="h", tz="UTC", inclusive="left")
    known = store.read_canonical(region, WINDOW_START - pd.Timedelta(days=1), AS_OF).set_index("ts")["price"]
    actual = known.reindex(targets).fillna(known.reindex(targets - pd.Timedelta(days=1)).set_axis(targets)).ffill()
    day = pd.Timedelta(days=1)
    issued = WINDOW_START - pd.Timedelta(hours=1) + ((targets - WINDOW_START) // day) * day
    ForecastStore(store.engine).upsert_forecasts(
        pd.DataFrame(
            {
                "region": region,
                "issued_at": issued,
                "target_ts": targets,
                "model_name": registered_model_name(region),
                "model_version": "2",
                "yhat": actual.to_numpy() * factor,
                "lower": actual.to_numpy() * factor - 8,
                "upper": actual.to_numpy() * factor + 8,
                "is_fallback": False,
            }
        )
    )


@dataclass(frozen=True)
class Week:
    settings: Settings
    results: list[CheckResult]
    folder: Path  # holds drift/drift_NP.html and .json


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> Week:
    home = tmp_path_factory.mktemp("week")
    settings = Settings.from_env({"EOPT_HOME": str(home), **QUALITY_ENV})
    engine = create_store_engine(settings.stores.database_url)
    upgrade(engine)
    store = PriceStore(engine)
    load_week(store)
    forecast_week(store, "NP", 1.05)
    forecast_week(store, "PJM", 0.9)
    ApiHealthStore(engine).record(day_of_calls("entsoe"))
    folder = settings.quality_dir / "scheduled__2018-11-12T06_00_00_00_00"
    (folder / "drift").mkdir(parents=True)
    regions = settings.regions
    results = [
        *checks.freshness(store, settings, regions, AS_OF),
        *checks.completeness(store, settings, regions, AS_OF),
        *checks.price_range(store, settings, regions, AS_OF),
        *checks.api_health(ApiHealthStore(engine), settings, AS_OF),
        *checks.model_accuracy(store, None, settings, regions, AS_OF),
        region_drift(settings, store, None, "NP", AS_OF, folder / "drift"),
    ]
    engine.dispose()
    return Week(settings, results, folder)


@pytest.fixture(scope="module")
def mlflow_settings(tmp_path_factory) -> Settings:
    """One embedded MLflow (SQLite tracking store, local artifacts) for the module's MLflow tests."""
    home = tmp_path_factory.mktemp("mlflow")
    settings = Settings.from_env({"EOPT_HOME": str(home), **QUALITY_ENV})
    tracking.configure(settings).search_experiments()  # creates the tracking database once
    return settings


def quality_store(tmp_path: Path, name: str = "quality.db") -> QualityReportStore:
    engine = create_store_engine(f"sqlite:///{tmp_path / name}")
    upgrade(engine)
    return QualityReportStore(engine)


def stored_rows(engine: sa.Engine, run_id: str) -> int:
    t = quality_reports
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.run_id == run_id)).scalar_one()


# -- results and health score --------------------------------------------------------------------


def result(status: str, name: str = "freshness", region: str = "NP", **kw) -> CheckResult:
    return CheckResult(name, status, f"{name} {region} is {status}", region=region, **kw)


@pytest.mark.parametrize(
    ("statuses", "score"),
    [
        (["ok", "ok", "ok"], 100.0),
        (["ok", "warn"], 75.0),
        (["ok", "warn", "critical"], 50.0),
        (["ok", "ok", "critical", "skipped", "skipped"], 66.7),  # skipped results are left out
        (["critical"], 0.0),
        (["skipped", "skipped"], None),  # nothing checked: no number
        ([], None),
    ],
)
def test_health_score__averages_ok_1_warn_half_critical_0_over_the_checked_results(statuses, score):
    results = [result(s, region=f"R{i}") for i, s in enumerate(statuses)]
    assert health_score(results) == score


def test_worst_status__orders_critical_over_warn_over_ok_over_skipped():
    assert worst_status([result("ok"), result("critical"), result("warn")]) == "critical"
    assert worst_status([result("skipped"), result("ok")]) == "ok"
    assert worst_status([result("skipped")]) == "skipped" and worst_status([]) == "skipped"


def test_check_result__rejects_an_unknown_status_naming_the_check():
    with pytest.raises(ValueError, match=r"check freshness: status 'failed' is not one of ok, warn, critical, skipped"):
        result("failed")


def test_check_result__turns_nan_and_infinite_numbers_into_none():
    nan = result("ok", value=float("nan"), threshold=float("inf"))
    assert nan.value is None and nan.threshold is None
    assert result("ok", value=np.float64(2.5), threshold=-1.0).value == 2.5


def test_check_result__survives_a_round_trip_through_a_dict_and_json(week):
    for original in week.results:
        assert CheckResult.from_dict(original.to_dict()) == original
        assert CheckResult.from_dict(json.loads(json.dumps(original.to_dict()))) == original
    api = next(r for r in week.results if r.name == "api_health" and r.subject == "entsoe")
    assert api.key == "api_health:entsoe" and api.line().startswith("[OK] api_health all/entsoe: 96 calls")


def test_results_of__reads_dicts_and_results_and_ignores_checks_that_did_not_run(week):
    first, second = week.results[:2]
    assert results_of([[first.to_dict()], None, [second], []]) == [first, second]


# -- the quality_reports store -------------------------------------------------------------------


def test_quality_store__writing_a_run_again_replaces_its_rows(store_engine, week):
    store = QualityReportStore(store_engine)
    assert store.read_run() is None
    report = QualityReport("run-a", AS_OF, week.results, week.folder)
    written = store.write_run(
        "run-a",
        report.results,
        health_score=report.health_score,
        summary=report.summary(),
        report_path="/reports/a.html",
    )
    assert written == len(week.results) + 1 == stored_rows(store_engine, "run-a")
    store.write_run("run-b", week.results[:3], health_score=100.0, summary={"status": "ok"}, report_path=None)

    fixed = [
        replace(r, status="ok", message="re-checked after the backfill", value=0.0, details={"rerun": True})
        if r.status in ("warn", "critical")
        else r
        for r in week.results
    ]
    again = store.write_run(
        "run-a", fixed, health_score=health_score(fixed), summary={"status": "ok"}, report_path="/reports/a2.html"
    )
    assert again == written == stored_rows(store_engine, "run-a")  # replaced, not added
    assert stored_rows(store_engine, "run-b") == 4  # another run is left alone
    run = store.read_run("run-a")
    assert run.health_score == health_score(fixed) and run.report_path == "/reports/a2.html"
    assert run.summary == {"status": "ok"} and set(run.checks["status"]) <= {"ok", "skipped"}
    rechecked = run.checks[run.checks["check_name"] == "freshness"].set_index("region").loc["PJM"]
    assert rechecked["value"] == 0.0
    assert rechecked["details"] == {"message": "re-checked after the backfill", "rerun": True}


def test_quality_store__two_results_for_one_check_and_region_are_refused_by_name(store_engine, week):
    store = QualityReportStore(store_engine)
    store.write_run("run-a", week.results, health_score=50.0, summary={"status": "critical"}, report_path=None)
    twice = [*week.results, result("warn", name="price_range", region="NP")]
    with pytest.raises(
        ValueError,
        match=r"quality run run-a: more than one result for \[\('price_range', 'NP'\)\]; "
        r"give each a subject",
    ):
        store.write_run("run-a", twice, health_score=0.0, summary={}, report_path=None)
    assert store.read_run("run-a").health_score == 50.0  # the refused write changed nothing
    assert stored_rows(store_engine, "run-a") == len(week.results) + 1


def test_quality_store__read_run_without_an_id_returns_the_newest_run(store_engine, week):
    store = QualityReportStore(store_engine)
    monday = datetime(2018, 11, 12, 6, 5, tzinfo=UTC)
    store.write_run("monday", week.results, health_score=80.0, summary={"n": 1}, report_path=None, created_at=monday)
    store.write_run(
        "tuesday",
        week.results[:2],
        health_score=100.0,
        summary={"n": 2},
        report_path=None,
        created_at=monday + timedelta(days=1),
    )
    newest = store.read_run()
    assert newest.run_id == "tuesday" and newest.health_score == 100.0 and len(newest.checks) == 2
    assert newest.created_at == pd.Timestamp(monday + timedelta(days=1))
    assert store.read_run("monday").summary == {"n": 1} and store.read_run("no-such-run") is None
    store.write_run(
        "monday",
        week.results,
        health_score=81.0,
        summary={"n": 3},
        report_path=None,
        created_at=monday + timedelta(days=2),
    )  # monday's run re-run after tuesday's
    assert store.read_run().run_id == "monday"


# -- publish_report --------------------------------------------------------------------------------


def test_publish_report__writes_the_report_files_and_rows_with_relative_drift_links(tmp_path, week):
    store = quality_store(tmp_path)
    report = publish_report(week.settings, store, QualityReport("scheduled-1", AS_OF, week.results, week.folder))
    summary = report.summary()
    assert report.mlflow_run_id is None and report.mlflow_error is None  # no client: no MLflow
    assert summary["health_score"] == health_score(week.results)
    assert (summary["ok"], summary["warn"], summary["critical"]) == tuple(
        sum(r.status == s for r in week.results) for s in ("ok", "warn", "critical")
    )
    assert summary["drift_reports"] == {
        "NP": {
            "report_html": str(week.folder / "drift" / "drift_NP.html"),
            "report_json": str(week.folder / "drift" / "drift_NP.json"),
        }
    }

    markdown = (week.folder / "report.md").read_text()
    page = (week.folder / "report.html").read_text()
    assert "- NP: [html](drift/drift_NP.html), [json](drift/drift_NP.json)" in markdown
    assert "<a href='drift/drift_NP.html'>html</a>" in page and str(week.folder) not in page
    assert "MLflow:" not in markdown
    assert "## Critical" in markdown and "- [CRITICAL] freshness PJM: newest price is" in markdown
    assert f"Health score **{summary['health_score']:.1f} / 100**" in markdown
    saved = json.loads((week.folder / "results.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(summary, default=str))
    assert [CheckResult.from_dict(r) for r in saved["results"]] == report.results

    run = store.read_run()
    assert run.run_id == "scheduled-1" and run.report_path == str(week.folder / "report.html")
    assert run.health_score == summary["health_score"] and len(run.checks) == len(week.results)
    assert run.summary["report_markdown"] == str(week.folder / "report.md")


def test_publish_report__an_unreachable_mlflow_costs_only_the_mlflow_copy(tmp_path, week, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    port = free_port()
    client = MlflowClient(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
    store = quality_store(tmp_path)
    started = time.perf_counter()
    report = publish_report(
        week.settings, store, QualityReport("run-down", AS_OF, week.results, tmp_path / "report"), client
    )
    assert time.perf_counter() - started < 15
    assert report.mlflow_run_id is None and f"127.0.0.1:{port}" in report.mlflow_error
    assert "\n" not in report.mlflow_error
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"MLflow: not logged ({report.mlflow_error}); the files next to this report are complete." in markdown
    assert (tmp_path / "report" / "report.html").is_file()
    # drift files outside the report's folder keep their absolute path
    assert f"({week.folder / 'drift' / 'drift_NP.html'})" in markdown
    run = store.read_run("run-down")
    assert run.summary["mlflow_error"] == report.mlflow_error and len(run.checks) == len(week.results)
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert saved["summary"]["mlflow_error"] == report.mlflow_error


def test_publish_report__logs_the_report_and_drift_reports_to_the_data_quality_experiment(
    tmp_path, week, mlflow_settings
):
    client = tracking.configure(mlflow_settings)
    store = quality_store(tmp_path)
    folder = tmp_path / "run"
    report = publish_report(mlflow_settings, store, QualityReport("scheduled-2", AS_OF, week.results, folder), client)
    assert report.mlflow_error is None and report.mlflow_run_id
    experiment = client.get_experiment_by_name("data-quality")
    run = client.get_run(report.mlflow_run_id)
    assert run.info.experiment_id == experiment.experiment_id and run.info.status == "FINISHED"
    assert run.data.tags["eopt.airflow_run_id"] == "scheduled-2" and run.data.tags["eopt.status"] == "critical"
    freshness = {r.region: r.value for r in week.results if r.name == "freshness"}
    assert run.data.metrics["health_score"] == report.health_score
    assert run.data.metrics["freshness_PJM"] == freshness["PJM"] == 30.0
    assert run.data.metrics["checks_critical"] == report.count("critical")
    assert {a.path for a in client.list_artifacts(report.mlflow_run_id)} >= {
        "report.md",
        "report.html",
        "results.json",
        "drift",
    }
    assert {a.path for a in client.list_artifacts(report.mlflow_run_id, "drift/NP")} == {
        "drift/NP/drift_NP.html",
        "drift/NP/drift_NP.json",
    }
    assert f"MLflow: run `{report.mlflow_run_id}` in the data-quality experiment" in (folder / "report.md").read_text()
    assert store.read_run().summary["mlflow_run_id"] == report.mlflow_run_id


def test_publish_report__publishing_the_same_run_twice_leaves_one_mlflow_run(tmp_path, week, mlflow_settings):
    client = tracking.configure(mlflow_settings)
    store = quality_store(tmp_path)
    for _ in range(2):
        report = QualityReport("scheduled-3", AS_OF, week.results, tmp_path / "r")
        publish_report(mlflow_settings, store, report, client)
    experiment = client.get_experiment_by_name("data-quality")
    runs = client.search_runs([experiment.experiment_id], "tags.`eopt.airflow_run_id` = 'scheduled-3'")
    assert stored_rows(store.engine, "scheduled-3") == len(week.results) + 1
    assert len(runs) == 1


def test_publish_report__an_mlflow_artifact_store_that_fails_costs_only_the_mlflow_copy(
    tmp_path, week, mlflow_settings
):
    settings = mlflow_settings.with_overrides(quality_experiment="data-quality-artifacts-down")
    client = tracking.configure(settings)
    blocker = tmp_path / "artifacts"
    blocker.write_text("a file where the artifact folder should be")
    client.create_experiment(settings.quality.experiment, artifact_location=blocker.as_uri())
    no_drift = [r for r in week.results if r.name != "drift"]  # e.g. every region's drift skipped
    store = quality_store(tmp_path)
    report = publish_report(settings, store, QualityReport("scheduled-6", AS_OF, no_drift, tmp_path / "r"), client)
    assert report.mlflow_error and (tmp_path / "r" / "report.html").is_file()
    assert stored_rows(store.engine, "scheduled-6") == len(no_drift) + 1


# -- the Prometheus exporter -----------------------------------------------------------------------


def test_exporter__before_any_run_serves_only_that_it_is_up(tmp_path):
    store = quality_store(tmp_path)
    with MetricsServer(store.engine, "127.0.0.1", 0) as server:
        status, families = scrape(server.url)
    assert status == 200 and set(families) == {"data_quality_exporter_up"}
    assert [s.value for s in families["data_quality_exporter_up"].samples] == [1.0]


def test_exporter__serves_each_maintenance_task_s_last_real_run__never_a_dry_one(tmp_path):
    store = quality_store(tmp_path)
    runs = MaintenanceRunStore(store.engine)
    day = datetime(2026, 3, 1, 3, 30, tzinfo=UTC)
    runs.record("remove_quality_runs", dry_run=False, items=60, size=2_760_000, rows=0, finished_at=day)
    runs.record("remove_quality_runs", dry_run=True, items=1, size=46_000, rows=0, finished_at=day + timedelta(days=1))
    runs.record("vacuum_stores", dry_run=True, items=0, size=0, rows=0, finished_at=day)
    with MetricsServer(store.engine, "127.0.0.1", 0) as server:
        _, families = scrape(server.url)
    stamps = {s.labels["task_id"]: s.value for s in families["maintenance_last_success_timestamp_seconds"].samples}
    removed = {s.labels["task_id"]: s.value for s in families["maintenance_last_removed_bytes"].samples}
    assert stamps == {"remove_quality_runs": day.timestamp()}  # the dry runs are no success
    assert removed == {"remove_quality_runs": 2_760_000.0}


def test_exporter__a_run_where_nothing_could_be_checked_serves_counts_but_no_health_score(tmp_path, week):
    store = quality_store(tmp_path)
    skipped = [r for r in week.results if r.status == "skipped"]
    publish_report(week.settings, store, QualityReport("scheduled-7", AS_OF, skipped, tmp_path / "report"))
    with MetricsServer(store.engine, "127.0.0.1", 0) as server:
        _, families = scrape(server.url)
    assert "data_quality_health_score" not in families
    assert families["data_quality_checks_skipped"].samples[0].value == len(skipped) > 0
    assert families["data_quality_checks_passed"].samples[0].value == 0
    assert [s.value for s in families["data_quality_check_status"].samples] == [-1.0] * len(skipped)


def test_exporter__serves_the_newest_run_s_stored_values(tmp_path, week):
    store = quality_store(tmp_path)
    publish_report(week.settings, store, QualityReport("scheduled-4", AS_OF, week.results, tmp_path / "report"))
    run = store.read_run()
    with MetricsServer(store.engine, "127.0.0.1", 0) as server:
        status, families = scrape(server.url)
    assert status == 200
    # every family served is a documented product metric; maintenance's appear once it ran (test above)
    assert set(families) == {m for m in PRODUCT_METRICS if not m.startswith("maintenance_")}

    def value(name: str) -> float:
        [sample] = families[name].samples
        return sample.value

    def by_region(name: str) -> dict[str, float]:
        return {s.labels["region"]: s.value for s in families[name].samples}

    checks_ = run.checks
    counts = checks_["status"].value_counts()
    assert value("data_quality_exporter_up") == 1.0
    assert value("data_quality_health_score") == run.health_score == health_score(week.results)
    assert value("data_quality_checks_total") == len(checks_) == len(week.results)
    for name, status_ in (("passed", "ok"), ("critical", "critical"), ("warning", "warn"), ("skipped", "skipped")):
        assert value(f"data_quality_checks_{name}") == counts.get(status_, 0) > 0
    assert value("data_quality_last_run_timestamp_seconds") == pytest.approx(run.created_at.timestamp())

    served = {
        (s.labels["check"], s.labels["subject"], s.labels["region"]): s.value
        for s in families["data_quality_check_status"].samples
    }
    assert served == {
        (*row.check_name.partition(":")[::2], row.region): STATUS_CODES[row.status] for row in checks_.itertuples()
    }
    assert served[("api_health", "iea", "all")] == -1 and served[("freshness", "", "PJM")] == 2
    assert served[("price_range", "", "NP")] == 1 and served[("completeness", "epf-history", "NP")] == 0

    stored = checks_.set_index(["check_name", "region"])
    assert (
        by_region("price_data_age_hours")
        == {"NP": 1.0, "PJM": 30.0}
        == {r: stored.loc[("freshness", r), "value"] for r in ("NP", "PJM")}
    )
    assert by_region("data_quality_drift_share") == {"NP": stored.loc[("drift", "NP"), "value"]}
    accuracy = {r: stored.loc[("model_accuracy", r), "details"] for r in ("NP", "PJM")}
    assert by_region("model_realized_mape_percent") == {r: d["mape"] for r, d in accuracy.items()}
    assert by_region("model_realized_mape_percent")["NP"] == pytest.approx(5.0, abs=1e-3)
    assert by_region("model_realized_mape_limit_percent") == {"NP": 15.0, "PJM": 20.0}
    assert by_region("model_realized_rmae") == {r: d["rmae"] for r, d in accuracy.items()}


def test_exporter__a_store_whose_database_is_gone_serves_up_0_and_still_answers(store_url, store_engine, week, request):
    QualityReportStore(store_engine).write_run("run-a", week.results, health_score=50.0, summary={}, report_path=None)
    with MetricsServer(store_engine, "127.0.0.1", 0) as server:
        assert scrape(server.url)[1]["data_quality_health_score"].samples[0].value == 50.0
        if store_engine.dialect.name == "sqlite":
            Path(store_engine.url.database).unlink()
            store_engine.dispose()  # the next connection opens the path afresh: an empty file, no tables
        else:
            with request.getfixturevalue("postgres_admin").connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE "{store_engine.url.database}" WITH (FORCE)'))
        status, families = scrape(server.url)
    assert status == 200 and set(families) == {"data_quality_exporter_up"}
    assert [s.value for s in families["data_quality_exporter_up"].samples] == [0.0]


# -- the eopt commands -----------------------------------------------------------------------------


def test_cli_quality__runs_every_check_prints_the_results_and_writes_the_report(tmp_path, mlflow_settings):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'prices.db'}")
    upgrade(engine)
    load_week(PriceStore(engine), regions=("NP",))
    ApiHealthStore(engine).record(day_of_calls("entsoe"))
    engine.dispose()
    env = {
        "EOPT_HOME": str(tmp_path),
        "EOPT_REGIONS": "NP",
        "EOPT_INGESTION_SOURCES": "entsoe,iea",
        "EOPT_LOG_LEVEL": "WARNING",
        "MLFLOW_TRACKING_URI": mlflow_settings.stores.mlflow_tracking_uri,
        "MLFLOW_REGISTRY_URI": mlflow_settings.stores.mlflow_registry_uri,
    }
    answer = CliRunner().invoke(cli, ["quality", "--region", "NP", "--as-of", "2018-11-12T06:30Z"], env=env)
    assert answer.exit_code == 0, answer.output
    lines = answer.stdout.strip().splitlines()
    folder = tmp_path / "quality" / "manual__2018-11-12T0600"
    assert lines[-1] == (f"health score 90.0: 4 ok, 1 warn, 0 critical, 3 not checked; report {folder / 'report.html'}")
    assert "[OK] freshness NP: newest price 2018-11-12 05:00:00+00:00 (1 h old)" in lines
    assert "[OK] completeness NP/epf-history: 168 of 168 hours present" in lines
    assert any(
        line.startswith("[WARN] price_range NP: 1 outlier hour(s), largest 190.0 at 2018-11-08T17:00:00+00:00")
        for line in lines
    )
    assert any(line.startswith("[SKIPPED] api_health all/iea: no iea calls recorded") for line in lines)
    assert any(line.startswith("[SKIPPED] model_accuracy NP: no stored forecast targets an hour") for line in lines)
    [drift] = [line for line in lines if " drift NP: " in line]
    assert drift.startswith("[OK]") and "against the 730 days before" in drift
    assert any(line.startswith("[SKIPPED] drift NP/performance: no champion model of NP") for line in lines)
    assert len(lines) == 9 and (folder / "report.md").is_file() and (folder / "drift" / "drift_NP.html").is_file()
    assert "(drift/drift_NP.html)" in (folder / "report.md").read_text()
    run = QualityReportStore(create_store_engine(f"sqlite:///{tmp_path / 'prices.db'}")).read_run()
    assert run.run_id == "manual__2018-11-12T0600" and run.health_score == 90.0
    drift_row = run.checks.set_index("check_name").loc["drift"]
    assert drift_row["details"]["reference"]["note"] == "no champion: compared with the 730 days before"
    assert run.summary["mlflow_run_id"] and run.summary["mlflow_error"] is None


def test_cli_metrics_serve__answers_metrics_as_a_real_process_until_terminated(tmp_path, week):
    store = quality_store(tmp_path, "prices.db")
    store.write_run(
        "scheduled-5",
        week.results,
        health_score=health_score(week.results),
        summary={"status": "critical"},
        report_path=None,
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOPT_", "MLFLOW_"))}
    env.update({"EOPT_HOME": str(tmp_path), "EOPT_LOG_LEVEL": "WARNING"})
    process = subprocess.Popen(
        [str(EOPT), "metrics", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url, deadline, families = f"http://127.0.0.1:{port}/metrics", time.monotonic() + 30, None
        while families is None:
            assert process.poll() is None, process.communicate()
            try:
                status, families = scrape(url)
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, f"eopt metrics serve did not answer on {url} within 30 s"
                time.sleep(0.2)
        assert status == 200
        assert families["data_quality_health_score"].samples[0].value == health_score(week.results)
        assert families["data_quality_checks_total"].samples[0].value == len(week.results)
    finally:
        process.terminate()
        out, _err = process.communicate(timeout=10)
    assert f"serving data-quality metrics on {url}" in out
