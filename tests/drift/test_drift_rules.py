"""The per-family drift rules on real weeks of the four bundled markets.

Each change is injected into the whole current week of a real week (the frames the drift check
compares without a champion: the week, the 52 weeks before it, the same season of the 730 days
before it) and the findings must name the family that moved, and for an exogenous change the
series (as a warn or critical finding); the same weeks as they are give no finding at all. The
changes are large (price x2, volatility x4, a load or generation series +50%): how often the
goal's smaller changes are caught over all weeks is the benchmark's to say, not a test's.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from core.markets import get_market, load_market
from drift import reports, rules
from drift.monitor import week_frames
from tests.market_frames import PROJECT_ROOT

# one real week per market (as_of = the end of its 7-day current window), among the weeks of
# `make bench-drift` (benchmarks/results/drift_power.json) where every rule stays below its warn threshold
WEEKS = {
    "NP": pd.Timestamp("2018-12-10 23:00", tz="UTC"),
    "PJM": pd.Timestamp("2018-12-18 05:00", tz="UTC"),
    "BE": pd.Timestamp("2016-12-17 23:00", tz="UTC"),
    "FR": pd.Timestamp("2016-12-17 23:00", tz="UTC"),
}
EXOGENOUS = {
    "NP": ["grid_load_forecast", "wind_power_forecast"],
    "PJM": ["system_load_forecast", "zonal_comed_load_forecast"],
    "BE": ["generation_forecast", "system_load_forecast"],
    "FR": ["generation_forecast", "system_load_forecast"],
}


@cache
def market_frame(region: str) -> pd.DataFrame:
    history = load_market(region, PROJECT_ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    return reports.hourly_drift_columns(prices, exogenous)


def frames(region: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    as_of = WEEKS[region]
    return week_frames(market_frame(region), as_of - pd.Timedelta(days=7), as_of, 730)


def findings(region: str, current: pd.DataFrame) -> list[rules.Finding]:
    _, before, season = frames(region)
    return rules.judge(rules.measure(current, before, season, get_market(region).timezone, EXOGENOUS[region]))


def named(found: list[rules.Finding]) -> set[tuple[str, str | None]]:
    return {(f.family, f.subject) for f in found}


def day_deviations_scaled(current: pd.DataFrame, region: str, factor: float) -> pd.Series:
    price = current["price"]
    day = price.index.tz_convert(get_market(region).timezone).normalize()
    mean = price.groupby(day).transform("mean")
    return mean + factor * (price - mean)


@pytest.mark.parametrize("region", sorted(WEEKS))
def test_rules__a_clean_real_week_has_no_finding(region):
    current, _, _ = frames(region)
    assert len(current) == 168 and current["price"].notna().all()

    assert findings(region, current) == []


@pytest.mark.parametrize("region", sorted(WEEKS))
def test_rules__each_injected_change_is_named_by_its_own_family(region):
    current, before, _ = frames(region)
    price = current["price"]
    first, second = EXOGENOUS[region]
    changes = {
        "price_level": current.assign(price=price * 2),
        "price_scale": current.assign(price=price.mean() + 4 * (price - price.mean())),
        "intraday_shape": current.assign(price=day_deviations_scaled(current, region, 0.0)),
        "price_stuck": current.assign(price=np.r_[np.full(48, before["price"].iloc[-1]), price.iloc[48:]]),
        ("exogenous_level", first): current.assign(**{first: current[first] * 1.5}),
        ("exogenous_frozen", second): current.assign(**{second: float(current[second].iloc[0])}),
    }
    for moved, changed in changes.items():
        family, subject = moved if isinstance(moved, tuple) else (moved, None)

        found = findings(region, changed)

        assert (family, subject) in named(found), (moved, [f.text for f in found])
        text = next(f.text for f in found if (f.family, f.subject) == (family, subject))
        assert text.startswith(f"exogenous {subject}: " if subject else f"{rules.FAMILY_TITLE[family]}: ")
        if subject:  # the other series did not move and is not named
            other = second if subject == first else first
            assert not [f for f in found if f.subject == other], [f.text for f in found]


def test_rules__the_finding_says_the_family_the_series_and_the_size():
    current, before, _ = frames("NP")
    wind = current["wind_power_forecast"]
    raised = current.assign(grid_load_forecast=current["grid_load_forecast"] * 1.25)

    found = findings("NP", raised)

    load = next(f for f in found if f.subject == "grid_load_forecast")
    weekly = before["grid_load_forecast"].groupby((before.index - current.index.min()) // pd.Timedelta(days=7)).mean()
    recent = np.exp(np.log(weekly.loc[[-4, -3, -2, -1]]).mean())  # the mean of the 4 weeks' log means
    expected = current["grid_load_forecast"].mean() * 1.25 / recent - 1
    assert load.family == "exogenous_level" and load.status == "critical"
    assert load.text.startswith(f"exogenous grid_load_forecast: level {100 * expected:+.0f}% vs the previous 4 weeks (")
    assert "x the spread of such changes over" in load.text
    assert wind.notna().all() and not [f for f in found if f.subject == "wind_power_forecast"]


def test_longest_run__counts_identical_consecutive_values_and_nan_breaks_a_run():
    assert rules.longest_run(np.array([1.0, 2.0, 2.0, 2.0, 3.0, 3.0])) == (3, 2.0)
    assert rules.longest_run(np.array([5.0, 5.0, np.nan, 5.0, 5.0, 5.0])) == (3, 5.0)
    assert rules.longest_run(np.array([np.nan, np.nan])) == (0, pytest.approx(np.nan, nan_ok=True))


@pytest.mark.parametrize("region", ["PJM", "BE", "FR"])
def test_rules__an_exogenous_series_up_by_a_fifth_is_named_against_its_ratio_to_the_other(region):
    # the goal's size (+20%), where the benchmark measures it caught in 79-86% of weeks: load and
    # generation (BE, FR), system and zonal load (PJM) move together, so their ratio breaks
    current, _, _ = frames(region)
    for moved in EXOGENOUS[region]:
        other = next(c for c in EXOGENOUS[region] if c != moved)

        found = findings(region, current.assign(**{moved: current[moved] * 1.2}))

        # the price level is judged net of what the exogenous changes explain: a load up by a fifth
        # that the price did not follow may leave a warn there (the week's price less its expected rise)
        assert named(found) - {("price_level", None)} == {("exogenous_level", moved)}, [f.text for f in found]
        assert found[0].status == "critical" and f"relative to {other} vs the previous 4 weeks" in found[0].text
        for level in (f for f in found if f.family == "price_level"):
            assert level.status == "warn" and level.text.startswith("price level: "), level.text
            assert "expected from" in level.text and level.score < rules.RULES["price_level"].critical


def test_relative_spread__doubles_with_the_deviations_from_the_weeks_mean_and_moves_with_the_root_of_the_level():
    current, _, _ = frames("BE")
    price, timezone = current["price"], get_market("BE").timezone
    base = rules.relative_spread(price, timezone)

    doubled = rules.relative_spread(price.mean() + 2 * (price - price.mean()), timezone)
    dearer = rules.relative_spread(price * 1.3, timezone)

    local_day = price.index.tz_convert(timezone).date
    step = price.sort_index().diff().abs().median()  # the week's hours are consecutive
    within_day = (price - price.groupby(local_day).transform("mean")).abs().median()
    assert base == pytest.approx(np.sqrt(step * within_day / price.mean()), rel=1e-9)
    assert 0.1 < base < 2  # BE's week: a median step of a few EUR/MWh around a mean of tens
    assert doubled == pytest.approx(2 * base, rel=1e-9)
    assert dearer == pytest.approx(np.sqrt(1.3) * base, rel=1e-9)
    assert np.isnan(rules.relative_spread(price - price.mean() - 1, timezone))  # no positive mean price: no scale
