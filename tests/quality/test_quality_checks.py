"""The data-quality checks on real NP and PJM history in real stores (SQLite, and PostgreSQL where the
store is what is tested): completeness, price range, freshness, API health and realized model accuracy.

Every store holds the bundled market history around ``AS_OF`` (Monday 2018-11-12 06:00 UTC; the week
before it is a clean NP week: no gap, no outlier, a weekly seasonal naive MAPE of about 7%); a test
removes or changes exactly the rows its finding is about and checks the numbers the check reports.
"""

from __future__ import annotations

import socket
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from core.markets import HISTORY_SOURCE, MarketHistory, get_market, load_market
from core.settings import Settings
from core.timestamps import local_day_starts, local_midnights
from ingestion.http import ApiCall
from ingestion.validation import plausible_range
from quality import checks
from quality.checks import OUTLIER_CRITICAL_SHARE, PromotionFigures, Window, model_accuracy_of, served_forecasts
from registry.models import registered_model_name
from storage.database import create_store_engine, upgrade
from storage.forecasts import ForecastStore
from storage.health import ApiHealthStore
from storage.prices import PriceStore

ROOT = Path(__file__).resolve().parents[2]
AS_OF = pd.Timestamp("2018-11-12 06:00", tz="UTC")
WINDOW = Window.before(AS_OF, 7)  # 2018-11-05 06:00 .. 2018-11-12 06:00, 168 hours
HOUR = pd.Timedelta(hours=1)
WEEK = pd.Timedelta(hours=168)
CONTEXT_START = WINDOW.start - pd.Timedelta(days=checks.CONTEXT_DAYS)


@cache
def history(region: str) -> MarketHistory:
    return load_market(region, ROOT / "data" / "markets")


def real_prices(
    region: str, start: pd.Timestamp = CONTEXT_START, end: pd.Timestamp = AS_OF + pd.Timedelta(days=2)
) -> pd.DataFrame:
    """The region's bundled price rows with ``start <= ts < end`` (the store's price-row shape)."""
    return history(region).between(start, end).prices


def at(prices: pd.DataFrame, hours) -> pd.Series:
    return prices["ts"].isin(pd.DatetimeIndex(hours))


def settings_for(home: Path, **env: str) -> Settings:
    return Settings.from_env({"EOPT_HOME": str(home), **env})


@pytest.fixture
def new_store(tmp_path):
    """A fresh migrated SQLite store holding the given price rows."""
    engines: list[sa.Engine] = []

    def make(*frames: pd.DataFrame) -> PriceStore:
        engine = create_store_engine(f"sqlite:///{tmp_path / f'prices{len(engines)}.db'}")
        upgrade(engine)
        engines.append(engine)
        store = PriceStore(engine)
        for frame in frames:
            store.upsert_prices(frame)
        return store

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return settings_for(tmp_path)


def by_subject(results) -> dict:
    return {r.subject: r for r in results}


# -- completeness ------------------------------------------------------------------------------


def test_completeness__a_complete_real_week_is_ok_on_each_dialect(store, settings):
    store.upsert_prices(real_prices("NP"))
    [result] = checks.completeness(store, settings, ["NP"], AS_OF)
    assert (result.name, result.region, result.subject, result.status) == ("completeness", "NP", HISTORY_SOURCE, "ok")
    assert result.value == 0.0 and result.threshold == 1.0
    assert result.details["expected_hours"] == 168 and result.details["missing_hours"] == 0
    assert result.details["checked_from"] == WINDOW.start.isoformat()
    assert result.details["checked_to"] == (AS_OF - HOUR).isoformat()  # the hours after the run are not read
    assert result.message == "168 of 168 hours present"


def test_completeness__half_the_hours_of_the_week_missing_is_critical(new_store, settings):
    prices = real_prices("NP")
    odd_hours = WINDOW.start + HOUR * np.arange(1, 168, 2)  # every other hour of the window
    store = new_store(prices[~at(prices, odd_hours)])
    [result] = checks.completeness(store, settings, ["NP"], AS_OF)
    assert result.status == "critical"
    # the newest stored hour is the window's second-last: 83 of the 167 hours up to it are missing
    assert result.details["expected_hours"] == 167 and result.details["missing_hours"] == 83
    assert result.details["missing_share"] == pytest.approx(0.5, abs=0.01)
    assert result.value == 1.0  # each gap is one hour: the share makes it critical, not a long gap
    assert "83 of 167 hours missing (50%)" in result.message and "backfill" in result.message


