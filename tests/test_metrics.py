"""Forecast error metrics against hand-computed numbers, and the refusal of unscoreable predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    METRIC_NAMES,
    MetricsError,
    evaluate,
    guarded_mape,
    interval_coverage,
    mae,
    rmse,
    smape,
)

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
