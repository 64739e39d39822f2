"""The ensemble: simplex MAE weights, the keep-or-fall-back decision, conformal intervals, and the
save/load round trip of a forecaster built from real XGBoost and LightGBM members."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from core.markets import get_market, load_market
from core.quantiles import QUANTILE_COLUMNS, QUANTILE_LEVELS
from core.settings import Settings, SettingsError
from tests.conftest import PROJECT_ROOT
from training.config import TrainingConfig
from training.ensemble import (
    ENSEMBLE_FILE,
    EnsembleError,
    EnsembleForecaster,
    IntervalCalibration,
    calibrate_intervals,
    calibrate_on_served,
    choose_weights,
    decide,
    fit_weights,
    lear_network_weights,
    stack_weights,
    weigh_members,
)
from training.features import build_feature_frame, day_ahead_origins, feature_columns, strided_origins
from training.models import ModelError
from training.models.gradient_boosting import LightGBMModel, XGBoostModel


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def mae(values: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(values - actual)))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20181224)


# -- fit_weights -------------------------------------------------------------------------------


def test_fit_weights__recover_the_exact_mix_of_the_actual(rng):
    a, b, c = (40 + 10 * rng.standard_normal(500) for _ in range(3))
    actual = 0.7 * a + 0.3 * b
    weights = fit_weights({"a": a, "b": b, "c": c}, actual)
    assert list(weights) == ["a", "b", "c"]
    assert weights["a"] == pytest.approx(0.7, abs=1e-6)
    assert weights["b"] == pytest.approx(0.3, abs=1e-6)
    assert weights["c"] == pytest.approx(0.0, abs=1e-6)


def test_fit_weights__are_on_the_simplex_and_no_worse_than_equal_weights_or_any_member(rng):
    actual = 40 + np.cumsum(rng.standard_normal(600))
    members = {
        "low": actual - 3 + 2 * rng.standard_normal(600),
        "high": actual + 2 + 3 * rng.standard_normal(600),
        "noisy": actual + 6 * rng.standard_t(3, 600),
    }
    weights = fit_weights(members, actual)
    values = np.array(list(weights.values()))
    assert (values >= 0).all() and values.sum() == pytest.approx(1.0, abs=1e-12)
    assert 0 < weights["low"] < 1 and 0 < weights["high"] < 1  # the two biases cancel in a mix

    optimum = mae(sum(w * members[n] for n, w in weights.items()), actual)
    equal = mae(sum(members.values()) / 3, actual)
    assert optimum <= equal + 1e-9
    for name, member in members.items():
        assert optimum <= mae(member, actual) + 1e-9, name
    assert optimum < min(mae(m, actual) for m in members.values()) - 0.1


def test_fit_weights__refuse_nan_predictions_naming_the_member(rng):
    actual = rng.standard_normal(48)
    broken = actual.copy()
    broken[[3, 7]] = np.nan
    with pytest.raises(EnsembleError, match=r"^lightgbm: 2 validation prediction\(s\) are NaN or infinite$"):
        fit_weights({"xgboost": actual + 1, "lightgbm": broken}, actual)
    with pytest.raises(EnsembleError, match=r"^xgboost: 1 validation prediction\(s\) are NaN or infinite$"):
        decide({"xgboost": np.where(np.arange(48) == 0, np.inf, actual)}, actual)


def test_fit_weights__refuse_a_member_of_the_wrong_length_and_no_members(rng):
    actual = rng.standard_normal(48)
    with pytest.raises(EnsembleError, match=r"^cnn_lstm: 47 validation predictions for 48 hours$"):
        fit_weights({"xgboost": actual, "cnn_lstm": actual[:-1]}, actual)
    with pytest.raises(EnsembleError, match=r"^no member predictions to combine$"):
        fit_weights({}, actual)


# -- decide ------------------------------------------------------------------------------------


# -- stack_weights -----------------------------------------------------------------------------


def test_stack_weights__keep_the_fitted_mix_when_the_holdout_confirms_it(rng):
    a, b, c = (40 + 10 * rng.standard_normal(960) for _ in range(3))
    actual = 0.7 * a + 0.3 * b
    stack = stack_weights({"a": a, "b": b, "c": c}, actual, fit_rows=480)
    assert stack.shrinkage == 1.0 and (stack.fit_rows, stack.holdout_rows) == (480, 480)
    assert stack.weights == pytest.approx({"a": 0.7, "b": 0.3, "c": 0.0}, abs=1e-6)
    assert stack.holdout_mae["1.0"] == pytest.approx(0.0, abs=1e-6)
    assert stack.holdout_mae["0.0"] > 1.0


def test_stack_weights__fall_back_to_equal_weights_when_the_fitted_mix_fails_on_the_holdout(rng):
    # member "a" is exact on the first half and "b" on the second: the first half's fit (all on "a")
    # loses on the holdout to the equal mix, so the weights of the whole validation are not trusted
    actual = 40 + np.cumsum(rng.standard_normal(960))
    noise = 5 * rng.standard_normal((2, 960))
    a = np.where(np.arange(960) < 480, actual, actual + noise[0])
    b = np.where(np.arange(960) < 480, actual + noise[1], actual)
    stack = stack_weights({"a": a, "b": b}, actual, fit_rows=480)
    assert stack.shrinkage == 0.0
    assert stack.weights == {"a": 0.5, "b": 0.5}
    assert stack.holdout_mae["0.0"] < stack.holdout_mae["1.0"]
    values = np.array(list(stack.weights.values()))
    assert (values >= 0).all() and values.sum() == pytest.approx(1.0)


def test_stack_weights__refuse_a_split_that_leaves_no_holdout(rng):
    actual = rng.standard_normal(48)
    with pytest.raises(EnsembleError, match="48 fitting rows leave no holdout in 48"):
        stack_weights({"a": actual}, actual, fit_rows=48)


def test_decide__keeps_the_ensemble_when_it_beats_the_best_member(rng):
    actual = 40 + np.cumsum(rng.standard_normal(720))
    members = {
        "xgboost": actual + 2 * rng.standard_normal(720),
        "lightgbm": actual + 2 * rng.standard_normal(720),
        "cnn_lstm": actual + 4 * rng.standard_normal(720),
    }
    decision = decide(members, actual)
    assert decision.kind == "ensemble"
    assert sum(decision.weights.values()) == pytest.approx(1.0)
    best = min(members, key=lambda n: decision.validation_mae[n])
    assert decision.validation_mae["ensemble"] < decision.validation_mae[best]
    for name, values in members.items():
        assert decision.validation_mae[name] == pytest.approx(mae(values, actual))
    combined = sum(w * members[n] for n, w in decision.weights.items())
    assert decision.validation_mae["ensemble"] == pytest.approx(mae(combined, actual))
    assert decision.reason.startswith("weighted ensemble MAE ") and f"beats best member {best}" in decision.reason


def test_decide__falls_back_to_a_perfect_member_that_cannot_be_beaten(rng):
    actual = 40 + np.cumsum(rng.standard_normal(240))
    members = {
        "xgboost": actual + rng.standard_normal(240),
        "lightgbm": actual.copy(),
        "cnn_lstm": actual - 2 + rng.standard_normal(240),
    }
    decision = decide(members, actual)
    assert decision.kind == "best_member"
    assert decision.weights == {"xgboost": 0.0, "lightgbm": 1.0, "cnn_lstm": 0.0}
    assert decision.validation_mae["lightgbm"] == 0.0
    assert decision.reason.endswith("does not beat lightgbm (0.0000) on validation; lightgbm alone is the model")


# -- calibrate_intervals -----------------------------------------------------------------------


def test_calibrate_intervals__covers_the_nominal_share_of_fresh_noise_and_widens_with_the_noise(rng):
    per_horizon = 2000
    horizon = np.tile(np.arange(24), per_horizon)
    scale = 1.0 + horizon / 4.0  # noise grows with the horizon: 1 at h=0, 6.75 at h=23
    forecast = 30 + 5 * rng.standard_normal(horizon.size)
    actual = forecast + scale * rng.standard_normal(horizon.size)
    calibration = calibrate_intervals(actual, forecast, horizon, 0.9)
    assert calibration.coverage == 0.9 and len(calibration.lower) == len(calibration.upper) == 24

    fresh_forecast = 30 + 5 * rng.standard_normal(horizon.size)
    fresh_actual = fresh_forecast + scale * rng.standard_normal(horizon.size)
    lower, upper = calibration.bounds(fresh_forecast, horizon)
    inside = (fresh_actual >= lower) & (fresh_actual <= upper)
    assert abs(inside.mean() - 0.9) <= 0.02
    for h in (0, 23):
        assert abs(inside[horizon == h].mean() - 0.9) <= 0.03

    width = np.array(calibration.upper) - np.array(calibration.lower)
    assert width[23] > 5 * width[0]
    # A normal's central 90% spans 2 * 1.645 standard deviations.
    np.testing.assert_allclose(width, 2 * 1.6449 * (1.0 + np.arange(24) / 4.0), rtol=0.1)
    assert all(lo < 0 < hi for lo, hi in zip(calibration.lower, calibration.upper, strict=False))


def test_calibrate_intervals__takes_the_conformal_order_statistics(rng):
    # 100 residuals 1..100 per horizon: ranks floor(101 * 0.05) = 5 and ceil(101 * 0.95) = 96.
    residuals = np.concatenate([rng.permutation(np.arange(1.0, 101.0)) + h for h in range(24)])
    horizon = np.repeat(np.arange(24), 100)
    calibration = calibrate_intervals(residuals, np.zeros_like(residuals), horizon, 0.9)
    assert calibration.lower == [5.0 + h for h in range(24)]
    assert calibration.upper == [96.0 + h for h in range(24)]
    # Fewer than 19 residuals: the interval is clamped to the sample's range.
    small = calibrate_intervals(np.tile(np.arange(10.0), 24), np.zeros(240), np.repeat(np.arange(24), 10), 0.9)
    assert small.lower == [0.0] * 24 and small.upper == [9.0] * 24


def test_calibrate_quantiles__at_99_residuals_take_the_conformal_order_statistics_and_cover_exactly(rng):
    # Lei et al. 2018 / Angelopoulos & Bates 2021: with n exchangeable residuals, the level-q
    # quantile is the k-th smallest with k = ceil((n + 1) q) (floor below the median); at n = 99,
    # (n + 1) q is whole for every level, so the 5th, 10th, 25th, 50th, 75th, 90th and 95th
    # smallest residuals, and a fresh residual falls below the k-th with probability k / 100.
    n, calibrations, fresh = 99, 120, 50
    below = np.zeros(len(QUANTILE_LEVELS))
    inside = {0.5: 0.0, 0.9: 0.0}
    for _ in range(calibrations):  # 24 horizons each: 2880 independent calibrations
        residuals = rng.standard_normal((n, 24)) * (1 + np.arange(24) / 8)
        horizon = np.tile(np.arange(24), n)
        calibration = calibrate_intervals(residuals.ravel(), np.zeros(n * 24), horizon, 0.9)
        ordered = np.sort(residuals, axis=0)
        assert calibration.levels == list(QUANTILE_LEVELS)
        np.testing.assert_array_equal(np.asarray(calibration.quantiles), ordered[[4, 9, 24, 49, 74, 89, 94]])
        assert calibration.lower == calibration.quantiles[0] and calibration.upper == calibration.quantiles[-1]
        new = rng.standard_normal((fresh, 24)) * (1 + np.arange(24) / 8)
        q = calibration.quantile_frame(np.zeros(fresh * 24), np.tile(np.arange(24), fresh), pd.RangeIndex(fresh * 24))
        y = new.ravel()
        below += (y[:, None] <= q.to_numpy()).mean(axis=0)
        inside[0.5] += ((y >= q["q25"]) & (y <= q["q75"])).mean()
        inside[0.9] += ((y >= q["q05"]) & (y <= q["q95"])).mean()
    np.testing.assert_allclose(below / calibrations, QUANTILE_LEVELS, atol=0.006)
    assert inside[0.5] / calibrations == pytest.approx(0.50, abs=0.006)
    assert inside[0.9] / calibrations == pytest.approx(0.90, abs=0.004)


def test_quantiles__are_monotone_on_every_row_even_from_a_tampered_calibration(rng):
    horizon = np.tile(np.arange(24), 30)
    yhat = 40 + 10 * rng.standard_normal(horizon.size)
    calibration = calibrate_intervals(yhat + 5 * rng.standard_normal(horizon.size), yhat, horizon, 0.9)
    offsets = np.asarray(calibration.quantiles)
    assert (np.diff(offsets, axis=0) >= 0).all()  # by construction: rising ranks of sorted residuals
    # a hand-edited ensemble.json whose residual quantiles cross: each row is rearranged (sorted)
    crossing = offsets[::-1].copy()  # q05 now holds the largest offset, q95 the smallest
    crossing[3, 7] = 99.0  # q50 of horizon 7 far above everything
    tampered = IntervalCalibration(0.9, calibration.lower, calibration.upper, calibration.levels, crossing.tolist())
    q = tampered.quantile_frame(yhat, horizon, pd.RangeIndex(horizon.size))
    assert list(q.columns) == list(QUANTILE_COLUMNS)
    assert (np.diff(q.to_numpy(), axis=1) >= 0).all()
    np.testing.assert_allclose(q.to_numpy(), np.sort(yhat[:, None] + crossing.T[horizon], axis=1))
    assert (q["q95"].to_numpy()[horizon == 7] == yhat[horizon == 7] + 99.0).all()
    with pytest.raises(EnsembleError, match=r"quantile offsets of shape \(7, 23\)"):
        IntervalCalibration(0.9, calibration.lower, calibration.upper, calibration.levels, crossing[:, :23].tolist())


def _served(rng: np.random.Generator, days: int, spreads: dict[str, float]) -> pd.DataFrame:
    """``days`` day-ahead forecasts (24 hours from each midnight) of members off the price by noise of ``spreads``."""
    origins = pd.date_range("2018-01-01", periods=days, freq="D", tz="UTC")
    frame = pd.DataFrame(
        {
            "origin": np.repeat(origins, 24),
            "target_ts": np.repeat(origins, 24) + pd.to_timedelta(np.tile(np.arange(24), days), unit="h"),
            "horizon": np.tile(np.arange(24), days),
            "price": 40 + 10 * np.sin(np.arange(days * 24) / 4) + rng.normal(0, 2, days * 24),
        }
    )
    for name, spread in spreads.items():
        frame[f"yhat_{name}"] = frame["price"] + rng.normal(0, spread, len(frame))
    return frame


def test_calibrate_on_served__weighs_the_members_on_the_served_rows_and_calibrates_on_their_residuals(rng):
    served = _served(rng, 35, {"sharp": 1.0, "vague": 4.0})
    calibration = calibrate_on_served(served, ["sharp", "vague"], 0.9)
    assert calibration is not None and (calibration.days, calibration.rows) == (35, 35 * 24)
    # exactly choose_weights' decision and calibrate_intervals' offsets on those rows and nothing else
    predictions = {m: served[f"yhat_{m}"].to_numpy() for m in ("sharp", "vague")}
    expected = choose_weights(predictions, served["price"].to_numpy(), served["origin"].to_numpy())
    assert calibration.decision.weights == expected.weights
    assert calibration.decision.weights["sharp"] > 0.8
    assert calibration.decision.reason.startswith("on 35 days of served forecasts: ")
    combined = sum(w * predictions[m] for m, w in expected.weights.items())
    intervals = calibrate_intervals(served["price"].to_numpy(), combined, served["horizon"].to_numpy(), 0.9)
    assert calibration.intervals == intervals
    # hours whose price is not known yet (the day being forecast) are left out, as are rows a member lacks
    pending = _served(rng, 1, {"sharp": 1.0, "vague": 4.0}).assign(
        origin=lambda f: f["origin"] + pd.Timedelta(days=35), price=np.nan
    )
    lacking = served.iloc[:24].assign(yhat_vague=np.nan)
    again = calibrate_on_served(pd.concat([lacking, served.iloc[24:], pending]), ["sharp", "vague"], 0.9)
    assert again is not None and again.rows == 34 * 24 and again.days == 34


def test_calibrate_on_served__leaves_the_validation_in_charge_with_too_few_days_or_a_missing_horizon(rng):
    assert calibrate_on_served(_served(rng, 27, {"a": 1.0, "b": 2.0}), ["a", "b"], 0.9) is None
    assert calibrate_on_served(_served(rng, 28, {"a": 1.0, "b": 2.0}), ["a", "b"], 0.9) is not None
    no_last_hour = _served(rng, 40, {"a": 1.0, "b": 2.0}).query("horizon != 23")
    assert calibrate_on_served(no_last_hour, ["a", "b"], 0.9) is None
    assert calibrate_on_served(_served(rng, 0, {"a": 1.0, "b": 2.0}), ["a", "b"], 0.9) is None
    with pytest.raises(EnsembleError, match="lack the column\\(s\\) yhat_lear"):
        calibrate_on_served(_served(rng, 30, {"a": 1.0}), ["a", "lear"], 0.9)


def test_calibrate_intervals__refuses_a_horizon_without_residuals():
    horizon = np.repeat(np.arange(23), 5)  # no h = 23
    with pytest.raises(EnsembleError, match=r"^no validation residuals at horizon 23 h"):
        calibrate_intervals(np.zeros(horizon.size), np.zeros(horizon.size), horizon, 0.9)


# -- the deployable forecaster with real members ------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """Fit and predict on one OpenMP thread: on a busy 2-core machine, XGBoost's and LightGBM's spinning
    OpenMP pools (two runtimes in one process) turn a 0.2 s fit into tens of seconds."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    history = load_market("NP", PROJECT_ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    origins = {
        "train": strided_origins(utc("2018-03-01"), utc("2018-05-30"), 7),
        "validation": day_ahead_origins("NP", utc("2018-05-31"), utc("2018-06-14")),
        "test": day_ahead_origins("NP", utc("2018-06-14"), utc("2018-06-21")),
    }
    frames = {name: build_feature_frame(prices, exogenous, "NP", o) for name, o in origins.items()}
    assert len(frames["validation"]) == 14 * 24 and len(frames["test"]) == 7 * 24
    assert frames["train"]["origin"].max() + pd.Timedelta(hours=23) < frames["validation"]["origin"].min()
    assert all(f["price"].notna().all() for f in frames.values())
    return frames