def test_completeness__one_single_missing_hour_is_ok_but_listed(new_store, settings):
    prices = real_prices("NP")
    hole = pd.Timestamp("2018-11-08 13:00", tz="UTC")
    store = new_store(prices[~at(prices, [hole])])
    [result] = checks.completeness(store, settings, ["NP"], AS_OF)
    assert result.status == "ok" and result.value == 1.0 and result.threshold == 1.0
    assert result.details["missing_hours"] == 1
    assert result.details["gaps"] == [{"first_missing": hole.isoformat(), "last_missing": hole.isoformat(), "hours": 1}]
    assert result.message == "167 of 168 hours present (1 single missing hour(s))"


def test_completeness__a_three_hour_gap_is_a_warning_naming_its_first_and_last_hour(new_store, settings):
    prices = real_prices("NP")
    gap = pd.date_range("2018-11-07 02:00", periods=3, freq="h", tz="UTC")
    store = new_store(prices[~at(prices, gap)])
    [result] = checks.completeness(store, settings, ["NP"], AS_OF)
    assert result.status == "warn" and result.value == 3.0
    assert result.details["gaps"] == [
        {"first_missing": gap[0].isoformat(), "last_missing": gap[-1].isoformat(), "hours": 3}
    ]
    assert result.details["missing_share"] == round(3 / 168, 4)
    assert f"longest 3 h from {gap[0]}" in result.message


def test_completeness__a_critical_message_names_where_the_longest_gap_starts(new_store, settings):
    prices = real_prices("NP")
    short = pd.date_range("2018-11-06 02:00", periods=3, freq="h", tz="UTC")
    long = pd.date_range("2018-11-09 00:00", periods=20, freq="h", tz="UTC")
    store = new_store(prices[~at(prices, short.append(long))])
    [result] = checks.completeness(store, settings, ["NP"], AS_OF)
    assert result.status == "critical" and result.value == 20.0  # 23 of 168 hours: 14% >= 10%
    assert result.details["gaps"][0]["first_missing"] == long[0].isoformat()  # details: longest first
    assert f"longest gap 20 h from {long[0]}" in result.message


def test_completeness__a_zero_critical_share_does_not_break_on_a_complete_week(new_store, tmp_path):
    store = new_store(real_prices("NP"))
    strict = settings_for(tmp_path, EOPT_QUALITY_MISSING_CRITICAL_SHARE="0")
    [result] = checks.completeness(store, strict, ["NP"], AS_OF)
    assert result.status == "ok" and result.details["missing_hours"] == 0


def test_completeness__a_region_with_no_prices_is_critical_with_the_load_history_hint(store, settings):
    store.upsert_prices(real_prices("NP"))
    [result] = checks.completeness(store, settings, ["BE"], AS_OF)
    assert (result.region, result.subject, result.status) == ("BE", None, "critical")
    assert result.value == 168.0 and result.details["missing_hours"] == 168
    assert "eopt load-history --region BE" in result.message


def test_completeness__a_source_that_delivered_nothing_in_the_window_is_critical_while_the_other_is_ok(
    new_store, settings
):
    prices = real_prices("NP")
    before = prices[prices["ts"] < WINDOW.start]
    store = new_store(prices, before.assign(source="entsoe"))  # ENTSO-E stopped when the window began
    results = by_subject(checks.completeness(store, settings, ["NP"], AS_OF))
    assert set(results) == {"entsoe", HISTORY_SOURCE}
    assert results[HISTORY_SOURCE].status == "ok"
    stopped = results["entsoe"]
    assert stopped.status == "critical" and stopped.value == 168.0
    assert stopped.details["newest"] == (WINDOW.start - HOUR).isoformat()
    assert "entsoe delivered no NP price in the window" in stopped.message


