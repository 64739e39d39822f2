"""The LEAR member inside the ensemble: its JSON save/load round trip, the ensemble that carries it,
and the rule that chooses the ensemble's weights (``training.ensemble.choose_weights``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.markets import load_market
from tests.conftest import PROJECT_ROOT
from training.ensemble import EnsembleDecision, EnsembleForecaster, IntervalCalibration, choose_weights
from training.features import build_feature_frame, day_ahead_origins, feature_columns
from training.lear import LEAR_FILE, LearMember, LearModel, LearPenalties, fit_lear
from training.models import model_class

D = pd.Timedelta(days=1)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def np_history() -> tuple[pd.Series, pd.DataFrame]:
    history = load_market("NP", PROJECT_ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    return prices, history.exogenous.pivot_table(index="ts", columns="variable", values="value")


@pytest.fixture(scope="module")
def fitted(np_history) -> tuple[LearMember, pd.DataFrame]:
    """LEAR with its shortest window fitted on the 70 days before 2018-05-01 (local), and the week after."""
    prices, exogenous = np_history
    end = utc("2018-04-30 22:00")
    member = LearMember.of(LearModel("NP", max_windows=1).fit(prices[prices.index >= end - 70 * D], exogenous, end))
    week = build_feature_frame(prices, exogenous, "NP", day_ahead_origins("NP", end, end + 7 * D))
    return member, week


def test_lear_member__save_and_load_of_its_json_give_identical_forecasts(fitted, tmp_path):
    member, week = fitted
    member.save(tmp_path / "lear")
    spec = json.loads((tmp_path / "lear" / LEAR_FILE).read_text())  # plain JSON: no pickle to run
    assert [f["window_days"] for f in spec["fits"]] == [56] and len(spec["fits"][0]["alphas"]) == 24
    assert np.array(spec["fits"][0]["coefficients"]).shape == (24, 247)

    loaded = model_class("lear").load(tmp_path / "lear")
    forecast = member.predict(week)
    np.testing.assert_array_equal(loaded.predict(week), forecast)
    assert forecast.shape == (7 * 24,) and np.isfinite(forecast).all()
    # a real forecast: closer to the week's prices than the prices a week before
    actual = week["price"].to_numpy()
    assert np.mean(np.abs(forecast - actual)) < np.mean(np.abs(week["lag_168h"].to_numpy() - actual))


def test_lear_member__rides_in_the_saved_ensemble_and_comes_back_with_the_same_forecasts(fitted, tmp_path):
    member, week = fitted
    decision = EnsembleDecision({"lear": 1.0}, "best_member", {"lear": 1.0}, "test: LEAR alone")
    intervals = IntervalCalibration(0.9, [-5.0] * 24, [5.0] * 24)
    ensemble = EnsembleForecaster("NP", {"lear": member}, decision, intervals, feature_columns("NP"))
    ensemble.save(tmp_path / "model")
    assert (tmp_path / "model" / "members" / "lear" / LEAR_FILE).is_file()
    loaded = EnsembleForecaster.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.predict(week), ensemble.predict(week), check_exact=True)
    np.testing.assert_array_equal(loaded.predict(week)["yhat"].to_numpy(), member.predict(week))


def test_fit_lear__deploys_a_fit_on_every_day_before_the_end_and_judges_it_by_a_fit_before_the_validation(
    np_history,
):
    prices, exogenous = np_history
    end = utc("2018-04-30 22:00")
    validation = build_feature_frame(prices, exogenous, "NP", day_ahead_origins("NP", end - 14 * D, end))
    recent = prices[prices.index >= end - 84 * D]
    lear = fit_lear(recent, exogenous, "NP", validation, end, max_windows=1)
    assert lear.member.model.last_training_target == end - pd.Timedelta(hours=1)
    assert pd.Timestamp(lear.validation_fit["last_training_target"]) < validation["origin"].min()
    assert lear.validation_fit["windows"] == [56] and len(lear.validation_fit["alphas"]["56"]) == 24
    before = LearModel("NP", max_windows=1).fit(recent, exogenous, validation["origin"].min())
    np.testing.assert_allclose(lear.validation_forecast, before.predict_frame(validation))


def test_fit_lear__reuses_an_earlier_fits_long_window_penalties_and_runs_the_criterion_where_none_fits(np_history):
    prices, exogenous = np_history

    def retraining(end: pd.Timestamp, reuse: LearPenalties | None = None):
        recent = prices[(prices.index >= end - 120 * D) & (prices.index < end)]
        validation = build_feature_frame(prices, exogenous, "NP", day_ahead_origins("NP", end - 14 * D, end))
        return recent, fit_lear(recent, exogenous, "NP", validation, end, reuse=reuse)

    _, first = retraining(utc("2018-04-30 22:00"))
    assert not first.penalties_reused
    # the long windows (longer than 84 days) of both fits carry 24 penalties each
    assert first.penalties.validation and first.penalties.deployed
    assert all(
        w > 84 and a.shape == (24,)
        for p in (first.penalties.validation, first.penalties.deployed)
        for w, a in p.items()
    )

    end = utc("2018-05-07 22:00")  # a week later: windows of the same lengths
    recent, reused = retraining(end, first.penalties)
    assert reused.penalties_reused
    for w, alphas in first.penalties.deployed.items():
        np.testing.assert_array_equal(reused.penalties.deployed[w], alphas)
    # the deployed member is a LEAR fitted with those penalties on its long windows, the criterion on the short ones
    direct = LearModel("NP").fit(recent, exogenous, end, penalties=first.penalties.deployed)
    week = build_feature_frame(prices, exogenous, "NP", day_ahead_origins("NP", end, end + 7 * D))
    np.testing.assert_array_equal(reused.member.predict(week), direct.predict_frame(week))

    # penalties of windows of other lengths fit nothing: the criterion runs and, a week on, chooses otherwise
    shifted = LearPenalties(
        {w + 1: a for w, a in first.penalties.validation.items()},
        {w + 1: a for w, a in first.penalties.deployed.items()},
    )
    _, unmatched = retraining(end, shifted)
    assert not unmatched.penalties_reused
    for w, alphas in unmatched.penalties.deployed.items():
        assert not np.array_equal(alphas, first.penalties.deployed[w])


# -- choose_weights ---------------------------------------------------------------------------------


def _days(days: int) -> np.ndarray:
    return np.repeat(pd.date_range("2018-01-01", periods=days, freq="D", tz="UTC").to_numpy(), 24)


def test_choose_weights__the_stack_wins_when_the_validations_early_fit_does_not_hold():
    # "a" is exact over the first week only, then "a" and "b" are equally noisy and independent:
    # MAE-optimal weights lean on "a", the stack's own holdout sees that fail and shrinks to equal weights
    rng = np.random.default_rng(7)
    n = 28 * 24
    actual = 40 + np.cumsum(rng.standard_normal(n))
    noise = 4 * rng.standard_normal((2, n))
    first_week = np.arange(n) < 7 * 24
    a = np.where(first_week, actual, actual + noise[0])
    b = actual + noise[1]
    decision = choose_weights({"a": a, "b": b}, actual, _days(28))
    assert decision.rule == "stack" and decision.kind == "ensemble"
    assert decision.comparison["stack_mae"] < 0.9 * decision.comparison["simplex_mae"]
    assert decision.comparison["scored_rows"] == 14 * 24
    assert decision.weights == pytest.approx({"a": 0.5, "b": 0.5})
    assert decision.validation_mae["ensemble"] < min(decision.validation_mae["a"], decision.validation_mae["b"])
    assert "stack chosen" in decision.reason


def test_choose_weights__the_simplex_rule_stays_when_the_stack_cannot_beat_it_and_on_a_short_validation():
    # the actual is exactly 0.8 a + 0.2 b every day: the MAE-optimal weights are exact out of sample
    rng = np.random.default_rng(11)
    n = 28 * 24
    a, b = 40 + 5 * rng.standard_normal((2, n))
    actual = 0.8 * a + 0.2 * b
    decision = choose_weights({"a": a, "b": b}, actual, _days(28))
    assert decision.rule == "simplex" and decision.kind == "ensemble"
    assert decision.comparison["simplex_mae"] == pytest.approx(0.0, abs=1e-6)
    assert decision.comparison["simplex_mae"] <= decision.comparison["stack_mae"]
    assert decision.weights == pytest.approx({"a": 0.8, "b": 0.2}, abs=1e-6)

    short = choose_weights({"a": a[: 10 * 24], "b": b[: 10 * 24]}, actual[: 10 * 24], _days(10))
    assert short.rule == "simplex" and "no comparison" in short.comparison["skipped"]
    # the keep-or-fall-back guard: a member that cannot be beaten is the model alone
    alone = choose_weights({"a": actual, "b": b}, actual, _days(28))
    assert alone.kind == "best_member" and alone.weights == {"a": 1.0, "b": 0.0}


def test_ensemble__a_member_that_abstains_on_a_row_gives_its_weight_to_the_others():
    decision = EnsembleDecision({"a": 0.5, "lear": 0.5}, "ensemble", {"a": 1.0, "lear": 2.0, "ensemble": 0.9}, "t")
    ensemble = EnsembleForecaster("NP", {}, decision, IntervalCalibration(0.9, [0.0] * 24, [0.0] * 24), [])
    combined = ensemble.combine({"a": np.array([1.0, 1.0]), "lear": np.array([3.0, np.nan])})
    np.testing.assert_allclose(combined, [2.0, 1.0])
    alone = EnsembleDecision({"a": 0.0, "lear": 1.0}, "best_member", {"a": 1.5, "lear": 1.0}, "t")
    ensemble = EnsembleForecaster("NP", {}, alone, IntervalCalibration(0.9, [0.0] * 24, [0.0] * 24), [])
    # LEAR alone is the model, and it abstains on the second row: the best other member answers it
    np.testing.assert_allclose(
        ensemble.combine({"a": np.array([1.0, 5.0]), "lear": np.array([3.0, np.nan])}), [3.0, 5.0]
    )
