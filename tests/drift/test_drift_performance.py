"""Forecast-performance drift: the CUSUM against its textbook run lengths, and the verdict on real errors.

The tabular CUSUM with k = 1/2, h = 4 on N(0, 1) data has the run lengths of Montgomery,
Introduction to Statistical Quality Control (6th ed.), Table 9.3: 168 in control for the two-sided
scheme (so 336 for one side, the one the product runs) and 8.38 after a shift of one standard
deviation; Siegmund's approximation gives 338 and 8.34. The simulations run the product's own
``cusum``. The verdict is tried on real errors: NP's weekly seasonal naive (the price a week
before) against the absolute reference, and the published LEAR ensemble of NP (a real champion's
day-ahead forecasts) against the reference relative to the seasonal naive, the product's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.drift_performance import errors_of
from core.markets import load_market
from drift import reports
from drift.performance import (
    CAP,
    CRITICAL_H,
    WARN_H,
    ErrorReference,
    cusum,
    performance_drift_of,
    reference_of,
    siegmund_arl,
    standardised_days,
)
from tests.market_frames import PROJECT_ROOT

MONTGOMERY_ARL0_TWO_SIDED, MONTGOMERY_ARL1 = 168.0, 8.38  # k = 0.5, h = 4; shift 0 and 1 sigma


def run_lengths(shift: float, runs: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lengths = []
    for _ in range(runs):
        alarm = cusum(rng.normal(shift, 1.0, length), 0.5, 4.0).first_alarm
        lengths.append(length if alarm is None else alarm + 1)
    return np.asarray(lengths)


def test_siegmund_arl__matches_montgomerys_table_for_k_half_h_four():
    assert siegmund_arl(0.5, 4.0) == pytest.approx(2 * MONTGOMERY_ARL0_TWO_SIDED, rel=0.02)
    assert siegmund_arl(0.5, 4.0, shift=1.0) == pytest.approx(MONTGOMERY_ARL1, rel=0.01)


def test_cusum__run_lengths_on_normal_data_match_the_textbook():
    in_control = run_lengths(0.0, 600, 3000, seed=7)
    shifted = run_lengths(1.0, 2000, 200, seed=11)

    # standard errors: about 336 / sqrt(600) = 14 (4%) and 0.1 (1.2%)
    assert in_control.mean() == pytest.approx(2 * MONTGOMERY_ARL0_TWO_SIDED, rel=0.12)
    assert shifted.mean() == pytest.approx(MONTGOMERY_ARL1, rel=0.05)


def test_cusum__is_page_s_recursion():
    result = cusum(np.array([1.0, -3.0, 2.0, 2.0, 0.5]), 0.5, 3.0)
    assert list(result.path) == [0.5, 0.0, 1.5, 3.0, 3.0]
    assert result.first_alarm == 3


def naive_errors() -> pd.DataFrame:
    """NP's weekly seasonal naive as the served forecast from 2018-10-01: target_ts, target, prediction."""
    history = load_market("NP", PROJECT_ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    prices = prices[(prices.index >= "2018-09-24") & (prices.index < "2018-11-26")]
    naive = prices.shift(168).dropna()
    return pd.DataFrame(
        {"target_ts": naive.index, reports.TARGET: prices.reindex(naive.index).to_numpy(), reports.PREDICTION: naive}
    ).reset_index(drop=True)


def test_performance_drift__errors_like_the_reference_are_ok_and_grown_by_half_for_three_days_are_critical():
    served = naive_errors()
    # the two weeks from 2018-10-01 are the test window, the week after them is served
    test_window, week = served.iloc[: 14 * 24], served.iloc[14 * 24 : 21 * 24].reset_index(drop=True)
    reference = reference_of(
        pd.Series(
            (test_window[reports.PREDICTION] - test_window[reports.TARGET]).to_numpy(),
            index=pd.DatetimeIndex(test_window["target_ts"]),
        ),
        "the test window (real naive errors)",
    )
    # the naive's errors on the week rescaled to the reference's level: same kind of errors, no drift
    errors = week[reports.PREDICTION] - week[reports.TARGET]
    level = reference.mean / errors.abs().mean()
    usual = week.assign(prediction=week[reports.TARGET] + errors * level)
    worse = usual.copy()
    last3 = worse.index >= len(worse) - 72
    worse.loc[last3, reports.PREDICTION] = worse[reports.TARGET] + 1.5 * errors * level

    ok = performance_drift_of("NP", usual, reference, "np_price_forecaster/1")
    bad = performance_drift_of("NP", worse, reference, "np_price_forecaster/1")

    assert reference.days == 14 and reference.hours == 14 * 24
    assert ok.status in ("ok", "warn") and ok.value < CRITICAL_H, ok.message
    assert (bad.name, bad.subject, bad.status) == ("drift", "performance", "critical"), bad.message
    assert bad.value >= CRITICAL_H > WARN_H
    assert bad.details["first_alarm"] >= worse["target_ts"][last3].min().floor("D").isoformat()
    assert len(bad.details["daily_mae"]) == 7
    assert bad.details["realised_mae"] == pytest.approx(
        np.abs(worse[reports.PREDICTION] - worse[reports.TARGET]).mean(), rel=1e-3
    )
    assert bad.message.startswith("forecast errors: CUSUM ")
    assert "consider retraining" in bad.message


def published_week(first_day: int, holdout_days: int = 14) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """The published LEAR ensemble of NP (a real champion's day-ahead forecasts): its absolute errors and
    the weekly seasonal naive's on the ``holdout_days`` before day ``first_day`` and on the week from it."""
    errors, naive = errors_of("NP")["lear_ensemble"]
    hold, week = slice(24 * (first_day - holdout_days), 24 * first_day), slice(24 * first_day, 24 * (first_day + 7))
    return errors.iloc[hold], naive.iloc[hold], errors.iloc[week], naive.iloc[week]


def served_frame(errors: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"target_ts": errors.index, reports.TARGET: 0.0, reports.PREDICTION: errors.to_numpy()})