def test_completeness__a_source_that_stopped_inside_the_window_while_another_continues_is_critical(new_store, settings):
    prices = real_prices("NP")
    stop = AS_OF - pd.Timedelta(hours=72)
    store = new_store(prices, prices[prices["ts"] < stop].assign(source="entsoe"))
    assert [r.status for r in checks.freshness(store, settings, ["NP"], AS_OF)] == ["ok"]
    stopped = by_subject(checks.completeness(store, settings, ["NP"], AS_OF))["entsoe"]
    assert stopped.status == "critical"  # 72 of 168 hours (43%) missing, >= the 10% critical share


def test_completeness__a_stale_tail_is_freshness_finding_not_a_completeness_one(new_store, settings):
    prices = real_prices("NP")
    cut = AS_OF - pd.Timedelta(hours=48)
    store = new_store(prices[prices["ts"] < cut])
    [complete] = checks.completeness(store, settings, ["NP"], AS_OF)
    assert complete.status == "ok" and complete.details["missing_hours"] == 0
    assert complete.details["checked_to"] == (cut - HOUR).isoformat() and complete.details["expected_hours"] == 120
    [fresh] = checks.freshness(store, settings, ["NP"], AS_OF)
    assert fresh.status == "critical" and fresh.value == 49.0


# -- price range -------------------------------------------------------------------------------


def reference_z(prices: pd.Series, ts: pd.Timestamp) -> float:
    """The robust z of one hour against the 4 weeks of ``prices`` before the window, computed here from its definition."""
    values = prices[prices.index < WINDOW.start].to_numpy(float)
    median = np.median(values)
    scale = max(1.4826 * np.median(np.abs(values - median)), 0.01 * abs(median), 0.5)
    return abs(prices[ts] - median) / scale


def canonical(prices: pd.DataFrame) -> pd.Series:
    rows = prices[(prices["ts"] >= CONTEXT_START) & (prices["ts"] < AS_OF)]
    return rows.set_index("ts")["price"]


def test_price_range__a_clean_real_week_is_ok_with_its_median_and_largest_z(store, settings):
    prices = real_prices("NP")
    store.upsert_prices(prices)
    [result] = checks.price_range(store, settings, ["NP"], AS_OF)
    five_weeks = canonical(prices)
    week = five_weeks[five_weeks.index >= WINDOW.start]
    largest = max(reference_z(five_weeks, ts) for ts in week.index)
    assert result.status == "ok" and result.threshold == 15.0
    assert result.value == pytest.approx(largest, abs=0.01) and result.value < 15
    assert result.details["hours"] == 168 and result.details["outlier_hours"] == 0
    four_weeks_before = five_weeks[five_weeks.index < WINDOW.start]
    assert result.details["reference_median"] == pytest.approx(float(np.median(four_weeks_before)), abs=1e-3)
    assert result.details["min"] == round(week.min(), 2) and result.details["max"] == round(week.max(), 2)
    assert "168 hours within 15 robust z" in result.message


def test_price_range__one_spike_is_a_warning_listing_its_hour_and_robust_z(new_store, settings):
    prices = real_prices("NP")
    spike_at = pd.Timestamp("2018-11-08 17:00", tz="UTC")
    prices.loc[at(prices, [spike_at]), "price"] = 190.0  # NP's record hour in the history is 199.97
    store = new_store(prices)
    [result] = checks.price_range(store, settings, ["NP"], AS_OF)
    z = reference_z(canonical(prices), spike_at)
    assert z > 15
    assert result.status == "warn" and result.value == pytest.approx(z, abs=0.01)
    assert result.details["outlier_hours"] == 1
    assert result.details["outliers"] == [{"ts": spike_at.isoformat(), "price": 190.0, "robust_z": round(z, 1)}]
    assert f"largest 190.0 at {spike_at.isoformat()} (robust z {round(z, 1)}" in result.message


