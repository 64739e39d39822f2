"""data_quality under the real `airflow dags test`: real NP and PJM history, real champions, real Evidently.

One embedded store and registry, built once for the module like production would have left them
on 2018-12-03 06:00 UTC: NP and PJM retrained a week earlier (smoke budget, short window) and
promoted by the gate, a forecast issued at each local midnight of the week since (the day-ahead
forecasts the checks judge; LEAR recalibrated, as by default), and a day of API calls recorded. Each
test works on a copy of it, so any test runs alone or in any order: the clean week (every check
passes: NP's champion serves it with errors 57% above its test window's, but the seasonal naive's
grew 2.3-fold, so the forecast-performance drift, whose expected error follows
the naive's, says ok), the same week with a gap, a spike and a stale region injected (exactly those
checks are flagged and alerted), and PJM's champion with its errors of the last three days doubled
(its performance drift is critical; retraining is triggered only when ``retrain_on_drift`` is on).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from ingestion.http import ApiCall
from pipelines.model_retraining import retrain_region
from quality.exporter import MetricsServer
from registry.models import champion, registered_model_name
from registry.promotion import promote_version
from serving.forecasting import forecast_origin, generate_forecast, prepare_request
from storage.database import create_store_engine
from storage.forecasts import ForecastStore
from storage.health import ApiHealthStore
from storage.promotions import PromotionStore
from storage.quality import QualityReportStore
from storage.schema import electricity_prices, forecasts
from tests.airflow_harness import AirflowHome
from tests.alert_servers import SlackStandIn, SmtpStandIn
from tests.market_frames import store_with_history
from training import tracking
from training.features import day_ahead_origins

pytestmark = pytest.mark.dag

DAG_ID = "data_quality"
REGIONS = ("NP", "PJM")
AS_OF = pd.Timestamp("2018-12-03 06:00", tz="UTC")
LOGICAL_DATE = AS_OF.isoformat()
TRAINING = {
    "EOPT_TRAINING_BUDGET": "smoke",
    "EOPT_TRAINING_WINDOW_DAYS": "120",
    "EOPT_VALIDATION_DAYS": "14",
    "EOPT_TEST_DAYS": "14",
    "EOPT_TRAINING_THREADS": "1",
    "EOPT_LOG_LEVEL": "WARNING",
}
# injected faults
GAP = pd.date_range("2018-11-29 10:00", periods=6, freq="h", tz="UTC")  # NP: 6 missing hours
SPIKE_AT, SPIKE_PRICE = pd.Timestamp("2018-11-30 18:00", tz="UTC"), 250.0  # NP: about 5x the week's level
PJM_CUT = pd.Timestamp("2018-11-30 06:00", tz="UTC")  # PJM: nothing after this, 72 h before the run


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> AirflowHome:
    return AirflowHome.create(tmp_path_factory.mktemp("airflow"))


def settings_of(home: Path) -> Settings:
    return Settings.from_env({"EOPT_HOME": str(home), "EOPT_REGIONS": ",".join(REGIONS), **TRAINING})


@pytest.fixture(scope="module")
def morning(tmp_path_factory) -> Path:
    """The store, registry and forecasts production would hold on the morning of 2018-12-03."""
    home = tmp_path_factory.mktemp("eopt")
    settings = settings_of(home)
    store = store_with_history(settings.stores.database_url, {"NP": 200, "PJM": 200})
    client = tracking.configure(settings)
    promotions = PromotionStore(store.engine)
    for region in REGIONS:
        retrain_region(settings, store, region, as_of=AS_OF - pd.Timedelta(days=7), gate=True)
        if champion(client, region) is None:  # the gate judged it; the test needs a champion either way
            promote_version(client, promotions, region, "1", "test: the week's champion", "test")
    forecasts = ForecastStore(store.engine)
    for region in REGIONS:  # forecast_generation's issues at the region's local midnights (the day-ahead forecasts)
        for issued in day_ahead_origins(region, AS_OF - pd.Timedelta(days=7), AS_OF):
            origin = forecast_origin(store, region, issued)
            forecast = generate_forecast(client, region, prepare_request(store, region, origin), issued)
            assert not forecast.is_fallback, forecast.fallback_reason
            forecasts.upsert_forecasts(forecast.frame)
    calls = [
        ApiCall(
            source,
            f"https://{source}.example/prices",
            "ok",
            200,
            150.0 + 37.0 * (i % 11),
            24,
            None,
            (AS_OF - pd.Timedelta(minutes=15 * (i + 1))).to_pydatetime(),
        )
        for source in settings.providers.sources
        for i in range(96)
    ]
    ApiHealthStore(store.engine).record(calls)
    store.engine.dispose()
    return home


@pytest.fixture
def home(morning, tmp_path) -> Path:
    """The test's own EOPT_HOME: a copy of that morning (the model artifacts stay where they were logged)."""
    return Path(shutil.copytree(morning, tmp_path / "eopt"))


