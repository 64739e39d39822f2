"""The daily network: a real fit on two years of NP held against the paper's published DNN ensemble and the
seasonal naive forecast, its reproducibility from the seed, and its refusal of incomplete days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.daily_network import DailyNetwork
from core.markets import load_market
from tests.conftest import PROJECT_ROOT
from training.features import day_ahead_origins
from training.lear import lear_features

H = pd.Timedelta(hours=1)
D = pd.Timedelta(days=1)
START = pd.Timestamp("2017-05-21 22:00", tz="UTC")  # Monday 22 May 2017, local midnight


@pytest.fixture(scope="module")
def np_days() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """LEAR's rows of NP's two years before START (complete days) and of the week after it."""
    history = load_market("NP", PROJECT_ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    origins = day_ahead_origins("NP", START - 723 * D, START + 7 * D)
    features, targets = lear_features(prices, exogenous, "NP", origins)
    before = (features.index < START) & features.notna().all(axis=1) & targets.notna().all(axis=1)
    after = features.index >= START
    return (
        features[before].to_numpy(),
        targets[before].to_numpy(),
        features[after].to_numpy(),
        targets[after].to_numpy(),
    )


def test_daily_network__forecasts_a_week_of_np_about_as_well_as_the_papers_dnn_ensemble(np_days):
    x, y, x_week, y_week = np_days
    model = DailyNetwork(seed=42, networks=2).fit(x, y)
    forecast = model.predict(x_week)

    assert forecast.shape == (7, 24)
    assert len(model.epochs) == 2 and all(1 <= e <= model.max_epochs for e in model.epochs)
    ours = float(np.mean(np.abs(forecast - y_week)))
    published = pd.read_csv(
        PROJECT_ROOT / "data" / "published" / "Forecasts_NP_DNN_LEAR_ensembles.csv", index_col=0, parse_dates=True
    ).loc["2017-05-22":"2017-05-28"]
    theirs = float((published["DNN Ensemble"] - published["Real price"]).abs().mean())
    naive = float(np.mean(np.abs(x_week[:, 72:96] - y_week)))  # the prices of d-7, LEAR's fourth block of 24
    # two networks with default parameters on two years, against the paper's four tuned networks recalibrated daily
    assert ours < 1.5 * theirs  # 1.24 against 0.89 when written
    assert ours < 0.6 * naive  # the naive forecast: 2.54


def test_daily_network__is_reproducible_from_its_seed_and_differs_across_seeds(np_days):
    x, y, x_week, _ = np_days
    params = {"hidden_1": 64, "hidden_2": 32, "activation": "relu", "dropout": 0.0}
    params |= {"learning_rate": 3e-3, "weight_decay": 1e-4, "batch_size": 64}
    first = DailyNetwork(params, seed=7, networks=1, max_epochs=15).fit(x, y).predict(x_week)
    again = DailyNetwork(params, seed=7, networks=1, max_epochs=15).fit(x, y).predict(x_week)
    other = DailyNetwork(params, seed=8, networks=1, max_epochs=15).fit(x, y).predict(x_week)

    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_daily_network__refuses_incomplete_days_and_forecasts_before_its_fit(np_days):
    x, y, x_week, _ = np_days
    gap = y.copy()
    gap[3, 5] = np.nan
    with pytest.raises(ValueError, match="complete days only"):
        DailyNetwork(networks=1).fit(x, gap)
    with pytest.raises(ValueError, match="at least 10 days"):
        DailyNetwork(networks=1).fit(x[:5], y[:5])
    with pytest.raises(ValueError, match="not fitted"):
        DailyNetwork().predict(x_week)