@pytest.mark.parametrize("price", [4100.0, -650.0])
def test_price_range__a_price_outside_the_plausible_range_is_critical(new_store, settings, price):
    low, high = plausible_range("NP", settings.catalogue)
    assert not low <= price <= high
    prices = real_prices("NP")
    bad_at = pd.Timestamp("2018-11-10 09:00", tz="UTC")
    prices.loc[at(prices, [bad_at]), "price"] = price
    store = new_store(prices)
    [result] = checks.price_range(store, settings, ["NP"], AS_OF)
    assert result.status == "critical"
    assert f"1 price(s) outside the plausible range [{low}, {high}] (e.g. {price:.2f} at {bad_at})" in result.message
    assert result.details["plausible_range"] == [low, high]


def test_price_range__a_whole_week_at_three_times_its_price_is_critical(new_store, settings):
    prices = real_prices("NP")
    week = (prices["ts"] >= WINDOW.start) & (prices["ts"] < AS_OF)
    prices.loc[week, "price"] *= 3
    store = new_store(prices)
    [result] = checks.price_range(store, settings, ["NP"], AS_OF)
    share = result.details["outlier_hours"] / 168
    assert result.status == "critical" and share > OUTLIER_CRITICAL_SHARE
    assert f"{result.details['outlier_hours']} of 168 hours ({share:.0%}) are outliers" in result.message


def test_price_range__a_few_negative_hours_within_the_z_limit_are_legal(new_store, settings):
    prices = real_prices("NP")
    night = pd.date_range("2018-11-10 01:00", periods=3, freq="h", tz="UTC")
    prices.loc[at(prices, night), "price"] = -5.0
    store = new_store(prices)
    [result] = checks.price_range(store, settings, ["NP"], AS_OF)
    five_weeks = canonical(prices)
    assert reference_z(five_weeks, night[0]) < 15  # judged by its distance from the median, not by its sign
    assert result.status == "ok" and result.details["negative_hours"] == 3 and result.details["min"] == -5.0
    assert "3 negative hour(s), which are legal" in result.message


def test_price_range__a_negative_price_beyond_the_z_limit_is_an_outlier_like_any_other(new_store, settings):
    prices = real_prices("NP")
    dip = pd.Timestamp("2018-11-10 03:00", tz="UTC")
    prices.loc[at(prices, [dip]), "price"] = -120.0
    store = new_store(prices)
    [result] = checks.price_range(store, settings, ["NP"], AS_OF)
    assert result.status == "warn" and result.details["outliers"][0]["ts"] == dip.isoformat()
    assert result.details["outliers"][0]["robust_z"] == round(reference_z(canonical(prices), dip), 1)


def test_price_range__a_real_pjm_week_with_23_negative_hours_is_ok(new_store, settings):
    as_of = pd.Timestamp("2018-05-07 00:00", tz="UTC")  # PJM's week with the most negative hours in the history
    prices = real_prices("PJM", as_of - pd.Timedelta(days=35), as_of)
    store = new_store(prices)
    [result] = checks.price_range(store, settings, ["PJM"], as_of)
    assert result.status == "ok" and result.details["negative_hours"] == 23
    assert result.details["min"] < 0 and result.value < 15
    assert result.details["plausible_range"] == [-1000.0, 4000.0]


def test_price_range__a_region_without_prices_in_the_window_is_skipped(new_store, settings):
    prices = real_prices("NP")
    store = new_store(prices[prices["ts"] < WINDOW.start])
    [result] = checks.price_range(store, settings, ["NP"], AS_OF)
    assert result.status == "skipped" and result.message.startswith("no NP prices between")


# -- freshness ---------------------------------------------------------------------------------


def test_freshness__prices_published_ahead_of_the_run_are_ok_with_a_negative_age(store, settings):
    store.upsert_prices(real_prices("NP", CONTEXT_START, AS_OF + pd.Timedelta(days=3)))
    [result] = checks.freshness(store, settings, ["NP"], AS_OF + pd.Timedelta(minutes=40))  # floored to 06:00
    newest = AS_OF + checks.PUBLICATION_AHEAD - HOUR  # later hours are not read
    assert result.status == "ok" and result.value == -47.0
    assert result.details["newest"] == newest.isoformat() and result.details["as_of"] == AS_OF.isoformat()
    assert result.message == f"newest price {newest} (47 h ahead of the run)"


