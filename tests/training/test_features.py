"""The feature matrix: no feature reads a price at or after its forecast origin, hand-checked values,
the market's own calendar, the origin schedules and the refusals of bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.markets import get_market, load_market
from tests.conftest import PROJECT_ROOT
from training.features import (
    KEY_COLUMNS,
    TARGET_COLUMN,
    FeatureError,
    auxiliary_columns,
    build_feature_frame,
    day_ahead_origins,
    feature_columns,
    inference_frame,
    strided_origins,
)
from training.lear import LearMember, LearModel, lear_features

H = pd.Timedelta(hours=1)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _history(region: str) -> tuple[pd.Series, pd.DataFrame]:
    history = load_market(region, PROJECT_ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    return prices, exogenous


@pytest.fixture(scope="module")
def np_history() -> tuple[pd.Series, pd.DataFrame]:
    return _history("NP")


@pytest.fixture(scope="module")
def pjm_history() -> tuple[pd.Series, pd.DataFrame]:
    return _history("PJM")


# -- the acceptance line: no feature uses information after the forecast origin ---------------

ORIGINS = [
    pytest.param("NP", "2018-06-01 22:00", id="NP-local-midnight-summer"),
    pytest.param("NP", "2018-02-14 14:00", id="NP-14h-utc"),
    pytest.param("NP", "2018-03-24 23:00", id="NP-midnight-before-spring-forward"),
    pytest.param("NP", "2018-03-25 01:00", id="NP-first-hour-after-spring-forward"),
    pytest.param("NP", "2018-10-27 22:00", id="NP-midnight-before-fall-back"),
    pytest.param("NP", "2018-10-28 01:00", id="NP-second-local-02h-of-fall-back"),
    pytest.param("NP", "2013-01-03 05:00", id="NP-two-days-into-history-lags-missing"),
    pytest.param("PJM", "2018-11-04 04:00", id="PJM-local-midnight-fall-back-day"),
]


def _history_of(region, np_history, pjm_history):
    return np_history if region == "NP" else pjm_history


@pytest.mark.parametrize(("region", "origin"), ORIGINS)
def test_inference_frame__from_prices_before_the_origin_equals_the_training_rows_of_that_origin(
    region, origin, np_history, pjm_history
):
    prices, exogenous = _history_of(region, np_history, pjm_history)
    origin = utc(origin)

    online = inference_frame(prices[prices.index < origin], exogenous, region, origin)
    training = build_feature_frame(prices, exogenous, region, pd.DatetimeIndex([origin]))

    assert len(online) == len(training) == 24
    assert list(online.columns) == [*KEY_COLUMNS, *feature_columns(region), *auxiliary_columns(region)]
    pd.testing.assert_frame_equal(online, training.drop(columns=[TARGET_COLUMN]), check_exact=True)


@pytest.mark.parametrize("wild", [1e6, np.nan, -1e6], ids=["plus-1e6", "nan", "minus-1e6"])
@pytest.mark.parametrize(("region", "origin"), ORIGINS)
def test_features__no_feature_reads_a_price_at_or_after_the_origin(region, origin, wild, np_history, pjm_history):
    prices, exogenous = _history_of(region, np_history, pjm_history)
    origin = utc(origin)
    tampered = prices.copy()
    tampered[tampered.index >= origin] = wild

    honest = build_feature_frame(prices, exogenous, region, pd.DatetimeIndex([origin]))
    spoiled = build_feature_frame(tampered, exogenous, region, pd.DatetimeIndex([origin]))

    columns = [*KEY_COLUMNS, *feature_columns(region), *auxiliary_columns(region)]
    pd.testing.assert_frame_equal(spoiled[columns], honest[columns], check_exact=True)
    # The target did change: the tampering reached the hours the origin forecasts.
    assert not np.array_equal(spoiled[TARGET_COLUMN].to_numpy(), honest[TARGET_COLUMN].to_numpy(), equal_nan=True)
    if np.isnan(wild):
        assert spoiled[TARGET_COLUMN].isna().all()
    else:
        assert (spoiled[TARGET_COLUMN] == wild).all()


@pytest.mark.parametrize("wild", [1e6, np.nan, -1e6], ids=["plus-1e6", "nan", "minus-1e6"])
@pytest.mark.parametrize(("region", "origin"), ORIGINS)
def test_lear_features__read_no_price_at_or_after_the_origin(region, origin, wild, np_history, pjm_history):
    prices, exogenous = _history_of(region, np_history, pjm_history)
    origin = utc(origin)
    tampered = prices.copy()
    tampered[tampered.index >= origin] = wild

    honest, honest_target = lear_features(prices, exogenous, region, pd.DatetimeIndex([origin]))
    spoiled, spoiled_target = lear_features(tampered, exogenous, region, pd.DatetimeIndex([origin]))

    pd.testing.assert_frame_equal(spoiled, honest, check_exact=True)
    assert not np.array_equal(spoiled_target.to_numpy(), honest_target.to_numpy(), equal_nan=True)


@pytest.mark.parametrize("wild", [1e6, np.nan], ids=["plus-1e6", "nan"])
def test_lear_member__fitted_and_forecasting_at_an_origin_reads_no_price_at_or_after_it(wild, np_history):
    prices, exogenous = np_history
    origin = utc("2018-03-24 23:00")  # the local midnight before the spring-forward day
    history = prices[prices.index >= origin - pd.Timedelta(days=150)]
    tampered = history.copy()
    tampered[tampered.index >= origin] = wild

    honest = LearModel("NP").fit(history, exogenous, origin)
    spoiled = LearModel("NP").fit(tampered, exogenous, origin)
    days = pd.DatetimeIndex([origin])

    assert spoiled.windows == honest.windows and honest.last_training_target < origin
    pd.testing.assert_frame_equal(
        spoiled.predict(tampered, exogenous, days), honest.predict(history, exogenous, days), check_exact=True
    )


@pytest.fixture(scope="module")
def lear_members(np_history, pjm_history) -> dict[str, LearMember]:
    """A cheap LEAR member per region (one 56-day window), fitted on the 90 days before 2018-02-01."""
    end = utc("2018-02-01")
    fitted = {}
    for region, (prices, exogenous) in (("NP", np_history), ("PJM", pjm_history)):
        history = prices[(prices.index >= end - pd.Timedelta(days=90)) & (prices.index < end)]
        fitted[region] = LearMember.of(LearModel(region, max_windows=1).fit(history, exogenous, end))
    return fitted


@pytest.mark.parametrize("wild", [1e6, np.nan], ids=["plus-1e6", "nan"])
@pytest.mark.parametrize(("region", "origin"), ORIGINS)
def test_lear_member__serving_from_the_inference_frame_reads_no_price_at_or_after_the_origin(
    region, origin, wild, np_history, pjm_history, lear_members
):
    """The tamper-the-future test for the ensemble's LEAR member as the served model runs it."""
    prices, exogenous = _history_of(region, np_history, pjm_history)
    origin = utc(origin)
    tampered = prices.copy()
    tampered[tampered.index >= origin] = wild
    member = lear_members[region]

    honest_frame = inference_frame(prices, exogenous, region, origin)
    spoiled_frame = inference_frame(tampered, exogenous, region, origin)
    honest = member.model.predict_frame(honest_frame)  # LEAR's model on its inputs, at any origin

    np.testing.assert_array_equal(member.model.predict_frame(spoiled_frame), honest)
    np.testing.assert_array_equal(member.predict(spoiled_frame), member.predict(honest_frame))
    assert honest.shape == (24,) and np.isfinite(honest).all()
    local = origin.tz_convert(get_market(region).timezone)
    if (local.hour, local.minute) != (0, 0):  # the member abstains where its day-aligned models do not apply
        assert np.isnan(member.predict(honest_frame)).all()
    else:
        np.testing.assert_array_equal(member.predict(honest_frame), honest)
    features, _ = lear_features(prices, exogenous, region, pd.DatetimeIndex([origin]))
    if features.notna().all(axis=None):  # the raw-series path gives the same forecast (training = serving)
        np.testing.assert_allclose(member.model.predict(prices, exogenous, pd.DatetimeIndex([origin])).iloc[0], honest)


