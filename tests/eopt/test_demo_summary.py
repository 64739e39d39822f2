"""The `make demo` summary line's drift part: the rules' findings and the errors' verdict, never a share."""

from __future__ import annotations

from eopt.demo import describe_drift


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