@pytest.mark.parametrize(("age_h", "status"), [(1, "ok"), (2, "ok"), (3, "warn"), (24, "warn"), (30, "critical")])
def test_freshness__the_newest_price_s_age_decides_the_status(new_store, settings, age_h, status):
    store = new_store(real_prices("NP", CONTEXT_START, AS_OF - pd.Timedelta(hours=age_h - 1)))
    [result] = checks.freshness(store, settings, ["NP"], AS_OF)
    assert result.status == status and result.value == float(age_h)
    assert result.threshold == 24.0 and result.details["warn_hours"] == 2.0
    if status != "ok":
        assert f"{age_h} h before the run (limit 2 h warn, 24 h critical)" in result.message


def test_freshness__a_region_without_any_price_is_critical(new_store, settings):
    store = new_store(real_prices("NP"))
    [result] = checks.freshness(store, settings, ["PJM"], AS_OF)
    assert result.status == "critical" and result.value is None and result.details["newest"] is None
    assert "no PJM price in the 28 days before" in result.message and "load history" in result.message


# -- API health --------------------------------------------------------------------------------

API_SOURCES = {"EOPT_INGESTION_SOURCES": "entsoe,iea"}
# latencies of a real day of provider calls cycle through these (ms)
LATENCIES = [142.0, 188.0, 205.0, 231.0, 260.0, 297.0, 315.0, 402.0, 518.0, 890.0]


def calls(
    source: str,
    n: int,
    *,
    errors: int = 0,
    latencies=LATENCIES,
    end: pd.Timestamp = AS_OF,
    every: pd.Timedelta = pd.Timedelta(minutes=14),
) -> list[ApiCall]:
    """``n`` calls ending just before ``end``, the last ``errors`` of them failed (oldest first)."""
    out = []
    for i in range(n):
        called = (end - every * (n - i)).to_pydatetime()
        failed = i >= n - errors
        out.append(
            ApiCall(
                source,
                f"https://{source}.example/api/prices",
                "error" if failed else "ok",
                503 if failed else 200,
                latencies[i % len(latencies)],
                0 if failed else 24,
                f"{source}: HTTP 503 Service Unavailable (call {i})" if failed else None,
                called,
            )
        )
    return out


def api_results(engine: sa.Engine, tmp_path: Path, recorded: list[ApiCall], as_of=AS_OF) -> dict:
    ApiHealthStore(engine).record(recorded)
    return by_subject(checks.api_health(ApiHealthStore(engine), settings_for(tmp_path, **API_SOURCES), as_of))


def test_api_health__a_provider_without_errors_is_ok_with_its_latency_percentiles(store_engine, tmp_path):
    results = api_results(store_engine, tmp_path, calls("entsoe", 100) + calls("iea", 50))
    entsoe = results["entsoe"]
    expected = [float(np.percentile(LATENCIES * 10, q)) for q in (50, 95, 99)]
    assert entsoe.status == "ok" and entsoe.region == "all" and entsoe.value == 0.0 and entsoe.threshold == 0.05
    assert entsoe.details["calls"] == 100 and entsoe.details["errors"] == 0
    assert entsoe.details["latency_ms"] == dict(zip(("p50", "p95", "p99"), expected, strict=False))
    assert entsoe.details["http_statuses"] == {"200": 100}
    assert entsoe.message == f"100 calls, error rate 0.0%, latency p50 {expected[0]:.0f} ms / p95 {expected[1]:.0f} ms"
    assert results["iea"].status == "ok" and results["iea"].details["calls"] == 50


def test_api_health__ten_percent_errors_is_a_warning(store_engine, tmp_path):
    entsoe = api_results(store_engine, tmp_path, calls("entsoe", 100, errors=10))["entsoe"]
    assert entsoe.status == "warn" and entsoe.value == 0.1
    assert entsoe.details["http_statuses"] == {"200": 90, "503": 10}
    assert entsoe.message.startswith("error rate 10.0% (10 of 100)")