@pytest.fixture(scope="module")
def forecaster(frames) -> EnsembleForecaster:
    columns = feature_columns("NP")
    members = {
        "xgboost": XGBoostModel(XGBoostModel.default_params(), columns, seed=42, max_steps=50),
        "lightgbm": LightGBMModel(LightGBMModel.default_params(), columns, seed=42, max_steps=50),
    }
    for model in members.values():
        model.fit(frames["train"], frames["validation"])
    validation = frames["validation"]
    actual = validation["price"].to_numpy()
    predictions = {name: model.predict(validation) for name, model in members.items()}
    decision = decide(predictions, actual)
    combined = sum(w * predictions[n] for n, w in decision.weights.items())
    intervals = calibrate_intervals(actual, combined, validation["horizon"].to_numpy(), 0.9)
    return EnsembleForecaster("NP", members, decision, intervals, columns)


def test_forecaster__predicts_the_weighted_members_with_their_calibrated_interval(forecaster, frames):
    test = frames["test"]
    out = forecaster.predict(test)
    assert list(out.columns) == ["yhat", "lower", "upper", *QUANTILE_COLUMNS, "yhat_xgboost", "yhat_lightgbm"]
    assert out.index.equals(test.index) and np.isfinite(out.to_numpy()).all()
    weights = forecaster.weights
    assert sum(weights.values()) == pytest.approx(1.0)
    np.testing.assert_allclose(
        out["yhat"], weights["xgboost"] * out["yhat_xgboost"] + weights["lightgbm"] * out["yhat_lightgbm"]
    )
    h = test["horizon"].to_numpy().astype(int)
    np.testing.assert_allclose(out["lower"] - out["yhat"], np.asarray(forecaster.intervals.lower)[h], atol=1e-9)
    np.testing.assert_allclose(out["upper"] - out["yhat"], np.asarray(forecaster.intervals.upper)[h], atol=1e-9)
    straddles = (np.asarray(forecaster.intervals.lower) <= 0) & (np.asarray(forecaster.intervals.upper) >= 0)
    assert straddles.sum() >= 12  # 14 validation residuals per horizon: min and max usually straddle 0
    rows = straddles[h]
    assert ((out["lower"] <= out["yhat"]) & (out["yhat"] <= out["upper"]))[rows].all()
    quantiles = out[list(QUANTILE_COLUMNS)].to_numpy()
    assert (np.diff(quantiles, axis=1) >= 0).all()  # monotone on every row
    np.testing.assert_array_equal(out["q05"], out["lower"])  # coverage 0.9: the interval is q05..q95
    np.testing.assert_array_equal(out["q95"], out["upper"])
    np.testing.assert_allclose(quantiles - out[["yhat"]].to_numpy(), np.asarray(forecaster.intervals.quantiles).T[h])
    # Sanity: 50 rounds of boosting already forecast better than a 20 EUR/MWh error.
    assert mae(out["yhat"].to_numpy(), test["price"].to_numpy()) < 20