def test_features__of_many_origins_at_once_equal_one_origin_at_a_time(np_history):
    prices, exogenous = np_history
    origins = strided_origins(utc("2018-03-20"), utc("2018-04-03"), 7)
    together = build_feature_frame(prices, exogenous, "NP", origins)
    for origin in origins[::5]:
        alone = inference_frame(prices[prices.index < origin], exogenous, "NP", origin)
        rows = together[together["origin"] == origin].drop(columns=[TARGET_COLUMN]).reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, alone, check_exact=True)


# -- hand-checked values ------------------------------------------------------------------------


def test_price_features__equal_the_prices_at_the_hand_computed_hours(np_history):
    prices, exogenous = np_history
    origin = utc("2018-06-01 22:00")  # local midnight of 2 June (CEST)
    frame = build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([origin]))
    h = 10
    row = frame.iloc[h]
    t = utc("2018-06-02 08:00")
    assert row["origin"] == origin and row["target_ts"] == t and row["horizon"] == h

    assert row["lag_24h"] == prices[utc("2018-06-01 08:00")]
    assert row["lag_48h"] == prices[utc("2018-05-31 08:00")]
    assert row["lag_72h"] == prices[utc("2018-05-30 08:00")]
    assert row["lag_168h"] == prices[utc("2018-05-26 08:00")]
    same_hour = np.array([prices[t - 24 * k * H] for k in range(1, 8)])
    assert row["same_hour_mean_7d"] == pytest.approx(same_hour.mean(), abs=1e-12)
    assert row["same_hour_std_7d"] == pytest.approx(same_hour.std(), abs=1e-12)
    assert row["same_hour_min_7d"] == same_hour.min()
    assert row["same_hour_max_7d"] == same_hour.max()

    assert row["last_price"] == prices[utc("2018-06-01 21:00")]
    last_day = prices[utc("2018-05-31 22:00") : utc("2018-06-01 21:00")]
    assert len(last_day) == 24
    assert row["last_24h_mean"] == pytest.approx(last_day.mean(), abs=1e-9)
    assert row["last_24h_min"] == last_day.min()
    assert row["last_24h_max"] == last_day.max()
    assert row["last_24h_std"] == pytest.approx(last_day.std(ddof=0), abs=1e-9)
    assert row[TARGET_COLUMN] == prices[t]

    # The origin-level features are the same on all 24 rows of the origin.
    for column in ("last_price", "last_24h_mean", "last_24h_std"):
        assert frame[column].nunique() == 1