def test_api_health__sixty_percent_errors_is_critical_naming_the_last_error(store_engine, tmp_path):
    entsoe = api_results(store_engine, tmp_path, calls("entsoe", 100, errors=60))["entsoe"]
    assert entsoe.status == "critical" and entsoe.value == 0.6
    last = "entsoe: HTTP 503 Service Unavailable (call 99)"
    assert entsoe.details["last_errors"] == [f"entsoe: HTTP 503 Service Unavailable (call {i})" for i in (97, 98, 99)]
    assert f"60 of 100 calls failed (60%) in 24 h; last error: {last}" in entsoe.message


def test_api_health__a_slow_p95_is_a_warning_without_errors(store_engine, tmp_path):
    slow = [300.0] * 18 + [6500.0, 9000.0]  # 10% of the calls take over 6 s
    entsoe = api_results(store_engine, tmp_path, calls("entsoe", 100, latencies=slow))["entsoe"]
    p95 = float(np.percentile(slow * 5, 95))
    assert p95 >= 5000
    assert entsoe.status == "warn" and entsoe.value == 0.0 and entsoe.details["latency_ms"]["p95"] == p95
    assert f"latency p95 {p95:.0f} ms" in entsoe.message


def test_api_health__a_provider_without_calls_is_skipped_by_name(store_engine, tmp_path):
    results = api_results(store_engine, tmp_path, calls("entsoe", 40))
    iea = results["iea"]
    assert (iea.status, iea.subject, iea.region) == ("skipped", "iea", "all")
    assert iea.message.startswith("no iea calls recorded between") and "electricity_price_ingestion" in iea.message


def test_api_health__counts_only_the_24_hours_before_the_run(store_engine, tmp_path):
    inside = calls("entsoe", 50)
    later = calls("entsoe", 30, errors=30, end=AS_OF + pd.Timedelta(hours=8))  # after the run: not counted
    older = calls("entsoe", 30, errors=30, end=AS_OF - pd.Timedelta(hours=25))  # before the 24 h
    run_at = AS_OF + pd.Timedelta(minutes=5)  # floored to the hour
    entsoe = api_results(store_engine, tmp_path, later + inside + older, as_of=run_at)["entsoe"]
    assert entsoe.status == "ok" and entsoe.details["calls"] == 50 and entsoe.details["errors"] == 0
    assert entsoe.details["since"] == (AS_OF - pd.Timedelta(hours=24)).isoformat()
    assert entsoe.details["until"] == AS_OF.isoformat()


# -- realized model accuracy -------------------------------------------------------------------


def issues(region: str, yhat: pd.Series, *, fallback: bool = False, version: str = "4") -> pd.DataFrame:
    """Day-ahead forecasts of ``yhat``'s hours: each issued at the local midnight that began its day."""
    targets = pd.DatetimeIndex(yhat.index)
    issued = local_day_starts(get_market(region).timezone, targets)
    return pd.DataFrame(
        {
            "region": region,
            "issued_at": issued,
            "target_ts": targets,
            "model_name": "seasonal-naive" if fallback else registered_model_name(region),
            "model_version": "0" if fallback else version,
            "yhat": yhat.to_numpy(float),
            "lower": np.nan if fallback else yhat.to_numpy(float) - 5,
            "upper": np.nan if fallback else yhat.to_numpy(float) + 5,
            "is_fallback": fallback,
        }
    )


def week_prices(region: str, as_of: pd.Timestamp = AS_OF) -> tuple[pd.Series, pd.Series]:
    """(the realized prices of the week before ``as_of``, the prices a week earlier on the same hours)."""
    prices = real_prices(region, as_of - pd.Timedelta(days=35), as_of).set_index("ts")["price"]
    week = prices[prices.index >= as_of - WEEK]
    return week, pd.Series(prices.reindex(week.index - WEEK).to_numpy(), index=week.index)


def accuracy_store(
    new_store,
    region: str,
    *forecasts: pd.DataFrame,
    as_of: pd.Timestamp = AS_OF,
    prices_until: pd.Timestamp | None = None,
) -> PriceStore:
    prices = real_prices(region, as_of - pd.Timedelta(days=35), prices_until or as_of)
    store = new_store(prices)
    for frame in forecasts:
        ForecastStore(store.engine).upsert_forecasts(frame)
    return store