def test_forecaster__save_and_load_give_identical_forecasts(forecaster, frames, tmp_path):
    forecaster.save(tmp_path / "model")
    assert (tmp_path / "model" / ENSEMBLE_FILE).is_file()
    assert (tmp_path / "model" / "members" / "xgboost" / "model.xgb.json").is_file()
    assert (tmp_path / "model" / "members" / "lightgbm" / "model.lgb.txt").is_file()

    loaded = EnsembleForecaster.load(tmp_path / "model")
    assert loaded.region == "NP" and loaded.feature_columns == feature_columns("NP")
    # the market the features were built with travels with the model (core.markets.adopt_market)
    assert forecaster.market is None and loaded.market == get_market("NP")
    assert json.loads((tmp_path / "model" / ENSEMBLE_FILE).read_text())["market"]["zone"] == "Europe/Oslo"
    assert loaded.decision == forecaster.decision and loaded.intervals == forecaster.intervals
    assert list(loaded.members) == ["xgboost", "lightgbm"]
    pd.testing.assert_frame_equal(loaded.predict(frames["test"]), forecaster.predict(frames["test"]), check_exact=True)
    pd.testing.assert_frame_equal(
        loaded.predict(frames["validation"]), forecaster.predict(frames["validation"]), check_exact=True
    )


