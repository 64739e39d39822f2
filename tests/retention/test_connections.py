"""The monthly connection test against the local pricing sandbox (every provider's real format and
auth), one connection with a key the sandbox refuses."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from core.settings import PRICING_SOURCES, Settings
from ingestion.providers import provider_config
from pipelines.maintenance import check_connections
from quality.alerts import Alert
from storage.health import ApiHealthStore
from storage.maintenance import MaintenanceRunStore

AS_OF = pd.Timestamp("2016-01-05 12:30", tz="UTC")  # inside the sandbox's bundled history
BUDGETS = {
    "EOPT_PROVIDER_CONNECT_TIMEOUT_S": "1",
    "EOPT_PROVIDER_READ_TIMEOUT_S": "2",
    "EOPT_PROVIDER_REQUEST_TIMEOUT_S": "3",
}


def test_check_connections__one_call_each__api_health_rows__an_alert_naming_the_failed_connection(
    sandbox, store, tmp_path
):
    settings = Settings.from_env(
        {
            "EOPT_HOME": str(tmp_path / "home"),
            "EOPT_PRICING_SANDBOX_URL": sandbox.url,
            "EOPT_ENABLE_SLACK_ALERTS": "1",
            **BUDGETS,
        }
    )
    configs = {source: provider_config(source, settings) for source in PRICING_SOURCES}
    configs["entsoe"] = replace(configs["entsoe"], api_key="not-the-token")  # the sandbox refuses it
    sent: list[Alert] = []

    def slack(alert: Alert, context: dict) -> str:
        sent.append(alert)
        return "https://hooks.example.com"

    outcome = check_connections(store, settings, configs, AS_OF, {"slack": slack}, run_id="scheduled__2016-01-05")

    checks = {row["source"]: row for row in outcome.rows}
    assert list(checks) == list(PRICING_SOURCES)
    assert {s for s, row in checks.items() if row["ok"]} == set(PRICING_SOURCES) - {"entsoe"}
    refused = checks["entsoe"]
    assert (refused["connection_id"], refused["http_status"], refused["calls"]) == ("entsoe_default", 401, 1)
    assert "not-the-token" not in refused["error"]
    # one call each (Flatpeak logs in first: its cheapest price read is two calls), recorded in api_health
    health = ApiHealthStore(store.engine).read()
    assert health.groupby("source").size().to_dict() == {s: checks[s]["calls"] for s in PRICING_SOURCES}
    assert {s: checks[s]["calls"] for s in PRICING_SOURCES if s != "flatpeak"} == dict.fromkeys(
        set(PRICING_SOURCES) - {"flatpeak"}, 1
    )
    assert health[health["source"] == "entsoe"]["status"].tolist() == ["error"]
    assert (health[health["source"] != "entsoe"]["status"] != "error").all()
    for source in PRICING_SOURCES:
        assert checks[source]["latency_ms"] == round(health[health["source"] == source]["latency_ms"].sum(), 2)
    assert dict(sandbox.stats) == {s: checks[s]["calls"] for s in PRICING_SOURCES}  # what the providers saw

    # the alert names the failed connection, and only it
    assert len(sent) == 1
    assert "entsoe_default" in sent[0].subject and "1 of 5" in sent[0].subject
    assert "entsoe_default" in sent[0].slack_text and "nrel_default" not in sent[0].slack_text
    assert "alert: slack sent, email disabled" in outcome.notes
    assert MaintenanceRunStore(store.engine).last_successes()["step"].tolist() == ["check_connections"]


def test_check_connections__all_answering__no_alert(sandbox, store, tmp_path):
    settings = Settings.from_env(
        {"EOPT_HOME": str(tmp_path / "home"), "EOPT_PRICING_SANDBOX_URL": sandbox.url, **BUDGETS}
    )
    configs = {source: provider_config(source, settings) for source in ("iea", "entsoe")}
    outcome = check_connections(store, settings, configs, AS_OF, {}, run_id="manual")
    assert [row["status"] for row in outcome.rows] == ["ok", "ok"]
    assert not any(note.startswith("alert") for note in outcome.notes)


def test_check_connections__a_source_serving_none_of_the_regions_is_not_called(sandbox, store, tmp_path):
    settings = Settings.from_env(
        {"EOPT_HOME": str(tmp_path / "home"), "EOPT_PRICING_SANDBOX_URL": sandbox.url, "EOPT_REGIONS": "NP", **BUDGETS}
    )
    configs = {source: provider_config(source, settings) for source in ("nrel", "iea")}
    outcome = check_connections(store, settings, configs, AS_OF, {}, run_id="manual")
    assert [(row["source"], row["status"], row["calls"], row["ok"]) for row in outcome.rows] == [
        ("nrel", "not called", 0, True),
        ("iea", "ok", 1, True),
    ]
    assert dict(sandbox.stats) == {"iea": 1}