def test_model_accuracy__a_forecast_equal_to_the_prices_is_ok_with_zero_error(new_store, settings):
    actual, _ = week_prices("NP")
    store = accuracy_store(new_store, "NP", issues("NP", actual))
    [result] = checks.model_accuracy(store, None, settings, ["NP"], AS_OF)
    assert result.status == "ok" and result.value == 0.0 and result.threshold == 15.0
    assert result.details["mae"] == 0.0 and result.details["rmae"] == 0.0 and result.details["hours"] == 168
    assert result.details["model_versions"] == ["4"] and result.details["fallback_hours"] == 0
    assert result.message.endswith("over 168 h; no promotion figures to compare with")


def test_model_accuracy__a_week_of_fallback_forecasts_is_a_warning(new_store, settings):
    _actual, naive = week_prices("NP")
    store = accuracy_store(new_store, "NP", issues("NP", naive, fallback=True))
    [result] = checks.model_accuracy(store, None, settings, ["NP"], AS_OF)
    assert result.status == "warn" and result.value is None
    assert result.details["fallback_hours"] == 168
    assert result.message.startswith("all 168 forecast hours were seasonal-naive fallbacks")


def test_model_accuracy__forecasts_of_hours_not_yet_realized_are_skipped(new_store, settings):
    actual, _ = week_prices("NP")
    last_day = actual[actual.index >= AS_OF - pd.Timedelta(hours=24)]
    store = accuracy_store(new_store, "NP", issues("NP", last_day), prices_until=AS_OF - pd.Timedelta(hours=24))
    [result] = checks.model_accuracy(store, None, settings, ["NP"], AS_OF)
    assert result.status == "skipped" and result.details == {"forecast_hours": 24}
    assert "24 forecast hour(s) in the window, none with a realized price" in result.message


def test_model_accuracy__a_region_without_forecasts_is_skipped(new_store, settings):
    store = accuracy_store(new_store, "NP")
    [result] = checks.model_accuracy(store, None, settings, ["NP"], AS_OF)
    assert result.status == "skipped" and result.message.startswith("no stored forecast targets an hour between")


@pytest.mark.parametrize(("region", "limit", "critical"), [("NP", 15.0, True), ("PJM", 20.0, False)])
def test_model_accuracy__a_17_percent_mape_is_critical_only_below_the_region_s_gate_threshold(
    new_store, settings, region, limit, critical
):
    actual, _ = week_prices(region)
    store = accuracy_store(new_store, region, issues(region, actual * 1.17))
    [result] = checks.model_accuracy(store, None, settings, [region], AS_OF)
    assert result.value == pytest.approx(17.0, abs=1e-6) and result.threshold == limit
    assert result.details["mape_limit"] == limit
    assert (result.status == "critical") is critical
    if critical:
        assert result.message.startswith(f"MAPE 17.0% above {limit:g}%")


def test_model_accuracy__no_better_than_the_weekly_naive_is_a_warning(new_store, settings):
    _actual, naive = week_prices("NP")
    store = accuracy_store(new_store, "NP", issues("NP", naive))  # a model that repeats last week
    [result] = checks.model_accuracy(store, None, settings, ["NP"], AS_OF)
    assert result.details["rmae"] == 1.0 and result.value < 15
    assert result.status == "warn" and "the weekly seasonal naive did as well or better (rMAE 1.000)" in result.message


@pytest.mark.parametrize(("promoted_rmae", "status"), [(0.4, "critical"), (0.5, "ok")])
def test_model_accuracy__an_rmae_above_1_5_times_the_promotion_rmae_is_critical(
    new_store, settings, promoted_rmae, status
):
    actual, naive = week_prices("NP")
    store = accuracy_store(new_store, "NP", issues("NP", actual + 0.7 * (naive - actual), version="3"))
    served = served_forecasts(store.engine, "NP", WINDOW)
    prices = store.read_canonical("NP").set_index("ts")["price"]
    promoted = PromotionFigures("3", 2.1, promoted_rmae, 4.8, "gate decision (model_promotions)")
    result = model_accuracy_of("NP", served, prices, WINDOW, promoted, settings)
    assert result.details["rmae"] == pytest.approx(0.7, abs=1e-4) and result.value < 15
    assert result.details["rmae_limit"] == pytest.approx(1.5 * promoted_rmae)
    assert result.status == status
    if status == "critical":
        assert result.message.startswith("rMAE 0.700 above 1.5 x the 0.400 v3 had at promotion")
    assert f"(v3 at promotion: rMAE {promoted_rmae:.3f})" in result.message