def test_price_features__at_an_odd_hour_origin_read_lags_relative_to_each_target(np_history):
    prices, exogenous = np_history
    origin = utc("2018-02-14 14:00")
    frame = build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([origin]))
    for h in (0, 9, 23):
        t = origin + h * H
        row = frame.iloc[h]
        assert row["lag_24h"] == prices[t - 24 * H]
        assert row["lag_168h"] == prices[t - 168 * H]
        assert row[TARGET_COLUMN] == prices[t]
    # The deepest lag of the first target and the latest of the last target are both before T.
    assert frame.iloc[23]["lag_24h"] == prices[origin - H] == frame.iloc[0]["last_price"]


def test_exogenous_features__are_the_forecast_at_the_target_its_value_a_day_before_and_its_horizon_mean(np_history):
    prices, exogenous = np_history
    origin = utc("2018-02-14 14:00")
    frame = build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([origin]))
    targets = pd.date_range(origin, periods=24, freq="h")
    for name in get_market("NP").exogenous:
        values = exogenous[name]
        expected_now = values.reindex(targets).to_numpy()
        expected_before = values.reindex(targets - 24 * H).to_numpy()
        np.testing.assert_array_equal(frame[name].to_numpy(), expected_now)
        np.testing.assert_array_equal(frame[f"{name}_lag_24h"].to_numpy(), expected_before)
        np.testing.assert_array_equal(frame[f"{name}_change_24h"].to_numpy(), expected_now - expected_before)
        np.testing.assert_allclose(
            frame[f"{name}_horizon_mean"].to_numpy(), np.full(24, expected_now.mean()), rtol=1e-12
        )
    h = 5
    assert frame.iloc[h]["grid_load_forecast"] == exogenous.loc[origin + h * H, "grid_load_forecast"]


def test_features__of_an_origin_without_a_week_of_history_are_nan_not_invented(np_history):
    prices, exogenous = np_history
    first = prices.index[0]
    origin = first + 30 * H
    frame = build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([origin]))
    # T = first + 30 h: t - 24 h = first + 6 h + h is always stored, t - 48 h only from h = 18 on
    assert frame["lag_168h"].isna().all()
    assert frame["lag_48h"].isna().tolist() == [True] * 18 + [False] * 6
    assert frame["lag_24h"].notna().all()
    assert frame["last_24h_mean"].notna().all()
    early = build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([first + 10 * H]))
    assert early["last_24h_mean"].isna().all() and early["last_price"].iloc[0] == prices.iloc[9]


# -- calendar ----------------------------------------------------------------------------------


