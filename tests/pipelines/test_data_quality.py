"""data_quality's flow without Airflow: the run's regions, every check of every region, and the report
of checks that did not complete (real store, real MLflow tracking store, no model registered)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.settings import Settings, SettingsError
from pipelines import data_quality as flow
from storage.quality import QualityReportStore
from tests.market_frames import store_with_history
from training import tracking

AS_OF = pd.Timestamp("2018-12-03 06:00", tz="UTC")


def test_select_regions__narrows_to_the_run_s_regions_and_refuses_an_unknown_one_by_name():
    settings = Settings.from_env({"EOPT_REGIONS": "NP,PJM"})
    assert flow.select_regions(settings, None) == ["NP", "PJM"]
    assert flow.select_regions(settings, ["be", "NP", "BE"]) == ["BE", "NP"]
    with pytest.raises(
        SettingsError, match=r"conf regions: unknown region XX; the region catalogue .* holds NP, PJM, BE, FR, "
    ):
        flow.select_regions(settings, ["NP", "XX"])
    with pytest.raises(SettingsError, match=r"is not a list of regions"):
        flow.select_regions(settings, "NP")


def test_expected_results__maps_the_region_checks_in_order_and_api_health_once():
    expected = flow.expected_results(["NP", "PJM"])
    assert expected[:2] == [("check_data_freshness", "NP", 0), ("check_data_freshness", "PJM", 1)]
    assert expected[-1] == ("check_api_health", "all", None)
    assert len(expected) == 5 * 2 + 1


def test_quality_flow__reports_a_check_that_did_not_complete_for_one_region_as_not_checked(tmp_path: Path):
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path), "EOPT_REGIONS": "NP,PJM"})
    store = store_with_history(settings.stores.database_url, {"NP": 40, "PJM": 40})
    client = tracking.configure(settings)
    folder = tmp_path / "quality" / "run"
    try:
        payloads = flow.run_checks(store, client, settings, ["NP", "PJM"], AS_OF, folder)
        assert [(task, region) for task, region, _ in flow.expected_results(["NP", "PJM"])] == list(payloads)
        assert [r.region for r in payloads[("check_data_freshness", "PJM")]] == ["PJM"]
        payloads = {**payloads, ("check_drift", "PJM"): None}  # that instance failed

        report = flow.generate_quality_report(store, client, settings, "run-1", AS_OF, folder, payloads)

        drift = {r.region: r for r in report.results if r.name == "drift"}
        assert drift["PJM"].status == "skipped"
        assert drift["PJM"].message == "the check_drift task for PJM did not complete; its log in this run says why"
        assert drift["NP"].message != drift["PJM"].message  # NP's drift was checked (or skipped for its own reason)
        stored = QualityReportStore(store.engine).read_run("run-1").checks.set_index(["check_name", "region"])
        assert stored.loc[("drift", "PJM"), "status"] == "skipped"
        assert len(stored) == len(report.results)
    finally:
        store.engine.dispose()