def test_performance_drift__a_volatile_week_after_a_calm_holdout_is_no_drift_relative_to_the_naive():
    # 2017-08-22: the LEAR ensemble's errors are 2.1 x its holdout's, the seasonal naive's 3.9 x: the
    # market got harder, the champion did not get worse; the absolute reference calls it critical
    hold, hold_naive, week, week_naive = published_week(238)
    relative = reference_of(hold, "holdout", hold_naive)
    absolute = reference_of(hold, "holdout")

    judged = performance_drift_of("NP", served_frame(week), relative, "lear/1", week_naive)
    naive_judged = performance_drift_of("NP", served_frame(week), absolute, "lear/1")

    assert week.mean() / hold.mean() == pytest.approx(2.14, abs=0.01)
    assert relative.relative and relative.naive_ratio == pytest.approx(hold.mean() / hold_naive.mean(), rel=0.05)
    assert judged.status == "ok" and judged.value < WARN_H, judged.message
    assert naive_judged.status == "critical", naive_judged.message
    assert "expected from its rMAE" in judged.message


def test_performance_drift__a_real_champion_s_errors_grown_by_half_for_three_days_are_critical():
    # 2017-05-23, one of the weeks where the benchmark's x1.5 on the last three days is caught
    hold, hold_naive, week, week_naive = published_week(147)
    reference = reference_of(hold, "holdout", hold_naive)
    worse = week * np.r_[np.ones(96), np.full(72, 1.5)]

    clean = performance_drift_of("NP", served_frame(week), reference, "lear/1", week_naive)
    bad = performance_drift_of("NP", served_frame(worse), reference, "lear/1", week_naive)

    assert clean.status == "ok", clean.message
    assert bad.status == "critical" and bad.value >= CRITICAL_H, bad.message
    assert bad.details["first_alarm"] >= week.index[96].floor("D").isoformat()
    assert bad.details["daily_expected_mae"] == clean.details["daily_expected_mae"]  # the naive's, unchanged


def test_standardised_days__caps_one_day_s_surplus():
    hours = pd.date_range("2018-01-01", periods=24 * 4, freq="h", tz="UTC")
    errors = pd.Series(np.r_[np.ones(72), np.full(24, 100.0)], index=hours)
    reference = ErrorReference(1.0, 0.5, 24 * 14, 14, "made up")

    days = standardised_days(errors, reference, None)

    assert list(days["x"]) == [0.0, 0.0, 0.0, CAP]
