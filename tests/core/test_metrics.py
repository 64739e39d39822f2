"""Forecast error metrics against hand-computed numbers, and the refusal of unscoreable predictions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.metrics import (
    METRIC_NAMES,
    MetricsError,
    diebold_mariano,
    epf_rmae,
    evaluate,
    evaluate_epf,
    guarded_mape,
    interval_coverage,
    kupiec_test,
    mae,
    pinball_loss,
    rmse,
    smape,
)

PUBLISHED = Path(__file__).resolve().parents[2] / "data" / "published"

ACTUAL = [10.0, 20.0, 30.0, 40.0]
FORECAST = [12.0, 18.0, 33.0, 40.0]  # errors 2, 2, 3, 0
NAIVE = [14.0, 16.0, 30.0, 44.0]  # errors 4, 4, 0, 4


def test_mae__is_the_mean_absolute_error():
    assert mae(ACTUAL, FORECAST) == pytest.approx(7 / 4)
    assert mae(ACTUAL, ACTUAL) == 0.0


def test_rmse__is_the_root_mean_squared_error():
    assert rmse(ACTUAL, FORECAST) == pytest.approx(math.sqrt((4 + 4 + 9 + 0) / 4))
    assert rmse([0.0, 0.0], [3.0, -4.0]) == pytest.approx(math.sqrt(12.5))


def test_smape__counts_an_hour_where_actual_and_forecast_are_both_zero_as_no_error():
    # |0-0|/0 -> 0; |100-80|/90 = 2/9; |50-100|/75 = 2/3
    assert smape([0.0, 100.0, 50.0], [0.0, 80.0, 100.0]) == pytest.approx((0 + 2 / 9 + 2 / 3) / 3 * 100)
    assert smape([0.0], [0.0]) == 0.0
    # A zero actual against a nonzero forecast is the maximum error, 200%.
    assert smape([0.0, -5.0], [3.0, 5.0]) == pytest.approx(200.0)


def test_guarded_mape__leaves_out_hours_with_an_actual_below_one_and_reports_their_share():
    actual = [0.5, -0.2, 10.0, -20.0, 1.0]
    forecast = [1.0, 0.0, 12.0, -15.0, 1.5]
    value, excluded = guarded_mape(actual, forecast)
    # kept: 10 -> 2/10, -20 -> 5/20, 1.0 (at the floor) -> 0.5/1
    assert value == pytest.approx((0.2 + 0.25 + 0.5) / 3 * 100)
    assert excluded == pytest.approx(2 / 5)


def test_guarded_mape__is_nan_when_no_hour_qualifies():
    value, excluded = guarded_mape([0.1, -0.9, 0.0], [1.0, 2.0, 3.0])
    assert math.isnan(value) and excluded == 1.0


def test_evaluate__reports_every_metric_and_rmae_against_the_naive():
    scores = evaluate(ACTUAL, FORECAST, NAIVE)
    assert tuple(scores) == METRIC_NAMES
    assert scores["mae"] == pytest.approx(1.75)
    assert scores["rmae"] == pytest.approx(1.75 / 3.0)  # naive MAE (4 + 4 + 0 + 4) / 4 = 3
    assert scores["rmse"] == pytest.approx(math.sqrt(17 / 4))
    assert scores["smape"] == pytest.approx((2 / 11 + 2 / 19 + 3 / 31.5 + 0) / 4 * 100)
    assert scores["mape"] == pytest.approx((0.2 + 0.1 + 0.1 + 0) / 4 * 100)
    assert scores["mape_excluded_share"] == 0.0


def test_evaluate__rmae_is_nan_when_the_naive_is_perfect():
    assert math.isnan(evaluate(ACTUAL, FORECAST, ACTUAL)["rmae"])


def test_evaluate__rmae_above_one_when_worse_than_the_naive():
    assert evaluate(ACTUAL, NAIVE, FORECAST)["rmae"] == pytest.approx(3.0 / 1.75)


@pytest.mark.parametrize("metric", [mae, rmse, smape, guarded_mape])
def test_nan_or_infinite_predictions__are_refused_with_their_count(metric):
    with pytest.raises(MetricsError, match=r"^predictions: 2 of 4 values are NaN or infinite$"):
        metric(ACTUAL, [1.0, np.nan, np.inf, 4.0])


def test_nan_actuals__are_refused():
    with pytest.raises(MetricsError, match=r"the actual prices hold NaN or infinite values"):
        mae([1.0, np.nan], [1.0, 2.0])


def test_a_nan_naive_forecast__is_refused_as_such():
    with pytest.raises(MetricsError, match=r"^seasonal-naive forecast: 1 of 4 values are NaN or infinite$"):
        evaluate(ACTUAL, FORECAST, [1.0, 2.0, np.nan, 4.0])


def test_shape_mismatch_and_empty_input__are_refused():
    with pytest.raises(MetricsError, match=r"^predictions: 3 values for 4 actual hours$"):
        mae(ACTUAL, [1.0, 2.0, 3.0])
    with pytest.raises(MetricsError, match=r"^predictions: 3 values for 4 actual hours$"):
        evaluate(ACTUAL, [1.0, 2.0, 3.0], NAIVE)
    with pytest.raises(MetricsError, match=r"^predictions: no hours to score$"):
        rmse([], [])


def test_metrics__read_two_dimensional_arrays_as_their_flattened_hours():
    actual = np.array(ACTUAL).reshape(2, 2)
    assert mae(actual, np.array(FORECAST).reshape(2, 2)) == pytest.approx(1.75)


def test_interval_coverage__is_the_share_of_actuals_inside_the_closed_interval():
    actual = [1.0, 2.0, 3.0, 4.0]
    lower = [0.0, 2.5, 3.0, 5.0]
    upper = [2.0, 3.0, 3.0, 6.0]
    # 1 in [0, 2]; 2 below 2.5; 3 on both bounds of [3, 3]; 4 below 5
    assert interval_coverage(actual, lower, upper) == 0.5
    assert interval_coverage(actual, actual, actual) == 1.0


def test_epf_rmae__divides_by_the_naive_built_from_the_scored_prices_without_its_first_season():
    actual = [1.0, 2.0, 4.0, 3.0, 5.0]
    predicted = [2.0, 2.0, 4.0, 4.0, 3.0]  # errors 1, 0, 0, 1, 2: MAE 4/5 over all hours
    # naive y(t-2) exists from the third hour: |4-1|, |3-2|, |5-4| -> MAE 5/3
    assert epf_rmae(actual, predicted, season_hours=2) == pytest.approx((4 / 5) / (5 / 3))
    assert epf_rmae(actual, actual, season_hours=2) == 0.0


def test_epf_rmae__reproduces_the_papers_nord_pool_ensembles():
    forecasts = pd.read_csv(PUBLISHED / "Forecasts_NP_DNN_LEAR_ensembles.csv", index_col=0)
    actual = forecasts["Real price"]
    assert round(epf_rmae(actual, forecasts["LEAR Ensemble"]), 3) == 0.420
    assert round(epf_rmae(actual, forecasts["DNN Ensemble"]), 3) == 0.403


def test_epf_rmae__needs_more_hours_than_one_season():
    with pytest.raises(MetricsError, match="168 hours leave no weekly naive forecast"):
        epf_rmae(np.arange(168.0), np.arange(168.0))


def test_evaluate_epf__reports_every_metric_with_the_papers_rmae():
    actual = np.arange(1.0, 201.0)
    predicted = actual + 2.0
    scores = evaluate_epf(actual, predicted)
    assert tuple(scores) == METRIC_NAMES
    assert scores["mae"] == pytest.approx(2.0) and scores["rmse"] == pytest.approx(2.0)
    assert scores["rmae"] == pytest.approx(2.0 / 168.0)  # y(t) - y(t-168) = 168 on every hour
    assert scores["mape_excluded_share"] == 0.0


def test_diebold_mariano__is_the_normal_statistic_of_the_daily_l1_loss_differentials():
    # two-hour days, actual 0: A's daily mean absolute errors 2, 3, 4; B's 1, 1, 1
    actual = np.zeros(6)
    a = np.array([2.0, -2.0, 3.0, 3.0, -4.0, 4.0])
    b = np.array([1.0, -1.0, 1.0, 1.0, 1.0, -1.0])
    test = diebold_mariano(actual, a, b, hours_per_day=2)
    delta = np.array([1.0, 2.0, 3.0])  # A's loss - B's loss, per day
    expected = delta.mean() / math.sqrt(delta.var() / 3)
    assert test.days == 3 and test.mean_daily_loss_difference == pytest.approx(2.0)
    assert test.statistic == pytest.approx(expected)
    assert test.p_value == pytest.approx(0.5 * math.erfc(expected / math.sqrt(2)))
    assert test.p_value < 0.01  # B is significantly more accurate than A


def test_diebold_mariano__swapping_the_forecasts_mirrors_the_statistic_and_the_p_value():
    rng = np.random.default_rng(7)
    actual = rng.normal(40, 10, 24 * 30)
    a = actual + rng.normal(0, 3, actual.size)
    b = actual + rng.normal(0, 2, actual.size)
    forward, backward = diebold_mariano(actual, a, b), diebold_mariano(actual, b, a)
    assert forward.statistic == pytest.approx(-backward.statistic)
    assert forward.p_value + backward.p_value == pytest.approx(1.0)
    assert forward.p_value < 0.05 < backward.p_value


def test_diebold_mariano__identical_forecasts_give_no_evidence_either_way():
    actual = np.arange(48.0)
    test = diebold_mariano(actual, actual + 1, actual + 1)
    assert test.statistic == 0.0 and test.p_value == pytest.approx(0.5)


def test_diebold_mariano__refuses_hours_that_are_not_whole_days_or_a_single_day():
    with pytest.raises(MetricsError, match="30 hours are not whole days of 24 hours"):
        diebold_mariano(np.zeros(30), np.ones(30), np.ones(30))
    with pytest.raises(MetricsError, match="1 day\\(s\\); the test needs at least 2"):
        diebold_mariano(np.zeros(24), np.ones(24), np.ones(24))


def test_diebold_mariano__equals_epftoolbox_documented_multivariate_p_value_for_np_lear_vs_dnn():
    # epftoolbox's documentation of DM (epftoolbox.evaluation.DM, version="multivariate", norm=1) runs
    # p_pred_1 = LEAR Ensemble, p_pred_2 = DNN Ensemble of Forecasts_NP_DNN_LEAR_ensembles.csv against
    # the NP test prices and prints 0.003005725748326471: the DNN ensemble is significantly more accurate.
    published = pd.read_csv(PUBLISHED / "Forecasts_NP_DNN_LEAR_ensembles.csv", index_col=0)
    test = diebold_mariano(published["Real price"], published["LEAR Ensemble"], published["DNN Ensemble"])
    assert test.days == 728
    assert test.p_value == pytest.approx(0.003005725748326471, rel=1e-9)
    assert diebold_mariano(
        published["Real price"], published["DNN Ensemble"], published["LEAR Ensemble"]
    ).p_value == pytest.approx(1 - 0.003005725748326471, rel=1e-9)


def test_pinball_loss__is_the_mean_over_hours_and_levels_of_the_quantile_loss():
    actual = [10.0, 20.0]
    quantiles = [[8.0, 12.0], [20.0, 25.0]]  # levels 0.1 and 0.9
    # hour 1: level 0.1 under by 2 -> 0.1 * 2; level 0.9 over by 2 -> 0.1 * 2; hour 2: 0, over by 5 -> 0.1 * 5
    assert pinball_loss(actual, quantiles, [0.1, 0.9]) == pytest.approx((0.2 + 0.2 + 0.0 + 0.5) / 4)
    assert pinball_loss(actual, [[10.0], [20.0]], [0.5]) == 0.0
    with pytest.raises(MetricsError, match="strictly between 0 and 1"):
        pinball_loss(actual, quantiles, [0.0, 0.9])
    with pytest.raises(MetricsError, match=r"shape \(2, 2\) for 2 hours and 3 levels"):
        pinball_loss(actual, quantiles, [0.1, 0.5, 0.9])


def test_kupiec_test__is_the_likelihood_ratio_of_the_observed_against_the_nominal_miss_rate():
    actual = np.arange(100.0)
    lower, upper = np.full(100, 10.0), np.full(100, 89.0)  # 10 below, 10 above: 20 misses of 100
    test = kupiec_test(actual, lower, upper, 0.9)
    expected = -2 * (80 * math.log(0.9) + 20 * math.log(0.1) - 80 * math.log(0.8) - 20 * math.log(0.2))
    assert (test.misses, test.hours, test.coverage) == (20, 100, 0.8)
    assert test.statistic == pytest.approx(expected)
    assert test.p_value == pytest.approx(math.erfc(math.sqrt(expected / 2)))
    assert test.p_value < 0.01
    exact = kupiec_test(actual, np.full(100, 5.0), np.full(100, 94.0), 0.9)  # 10 misses: the nominal rate
    assert exact.statistic == pytest.approx(0.0, abs=1e-9) and exact.p_value == pytest.approx(1.0)
    perfect = kupiec_test(actual, actual - 1, actual + 1, 0.9)
    assert perfect.misses == 0 and perfect.p_value < 1e-4  # never missing is also a wrong coverage