def test_calendar__hour_weekday_and_month_are_in_the_market_local_clock(np_history, pjm_history):
    prices, exogenous = np_history
    frame = build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([utc("2018-05-31 22:00")]))
    row = frame.set_index("target_ts").loc[utc("2018-06-01 10:00")]
    assert row["hour"] == 12  # CEST = UTC+2
    assert row["weekday"] == 4  # Friday
    assert row["month"] == 6 and row["is_weekend"] == 0
    angle = 2 * np.pi * (152 - 1) / 365.25  # 1 June 2018 is day 152
    assert row["day_of_year_sin"] == pytest.approx(np.sin(angle)) and row["day_of_year_cos"] == pytest.approx(
        np.cos(angle)
    )

    # 2018-06-30 22:00 UTC is already Sunday 1 July 00:00 in Oslo.
    frame = build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([utc("2018-06-30 20:00")]))
    assert frame[["hour", "weekday", "month", "is_weekend"]].iloc[1].tolist() == [23, 5, 6, 1]
    assert frame[["hour", "weekday", "month", "is_weekend"]].iloc[2].tolist() == [0, 6, 7, 1]

    prices, exogenous = pjm_history
    frame = build_feature_frame(prices, exogenous, "PJM", pd.DatetimeIndex([utc("2018-01-10 05:00")]))
    assert frame["hour"].tolist() == list(range(24))  # EST = UTC-5: the origin is local midnight


def test_calendar__spring_forward_day_skips_local_02h(np_history):
    prices, exogenous = np_history
    frame = build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([utc("2018-03-24 23:00")]))
    assert frame["hour"].tolist() == [0, 1, *range(3, 24), 0]


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        pytest.param("2018-12-24 23:00", [1] * 24, id="christmas-day"),
        pytest.param("2018-05-16 22:00", [1] * 24, id="constitution-day-starts-at-22-utc"),
        pytest.param("2018-12-26 23:00", [0] * 24, id="27-december-is-a-working-day"),
        pytest.param("2018-05-17 10:00", [1] * 12 + [0] * 12, id="noon-origin-on-constitution-day"),
    ],
)
def test_is_holiday__follows_norwegian_public_holidays_by_local_date(origin, expected, np_history):
    prices, exogenous = np_history
    frame = build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([utc(origin)]))
    assert frame["is_holiday"].tolist() == expected


def test_is_holiday__is_independence_day_in_pjm_local_time(pjm_history):
    prices, exogenous = pjm_history
    frame = build_feature_frame(prices, exogenous, "PJM", pd.DatetimeIndex([utc("2018-07-04 00:00")]))
    # 00:00-03:00 UTC on 4 July are still 3 July evening in New York (EDT = UTC-4).
    assert frame["is_holiday"].tolist() == [0] * 4 + [1] * 20


def test_frame__has_24_rows_per_origin_with_horizon_0_to_23_and_the_columns_in_signature_order(np_history):
    prices, exogenous = np_history
    origins = day_ahead_origins("NP", utc("2018-03-20"), utc("2018-04-01"))
    frame = build_feature_frame(prices, exogenous, "NP", origins)
    assert len(frame) == 24 * len(origins) == 24 * 12
    assert (frame.groupby("origin").size() == 24).all()
    for origin, rows in frame.groupby("origin"):
        assert rows["horizon"].tolist() == list(range(24))
        assert (rows["target_ts"] - origin).tolist() == [h * H for h in range(24)]
    assert list(frame.columns) == [*KEY_COLUMNS, *feature_columns("NP"), *auxiliary_columns("NP"), TARGET_COLUMN]
    assert auxiliary_columns("NP") == ["grid_load_forecast_lag_168h", "wind_power_forecast_lag_168h"]
    for name in ("grid_load_forecast", "wind_power_forecast"):
        assert {name, f"{name}_lag_24h", f"{name}_change_24h", f"{name}_horizon_mean"} <= set(feature_columns("NP"))
    assert "system_load_forecast" in feature_columns("PJM") and "grid_load_forecast" not in feature_columns("PJM")
    assert len(feature_columns("NP")) == len(set(feature_columns("NP"))) == 8 + 13 + 8


# -- origin schedules --------------------------------------------------------------------------