def test_forecaster__load_of_a_folder_without_the_ensemble_file_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"^no ensemble.json in .*: the model's artifacts are missing or incomplete$"):
        EnsembleForecaster.load(tmp_path)


def test_forecaster__an_ensemble_json_from_before_the_quantiles_still_forecasts_without_them(
    forecaster, frames, tmp_path, caplog
):
    forecaster.save(tmp_path / "model")
    spec = json.loads((tmp_path / "model" / ENSEMBLE_FILE).read_text())
    for key in ("levels", "quantiles"):
        del spec["intervals"][key]
    (tmp_path / "model" / ENSEMBLE_FILE).write_text(json.dumps(spec))
    loaded = EnsembleForecaster.load(tmp_path / "model")
    assert "written before the quantile calibration" in caplog.text and "retrained" in caplog.text
    old, new = loaded.predict(frames["test"]), forecaster.predict(frames["test"])
    assert list(old.columns) == ["yhat", "lower", "upper", "yhat_xgboost", "yhat_lightgbm"]
    pd.testing.assert_frame_equal(old, new.drop(columns=list(QUANTILE_COLUMNS)), check_exact=True)
    # a damaged calibration is refused naming the file
    spec["intervals"].update(levels=list(QUANTILE_LEVELS), quantiles=[[0.0] * 24] * 6)
    (tmp_path / "model" / ENSEMBLE_FILE).write_text(json.dumps(spec))
    with pytest.raises(ModelError, match=r"ensemble.json: interval calibration: quantile offsets of shape \(6, 24\)"):
        EnsembleForecaster.load(tmp_path / "model")


