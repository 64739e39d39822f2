"""The `make demo` summary: each region's line, and its drift part (the rules' findings and the errors' verdict,
never a share)."""

from __future__ import annotations

import pandas as pd

from core.settings import Settings
from eopt.demo import describe_drift, region_summary, summary_line
from pipelines import data_quality as quality
from pipelines.forecast_generation import generate_forecasts, prepare_features, store_forecasts
from tests.market_frames import store_with_history
from training import tracking

STUCK_FROM = pd.Timestamp("2018-12-21 12:00", tz="UTC")  # inside the quality run's week


def test_describe_drift__names_each_finding_and_the_forecast_errors_verdict():
    drift = {
        "status": "critical",
        "findings": [
            "critical: exogenous wind_power_forecast: level +41% vs the previous 4 weeks (3.4 x the spread)",
            "warn: price level: +22% vs the week before (median 48.10 vs 39.40)",
        ],
        "message": "critical: exogenous wind_power_forecast ...",
        "performance": {"status": "ok", "message": "forecast errors: CUSUM 0.40 (warn 2.5, critical 3)"},
    }

    line = describe_drift(drift)

    assert line == (
        "drift critical: critical: exogenous wind_power_forecast: level +41% vs the previous 4 weeks (3.4 x the "
        "spread); warn: price level: +22% vs the week before (median 48.10 vs 39.40); forecast errors ok "
        "(forecast errors: CUSUM 0.40 (warn 2.5, critical 3))"
    )
    assert "share" not in line


def test_describe_drift__says_ok_skipped_or_missing():
    assert describe_drift(None) == "no drift result"
    assert (
        describe_drift({"status": "ok", "findings": [], "message": "no rule"}) == "drift ok: no rule past its threshold"
    )
    skipped = describe_drift({"status": "skipped", "findings": [], "message": "no prices in the last 7 days"})
    assert skipped == "drift skipped (no prices in the last 7 days)"


def test_region_summary__reads_what_the_forecast_and_quality_pipelines_stored(tmp_path, monkeypatch):
    """NP's line of the demo's summary against a real store and a real (empty) MLflow registry: the
    fallback forecasts stored by forecast_generation's steps and the rows of a data_quality run (the
    store keeps a check's message and findings in its details), after NP's feed repeated one price
    for 30 hours."""
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path), "EOPT_REGIONS": "NP"})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.stores.mlflow_tracking_uri)  # configure() sets it
    issued, checked = pd.Timestamp("2018-12-23 00:00", tz="UTC"), pd.Timestamp("2018-12-24 06:00", tz="UTC")
    store = store_with_history(settings.stores.database_url, {"NP": 63})
    try:
        prices = store.read_prices("NP", STUCK_FROM, STUCK_FROM + pd.Timedelta(hours=30))
        store.upsert_prices(prices.assign(price=prices["price"].iloc[0]))  # a feed stuck on one value
        client = tracking.configure(settings)
        folder = tmp_path / "forecast"
        prepare_features(store, ["NP"], issued, folder)
        generate_forecasts(client, ["NP"], folder, issued)
        store_forecasts(store, ["NP"], folder)
        quality_folder = tmp_path / "quality" / "run-1"
        payloads = quality.run_checks(store, client, settings, ["NP"], checked, quality_folder)
        quality.generate_quality_report(store, client, settings, "run-1", checked, quality_folder, payloads)
    finally:
        store.engine.dispose()
    inputs, errors = payloads[("check_drift", "NP")]  # the drift results as the check returned them
    stuck_at = prices["price"].iloc[0]

    summary = region_summary(settings, "NP", issued.isoformat())

    assert (summary["registered_version"], summary["stage"], summary["champion_version"], summary["gate"]) == (
        None,
        None,
        None,
        None,
    )
    assert summary["forecasts"] == {
        "issued_at": "2018-12-23T00:00:00+00:00",
        "hours": 24,
        "model_version": "0",
        "is_fallback": True,
        "fallback_reason": "no Production model of NP when it was issued",
    }
    assert inputs.status == "critical" and errors.status == "skipped"
    assert summary["drift"] == {
        "status": "critical",
        "findings": [f"{f['status']}: {f['text']}" for f in inputs.details["findings"]],
        "message": inputs.message,
        "performance": {"status": "skipped", "message": "no champion model of NP: no errors to follow"},
    }
    assert stuck_at == 55.78 and "critical: price stuck: 30 h in a row at 55.78" in summary["drift"]["findings"]
    assert summary["quality_report"] == str(quality_folder / "report.html")
    assert summary_line(summary) == (
        "NP: version None (None), gate no gate decision; 24 FALLBACK forecasts (no Production model of NP when it "
        f"was issued); drift critical: {'; '.join(summary['drift']['findings'])}; forecast errors skipped (no "
        "champion model of NP: no errors to follow)"
    )