def test_day_ahead_origins__are_local_midnights_across_both_dst_changes():
    spring = day_ahead_origins("NP", utc("2018-03-24"), utc("2018-03-27"))
    assert list(spring) == [utc("2018-03-24 23:00"), utc("2018-03-25 22:00"), utc("2018-03-26 22:00")]
    autumn = day_ahead_origins("NP", utc("2018-10-27"), utc("2018-10-30"))
    assert list(autumn) == [utc("2018-10-27 22:00"), utc("2018-10-28 23:00"), utc("2018-10-29 23:00")]
    pjm = day_ahead_origins("PJM", utc("2018-11-03"), utc("2018-11-06"))
    assert list(pjm) == [utc("2018-11-03 04:00"), utc("2018-11-04 04:00"), utc("2018-11-05 05:00")]


def test_day_ahead_origins__window_is_start_inclusive_end_exclusive():
    origins = day_ahead_origins("NP", utc("2018-06-01 22:00"), utc("2018-06-03 22:00"))
    assert list(origins) == [utc("2018-06-01 22:00"), utc("2018-06-02 22:00")]
    assert len(day_ahead_origins("NP", utc("2018-06-01 22:01"), utc("2018-06-02 22:00"))) == 0
    assert len(day_ahead_origins("NP", utc("2018-01-01"), utc("2019-01-01"))) == 365


def test_strided_origins__with_stride_7_visit_every_hour_of_day_in_7_days():
    origins = strided_origins(utc("2018-01-01 00:30"), utc("2018-01-08 01:00"), 7)
    assert origins[0] == utc("2018-01-01 01:00")  # the start is rounded up to a whole hour
    assert len(origins) == 24
    assert (np.diff(origins.asi8) == 7 * 3600 * 10**9).all()
    assert sorted(origins.hour) == list(range(24))
    assert origins[-1] < utc("2018-01-08 01:00")


# -- bad input ---------------------------------------------------------------------------------


def test_missing_exogenous_column__is_refused_naming_region_and_column(np_history):
    prices, exogenous = np_history
    with pytest.raises(FeatureError, match=r"^NP: exogenous forecast\(s\) wind_power_forecast missing") as info:
        build_feature_frame(
            prices, exogenous.drop(columns=["wind_power_forecast"]), "NP", pd.DatetimeIndex([utc("2018-06-01 22:00")])
        )
    assert "grid_load_forecast, wind_power_forecast" in str(info.value)  # and what the market needs


def test_naive_origins__are_refused(np_history):
    prices, exogenous = np_history
    with pytest.raises(FeatureError, match=r"^NP: forecast origins must be tz-aware"):
        build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([pd.Timestamp("2018-06-01 22:00")]))
    with pytest.raises(FeatureError, match=r"^NP: the forecast origin 2018-06-01 22:00:00 must be tz-aware"):
        inference_frame(prices, exogenous, "NP", pd.Timestamp("2018-06-01 22:00"))


def test_duplicate_price_hours__are_refused_naming_the_first(np_history):
    prices, exogenous = np_history
    window = prices[utc("2018-05-01") : utc("2018-06-01 21:00")]
    doubled = pd.concat([window, window[utc("2018-05-20 03:00") : utc("2018-05-20 04:00")]])
    with pytest.raises(FeatureError, match=r"^NP: prices has duplicate hours, first 2018-05-20 03:00:00\+00:00"):
        build_feature_frame(doubled, exogenous, "NP", pd.DatetimeIndex([utc("2018-06-01 22:00")]))


def test_naive_price_index__is_refused(np_history):
    prices, exogenous = np_history
    naive = prices[utc("2018-05-01") : utc("2018-06-01 21:00")].tz_localize(None)
    with pytest.raises(FeatureError, match=r"^NP: prices must be indexed by tz-aware UTC timestamps"):
        build_feature_frame(naive, exogenous, "NP", pd.DatetimeIndex([utc("2018-06-01 22:00")]))


def test_no_prices__are_refused(np_history):
    prices, exogenous = np_history
    empty = prices.iloc[:0]
    with pytest.raises(FeatureError, match=r"^NP: no prices to build features from"):
        build_feature_frame(empty, exogenous, "NP", pd.DatetimeIndex([utc("2018-06-01 22:00")]))
    # At inference, an origin before every stored price leaves no known price either.
    with pytest.raises(FeatureError, match=r"^NP: no prices to build features from"):
        inference_frame(prices, exogenous, "NP", prices.index[0])


def test_no_origins__are_refused(np_history):
    prices, exogenous = np_history
    with pytest.raises(FeatureError, match=r"^NP: no forecast origins"):
        build_feature_frame(prices, exogenous, "NP", pd.DatetimeIndex([], tz="UTC"))