@pytest.fixture
def slack() -> SlackStandIn:
    """The test's own Slack and SMTP stand-ins: what one test's run sends is not in another's."""
    with SlackStandIn() as server:
        yield server


@pytest.fixture
def smtp() -> SmtpStandIn:
    with SmtpStandIn() as server:
        yield server


def run_env(home: Path, slack: SlackStandIn, smtp: SmtpStandIn) -> dict[str, str]:
    return {
        "EOPT_HOME": str(home),
        "EOPT_REGIONS": ",".join(REGIONS),
        **TRAINING,
        "EOPT_AIRFLOW_RETRY_DELAY_S": "1",
        "EOPT_AIRFLOW_TASK_RETRIES": "0",
        "EOPT_AIRFLOW_DEADLINE_ALERTS": "0",  # apache/airflow#73428, see test_dag_forecast
        "EOPT_ENABLE_SLACK_ALERTS": "1",
        "EOPT_ALERT_EMAIL_TO": "energy-ops@example.com",
        **slack.connection_env("slack_data_quality"),
        **smtp.connection_env("smtp_default"),
    }


def stored_run(home: Path):
    """The newest data-quality run in the store (``dags test`` names each run after its start time)."""
    return QualityReportStore(create_store_engine(settings_of(home).stores.database_url)).read_run()


def flagged(run) -> dict[str, str]:
    checks = run.checks
    bad = checks[checks["status"].isin(["warn", "critical"])]
    return {f"{r.check_name} {r.region}": r.status for r in bad.itertuples()}


def test_quality_dag__has_the_documented_schedule_and_tasks(airflow):
    script = (
        "from airflow.dag_processing.dagbag import BundleDagBag; import json, os\n"
        "folder = os.environ['AIRFLOW__CORE__DAGS_FOLDER']\n"
        "bag = BundleDagBag(dag_folder=folder, bundle_path=folder)\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "dag = bag.get_dag('data_quality')\n"
        "print(json.dumps({'schedule': str(dag.schedule), 'catchup': dag.catchup, 'tasks': sorted(dag.task_ids),"
        " 'upstream': {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},"
        " 'rules': {t.task_id: t.trigger_rule.value for t in dag.tasks},"
        " 'mapped': sorted(t.task_id for t in dag.tasks if getattr(t, 'expand_input', None) is not None),"
        " 'on_failure': [getattr(c, '__name__', repr(c)) for c in (dag.default_args.get('on_failure_callback') or [])]}))\n"
    )
    shape = json.loads(airflow.run_python(script).stdout.strip().splitlines()[-1])
    per_region = [
        "check_completeness",
        "check_data_freshness",
        "check_drift",
        "check_model_accuracy",
        "check_price_range",
    ]
    checks = sorted([*per_region, "check_api_health"])
    assert shape["schedule"] == "0 6 * * *" and shape["catchup"] is False
    assert shape["tasks"] == sorted(
        [
            "select_regions",
            *checks,
            "generate_quality_report",
            "alert_on_critical",
            "drift_retraining_needed",
            "trigger_model_retraining",
        ]
    )
    assert shape["mapped"] == per_region  # one instance per region, named by it in the grid
    assert {t: shape["upstream"][t] for t in checks} == {
        **{t: ["select_regions"] for t in per_region},
        "check_api_health": [],
    }
    assert shape["upstream"]["generate_quality_report"] == checks
    assert shape["rules"]["generate_quality_report"] == "all_done"  # a crashed check still gets a report
    assert shape["upstream"]["alert_on_critical"] == ["generate_quality_report"]
    assert shape["upstream"]["trigger_model_retraining"] == ["drift_retraining_needed"]
    assert shape["on_failure"] == ["task_failure_alert"]