def _members_where_the_validation_flatters_the_trees(rows: int = 28 * 24):
    """A validation on which the trees fit the prices almost exactly (as if early-stopped on them) and LEAR and the
    network each miss by a different error: the simplex weights go to the trees, the lear_network rule does not."""
    rng = np.random.default_rng(7)
    actual = 40 + 10 * np.sin(np.arange(rows) / 24 * 2 * np.pi) + rng.normal(0, 2, rows)
    predictions = {
        "xgboost": actual + rng.normal(0, 0.2, rows),
        "lightgbm": actual + rng.normal(0, 0.3, rows),
        "cnn_lstm": actual + rng.normal(1, 3, rows),
        "lear": actual + rng.normal(-1, 3, rows),
    }
    origins = np.repeat(pd.date_range("2018-03-01", periods=rows // 24, freq="D", tz="UTC"), 24)
    return predictions, actual, origins


def test_lear_network_weights__are_half_lear_half_the_network_and_zero_for_the_trees():
    predictions, actual, origins = _members_where_the_validation_flatters_the_trees()
    decision = lear_network_weights(predictions, actual)
    assert decision.weights == {"xgboost": 0.0, "lightgbm": 0.0, "cnn_lstm": 0.5, "lear": 0.5}
    assert (decision.kind, decision.rule) == ("ensemble", "lear_network")
    pair = (predictions["lear"] + predictions["cnn_lstm"]) / 2
    assert decision.validation_mae["ensemble"] == pytest.approx(mae(pair, actual))
    # no guard: the trees beat the pair on this validation, the pair is kept all the same
    assert decision.validation_mae["xgboost"] < decision.validation_mae["ensemble"]
    # the validation's own rule gives the trees nearly everything
    validated = choose_weights(predictions, actual, origins)
    assert validated.weights["xgboost"] + validated.weights["lightgbm"] > 0.9
    assert weigh_members(predictions, actual, origins, "validation") == validated
    assert weigh_members(predictions, actual, origins, "lear_network") == decision


def test_weigh_members__without_lear_or_the_network_falls_back_to_the_validation_and_says_why():
    predictions, actual, origins = _members_where_the_validation_flatters_the_trees()
    del predictions["cnn_lstm"]  # e.g. a retraining whose network was skipped
    decision = weigh_members(predictions, actual, origins, "lear_network")
    assert decision.weights == choose_weights(predictions, actual, origins).weights
    assert decision.reason.startswith("lear_network weights need cnn_lstm: ")
    with pytest.raises(EnsembleError, match="need cnn_lstm among the members"):
        lear_network_weights(predictions, actual)
    with pytest.raises(EnsembleError, match="unknown ensemble weights 'equal'; choose one of lear_network, validation"):
        weigh_members(predictions, actual, origins, "equal")


def test_ensemble_weights__are_read_from_the_environment_and_checked():
    assert TrainingConfig.from_settings(Settings.from_env({})).ensemble_weights == "lear_network"
    chosen = TrainingConfig.from_settings(Settings.from_env({"EOPT_ENSEMBLE_WEIGHTS": "Validation"}))
    assert chosen.ensemble_weights == "validation"
    with pytest.raises(
        SettingsError, match="unknown ensemble weights 'median'; choose one of lear_network, validation"
    ):
        TrainingConfig.from_settings(Settings.from_env({"EOPT_ENSEMBLE_WEIGHTS": "median"}))
    for chosen_too in ({"EOPT_ENSEMBLE_WEIGHTS": "lear_network"}, {}):  # the default is the fixed pair
        with pytest.raises(SettingsError, match="set EOPT_SERVED_WEIGHT_DAYS=0 or EOPT_ENSEMBLE_WEIGHTS=validation"):
            TrainingConfig.from_settings(Settings.from_env({**chosen_too, "EOPT_SERVED_WEIGHT_DAYS": "91"}))
    served = {"EOPT_ENSEMBLE_WEIGHTS": "validation", "EOPT_SERVED_WEIGHT_DAYS": "91"}
    assert TrainingConfig.from_settings(Settings.from_env(served)).served_weight_days == 91