def test_model_accuracy__an_unreachable_registry_still_reports_the_realized_numbers(new_store, settings, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    registry = MlflowClient(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
    actual, _ = week_prices("NP")
    store = accuracy_store(new_store, "NP", issues("NP", actual * 1.05))
    [result] = checks.model_accuracy(store, registry, settings, ["NP"], AS_OF)
    assert result.status == "ok" and result.value == pytest.approx(5.0, abs=1e-6)
    assert result.details["promotion"] is None and result.details["hours"] == 168
    assert "; no promotion figures to compare with; registry unreachable (" in result.message
    assert f"127.0.0.1:{port}" in result.message


def test_served_forecasts__the_latest_issue_at_or_before_the_local_midnight_of_each_hours_day_wins(store_engine):
    hour = pd.Timestamp("2018-11-08 12:00", tz="UTC")  # NP's local day 2018-11-08 began at 2018-11-07 23:00 UTC
    midnight = pd.Timestamp("2018-11-07 23:00", tz="UTC")
    targets = pd.Series([40.0, 41.0], index=[hour, hour + HOUR])

    def issue(issued_at, yhat, fallback=False, version="4"):
        frame = issues("NP", targets.map(lambda _: yhat), fallback=fallback, version=version)
        return frame.assign(issued_at=issued_at)

    store = ForecastStore(store_engine)
    for frame in (
        issue(midnight - pd.Timedelta(hours=17), 10.0, version="3"),
        issue(midnight - HOUR, 20.0),
        issue(midnight, 30.0, fallback=True),  # the day-ahead issue, a fallback
        issue(hour - pd.Timedelta(hours=2), 50.0, version="5"),  # in force at the hour, issued after its day began
        issue(hour + HOUR, 99.0, version="5"),
        issue(AS_OF + HOUR, 77.0, version="6"),
    ):
        store.upsert_forecasts(frame)
    served = served_forecasts(store_engine, "NP", WINDOW).set_index("target_ts")
    assert served["yhat"].to_dict() == {hour: 30.0, hour + HOUR: 30.0}
    assert set(served["issued_at"]) == {midnight} and served["is_fallback"].all()
    models = served_forecasts(store_engine, "NP", WINDOW, models_only=True).set_index("target_ts")
    assert models["yhat"].to_dict() == {hour: 20.0, hour + HOUR: 20.0}  # the fallback is left out before choosing
    assert models["model_version"].tolist() == ["4", "4"] and not models["is_fallback"].any()


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2018-03-25", 23), ("2018-10-28", 25)],
    ids=["spring-change", "autumn-change"],
)
def test_served_forecasts__a_daylight_saving_day_is_served_by_the_issue_at_its_own_midnight(store_engine, day, hours):
    zone = get_market("NP").timezone
    start, end = local_midnights(zone, [day, pd.Timestamp(day) + pd.Timedelta(days=1)])
    assert (end - start) / HOUR == hours
    targets = pd.date_range(start - HOUR, end + HOUR, freq="h", inclusive="left")  # the day and an hour each side
    store = ForecastStore(store_engine)
    for issued_at, yhat in ((start - pd.Timedelta(days=1), 1.0), (start, 2.0), (end, 3.0)):
        frame = issues("NP", pd.Series(yhat, index=targets))
        store.upsert_forecasts(frame.assign(issued_at=issued_at)[frame["target_ts"] >= issued_at])
    served = served_forecasts(store_engine, "NP", Window(start - HOUR, end + HOUR)).set_index("target_ts")["yhat"]
    assert served.loc[start - HOUR] == 1.0  # the day before's last hour: that day's own issue
    assert (served.loc[start : end - HOUR] == 2.0).all() and len(served.loc[start : end - HOUR]) == hours
    assert served.loc[end] == 3.0  # the next day: the issue at its own midnight