def test_quality_dag__on_the_clean_week_passes_every_check_and_alerts_nothing(airflow, home, slack, smtp):
    # NP's champion (smoke budget, trained on the 120 days before 2018-11-26) serves a week of volatile prices
    # with larger errors than on its calm test window; relative to the seasonal naive's errors of the same days
    # it did better than at promotion: no drift (the absolute reference called this week critical)
    result = airflow.dags_test(DAG_ID, LOGICAL_DATE, extra_env=run_env(home, slack, smtp), timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    states = airflow.task_states(DAG_ID)
    # retrain_on_drift is off: the short circuit skips the trigger; everything else succeeded
    assert {k: v for k, v in states.items() if v != "success"} == {"trigger_model_retraining": "skipped"}
    expected = {
        "check_data_freshness": {"NP": ["ok"], "PJM": ["ok"]},
        "check_drift": {"NP": ["ok", "ok"], "PJM": ["ok", "ok"]},  # (inputs, performance)
    }
    for task, results in expected.items():  # one instance per region
        assert {states[f"{task}[{region}]"] for region in REGIONS} == {"success"}
        xcoms = airflow.xcoms(DAG_ID, task)
        assert {k: [r["status"] for r in v] for k, v in xcoms.items()} == {
            f"{task}[{region}]": results[region] for region in REGIONS
        }, [r["message"] for v in xcoms.values() for r in v]
    run = stored_run(home)
    assert flagged(run) == {}
    names = {c.partition(":")[0] for c in run.checks["check_name"]}
    assert names == {"freshness", "completeness", "price_range", "api_health", "model_accuracy", "drift"}
    assert set(run.checks["status"]) == {"ok"}
    assert (
        len(run.checks) == 2 * 6 + 5
    )  # 6 results per region (completeness: one source; drift: inputs and performance) + 5 providers
    assert run.health_score == pytest.approx(100.0)
    drift = run.checks[run.checks["check_name"] == "drift"].set_index("region")
    for region in REGIONS:
        details = drift.loc[region, "details"]
        assert Path(details["report_html"]).is_file() and Path(details["report_json"]).is_file()
        assert details["findings"] == [] and {r["family"] for r in details["rules"]} >= {
            "price_level",
            "intraday_shape",
        }
    performance = run.checks[run.checks["check_name"] == "drift:performance"].set_index("region")
    assert set(performance.index) == set(REGIONS)
    assert (performance["value"] < performance["threshold"]).all() and (performance["threshold"] == 3.0).all()
    np_errors = performance.loc["NP", "details"]
    expected = sum(np_errors["daily_expected_mae"].values()) / len(np_errors["daily_expected_mae"])
    assert np_errors["realised_mae"] > 1.5 * np_errors["reference"]["mean"] and np_errors["realised_mae"] < expected
    report = Path(run.report_path)
    assert report.is_file() and "Health score <b>100.0</b>" in report.read_text()
    assert "<h2>Drift findings</h2>" not in report.read_text()
    summary = airflow.xcoms(DAG_ID, "generate_quality_report")["generate_quality_report"]["summary"]
    assert (summary["health_score"], summary["ok"], summary["warn"], summary["critical"], summary["skipped"]) == (
        100.0,
        17,
        0,
        0,
        0,
    )
    assert slack.messages == [] and smtp.messages == []
    assert airflow.xcoms(DAG_ID, "alert_on_critical") == {
        "alert_on_critical": {"slack": "nothing critical", "email": "nothing critical"}
    }

    # the MLflow run holds the report and each region's drift reports
    settings = settings_of(home)
    client = MlflowClient(settings.stores.mlflow_tracking_uri, settings.stores.mlflow_registry_uri)
    experiment = client.get_experiment_by_name("data-quality")
    runs = client.search_runs([experiment.experiment_id], f"tags.`eopt.airflow_run_id` = '{run.run_id}'")
    assert len(runs) == 1 and runs[0].data.metrics["health_score"] == pytest.approx(100.0)
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"report.md", "report.html", "results.json"} <= artifacts
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id, "accuracy")} == {
        "accuracy/accuracy_NP.png",
        "accuracy/accuracy_PJM.png",
    }
    drift_files = {a.path for a in client.list_artifacts(runs[0].info.run_id, "drift/NP")}
    assert {"drift/NP/drift_NP.html", "drift/NP/drift_NP.json"} <= drift_files

    # a real scrape of the exporter shows the run's score
    engine = create_store_engine(settings.stores.database_url)
    with MetricsServer(engine, "127.0.0.1", 0) as server:
        import urllib.request

        text = urllib.request.urlopen(server.url, timeout=10).read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["data_quality_health_score"].samples[0].value == run.health_score
    assert families["data_quality_checks_passed"].samples[0].value == 17
    cusum = {s.labels["region"]: s.value for s in families["model_error_cusum"].samples}
    assert cusum == pytest.approx(performance["value"].to_dict())
    rules = {(s.labels["region"], s.labels["family"]) for s in families["data_quality_drift_rule_status"].samples}
    assert ("NP", "price_level") in rules and ("PJM", "exogenous_level") in rules
    assert families["data_quality_checks_critical"].samples[0].value == 0
    mape = {s.labels["region"]: s.value for s in families["model_realized_mape_percent"].samples}
    assert set(mape) == set(REGIONS) and all(0 < v < 15 for v in mape.values())


def test_quality_dag__flags_exactly_the_injected_gap_spike_and_stale_region_and_alerts_them(airflow, home, slack, smtp):
    engine = create_store_engine(settings_of(home).stores.database_url)
    t = electricity_prices
    with engine.begin() as conn:
        conn.execute(sa.delete(t).where(t.c.region == "NP", t.c.ts.in_([ts.to_pydatetime() for ts in GAP])))
        conn.execute(
            sa.update(t).where(t.c.region == "NP", t.c.ts == SPIKE_AT.to_pydatetime()).values(price=SPIKE_PRICE)
        )
        conn.execute(sa.delete(t).where(t.c.region == "PJM", t.c.ts > PJM_CUT.to_pydatetime()))
    engine.dispose()

    result = airflow.dags_test(DAG_ID, LOGICAL_DATE, extra_env=run_env(home, slack, smtp), timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    freshness = airflow.xcoms(DAG_ID, "check_data_freshness")
    assert [r["status"] for r in freshness["check_data_freshness[PJM]"]] == ["critical"]
    assert [r["status"] for r in freshness["check_data_freshness[NP]"]] == ["ok"]
    run = stored_run(home)
    assert flagged(run) == {
        "completeness:epf-history NP": "warn",
        "price_range NP": "warn",
        "freshness PJM": "critical",
    }  # the spike hour is a large error of NP's champion, and of the seasonal naive: no performance drift
    checks = run.checks.set_index(["check_name", "region"])
    gap = checks.loc[("completeness:epf-history", "NP")]
    assert gap["value"] == 6 and gap["details"]["gaps"][0] == {
        "first_missing": GAP[0].isoformat(),
        "last_missing": GAP[-1].isoformat(),
        "hours": 6,
    }
    spike = checks.loc[("price_range", "NP")]
    assert spike["details"]["outliers"][0]["ts"] == SPIKE_AT.isoformat() and spike["details"]["outlier_hours"] == 1
    stale = checks.loc[("freshness", "PJM")]
    assert stale["value"] == 72 and stale["details"]["newest"] == PJM_CUT.isoformat()
    # the spike is price_range's finding: the drift report leaves that hour out instead of calling the week drifted
    drift = checks.loc[("drift", "NP")]
    assert drift["details"]["current"]["price_outliers_left_out"] == [SPIKE_AT.isoformat()] and drift["status"] == "ok"
    assert Path(drift["details"]["report_html"]).is_file() and Path(run.report_path).is_file()
    assert run.health_score == pytest.approx(100 * (14 + 2 * 0.5) / 17, abs=0.05)
    assert len(run.checks) == 17

    assert len(slack.messages) == 1 and len(smtp.messages) == 1
    for text in (slack.messages[0], smtp.messages[0]):
        assert "[CRITICAL] freshness PJM: newest price is 2018-11-30 06:00:00+00:00" in text
        assert "price_range NP" not in text.split("warn")[0]  # warnings are counted, not listed as critical
    assert "energy-ops@example.com" in smtp.recipients[0]
    assert airflow.xcoms(DAG_ID, "alert_on_critical") == {"alert_on_critical": {"slack": "sent", "email": "sent"}}


def make_errors_worse(home: Path, region: str, since: pd.Timestamp, factor: float) -> int:
    """Every stored forecast of ``region`` for an hour from ``since`` on, its error against the realised
    price multiplied by ``factor``; returns how many forecast rows changed."""
    engine = create_store_engine(settings_of(home).stores.database_url)
    f, p = forecasts, electricity_prices
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(f.c.issued_at, f.c.target_ts, f.c.yhat, p.c.price)
            .join(p, sa.and_(p.c.region == f.c.region, p.c.ts == f.c.target_ts))
            .where(f.c.region == region, f.c.target_ts >= since.to_pydatetime())
        ).all()
        for issued_at, target_ts, yhat, price in rows:
            conn.execute(
                sa.update(f)
                .where(f.c.region == region, f.c.issued_at == issued_at, f.c.target_ts == target_ts)
                .values(yhat=price + factor * (yhat - price))
            )
    engine.dispose()
    return len(rows)


def test_quality_dag__a_champion_whose_errors_doubled_for_three_days_is_critical_and_retrained_when_on(
    airflow, home, slack, smtp
):
    # PJM's champion (ok on the clean week): every served forecast error of the last three days doubled
    assert make_errors_worse(home, "PJM", AS_OF - pd.Timedelta(days=3), 2.0) >= 72

    off = airflow.dags_test(DAG_ID, LOGICAL_DATE, extra_env=run_env(home, slack, smtp), timeout=600)
    assert off.returncode == 0, (off.stdout + off.stderr)[-6000:]
    checks = stored_run(home).checks.set_index(["check_name", "region"])
    performance = checks.loc[("drift:performance", "PJM")]
    assert performance["status"] == "critical", performance["details"]
    assert performance["value"] >= performance["threshold"] == 3.0
    assert performance["details"]["model"].startswith(f"{registered_model_name('PJM')}/")
    assert performance["details"]["first_alarm"] >= (AS_OF - pd.Timedelta(days=3)).floor("D").isoformat()
    drifted = sorted(
        r["region"]
        for r in stored_run(home).checks.to_dict("records")
        if r["check_name"].partition(":")[0] == "drift" and r["status"] == "critical"
    )
    assert drifted == ["PJM"]  # NP is ok, as on the clean week
    # retrain_on_drift is off: the short circuit says no and the trigger is skipped
    states = airflow.task_states(DAG_ID)
    assert (states["drift_retraining_needed"], states["trigger_model_retraining"]) == ("success", "skipped")
    assert "manual" not in airflow.run("dags", "list-runs", "model_retraining").stdout  # nothing was triggered
    assert len(slack.messages) == 1 and "[CRITICAL] drift PJM/performance: forecast errors: CUSUM" in slack.messages[0]

    on = airflow.dags_test(
        DAG_ID, LOGICAL_DATE, extra_env={**run_env(home, slack, smtp), "EOPT_RETRAIN_ON_DRIFT": "1"}, timeout=600
    )
    assert on.returncode == 0, (on.stdout + on.stderr)[-6000:]
    assert airflow.xcoms(DAG_ID, "drift_retraining_needed") == {"drift_retraining_needed": {"regions": drifted}}
    assert airflow.task_states(DAG_ID)["trigger_model_retraining"] == "success"
    runs = airflow.run("dags", "list-runs", "model_retraining", "--output", "json").stdout
    triggered = json.loads(next(line for line in runs.splitlines() if line.startswith("[{")))
    assert len(triggered) == 1 and triggered[0]["state"] == "queued"
    assert airflow.run_confs("model_retraining") == [{"regions": drifted}]  # it retrains exactly those
