"""The training data of a region: its checks, extraction from the store, the splits, the checksum,
and the freshness / gap helpers it relies on."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from core.freshness import Freshness, Gap, find_gaps
from core.markets import load_market
from core.settings import Settings
from tests.conftest import PROJECT_ROOT
from training.config import TrainingConfig
from training.dataset import (
    TrainingData,
    TrainingDataError,
    build_training_frame,
    check_training_data,
    extract_training_data,
    split_origins,
)

H = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
OSLO = "Europe/Oslo"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def np_history():
    return load_market("NP", PROJECT_ROOT / "data" / "markets")


@pytest.fixture(scope="module")
def config() -> TrainingConfig:
    return TrainingConfig.from_settings(Settings.from_env({}))


@pytest.fixture(scope="module")
def np_full(np_history) -> tuple[pd.Series, pd.DataFrame]:
    prices = np_history.prices.set_index("ts")["price"]
    exogenous = np_history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    exogenous.columns.name = None
    return prices, exogenous


def window(np_full, end: pd.Timestamp, days: int) -> TrainingData:
    prices, exogenous = np_full
    start = end - days * DAY
    return TrainingData(
        "NP",
        prices[(prices.index >= start) & (prices.index < end)].copy(),
        exogenous[(exogenous.index >= start) & (exogenous.index < end + 24 * H)].copy(),
        start,
        end,
    )


DATA_END = utc("2018-12-24 23:00")  # one hour after the last bundled NP hour; local midnight of 25 Dec


@pytest.fixture(scope="module")
def np_data(np_full) -> TrainingData:
    data = window(np_full, DATA_END, 730)
    assert data.prices.index[-1] + H == DATA_END
    return data


def replace(data: TrainingData, **changes) -> TrainingData:
    return dataclasses.replace(data, **changes)


# -- check_training_data -----------------------------------------------------------------------


def test_check__passes_on_two_years_of_real_np_data(np_data, config):
    notes = check_training_data(np_data, config)
    assert notes == [
        "NP: 17520 hours from 2016-12-24 23:00:00+00:00 to 2018-12-24 23:00:00+00:00, no gap of 24 h or more"
    ]


def test_check__refuses_too_little_history_naming_what_is_needed(np_full, config):
    short = window(np_full, DATA_END, 60)
    with pytest.raises(TrainingDataError, match=r"^NP: training data rejected: too little history: 1440 hours") as info:
        check_training_data(short, config)
    message = str(info.value)
    assert "need at least 3528" in message  # 168 h lags + 24 * (28 + 56 + 56)
    assert "load more history for NP" in message


def test_check__refuses_a_two_day_gap_naming_its_hours(np_data, config):
    prices = np_data.prices
    gap = (prices.index >= utc("2018-03-10 00:00")) & (prices.index < utc("2018-03-12 00:00"))
    assert gap.sum() == 48
    with pytest.raises(TrainingDataError, match=r"^NP: training data rejected: 1 gap\(s\) of 24 h or more") as info:
        check_training_data(replace(np_data, prices=prices[~gap]), config)
    assert "2018-03-10 00:00:00+00:00 to 2018-03-11 23:00:00+00:00 (48 h)" in str(info.value)
    assert "backfill" in str(info.value)


@pytest.mark.parametrize(("hours", "accepted"), [(5, True), (23, True), (24, False)])
def test_check__accepts_gaps_shorter_than_max_gap_hours_only(np_data, config, hours, accepted):
    prices = np_data.prices
    first = utc("2018-07-01 06:00")
    gap = (prices.index >= first) & (prices.index < first + hours * H)
    data = replace(np_data, prices=prices[~gap])
    if accepted:
        assert check_training_data(data, config)[0].startswith(f"NP: {17520 - hours} hours")
    else:
        with pytest.raises(
            TrainingDataError, match=r"2018-07-01 06:00:00\+00:00 to 2018-07-02 05:00:00\+00:00 \(24 h\)"
        ):
            check_training_data(data, config)


def test_check__refuses_a_missing_edge_of_the_window_as_a_gap(np_data, config):
    prices = np_data.prices
    data = replace(np_data, prices=prices[prices.index >= np_data.start + 30 * H])
    with pytest.raises(TrainingDataError, match=r"2016-12-24 23:00:00\+00:00 to 2016-12-26 04:00:00\+00:00 \(30 h\)"):
        check_training_data(data, config)


def test_check__refuses_a_constant_exogenous_forecast(np_data, config):
    exogenous = np_data.exogenous.assign(wind_power_forecast=1234.0)
    with pytest.raises(
        TrainingDataError,
        match=r"^NP: training data rejected: exogenous forecast 'wind_power_forecast' is constant \(1234.0\)",
    ):
        check_training_data(replace(np_data, exogenous=exogenous), config)


def test_check__refuses_an_all_nan_exogenous_forecast(np_data, config):
    exogenous = np_data.exogenous.assign(grid_load_forecast=np.nan)
    with pytest.raises(
        TrainingDataError, match=r"^NP: training data rejected: exogenous forecast 'grid_load_forecast' is all NaN"
    ):
        check_training_data(replace(np_data, exogenous=exogenous), config)


def test_check__refuses_a_missing_exogenous_forecast(np_data, config):
    exogenous = np_data.exogenous.drop(columns=["grid_load_forecast"])
    with pytest.raises(
        TrainingDataError, match=r"^NP: training data rejected: exogenous forecast 'grid_load_forecast' is missing"
    ):
        check_training_data(replace(np_data, exogenous=exogenous), config)


def test_check__refuses_an_exogenous_forecast_covering_under_95_percent_of_the_hours(np_data, config):
    exogenous = np_data.exogenous.copy()
    exogenous.iloc[: 24 * 50, exogenous.columns.get_loc("wind_power_forecast")] = np.nan  # 50 of 730 days
    with pytest.raises(TrainingDataError, match=r"'wind_power_forecast' covers only 16320 of 17520 training hours"):
        check_training_data(replace(np_data, exogenous=exogenous), config)


def test_check__lists_every_problem_in_one_message(np_full, config):
    short = window(np_full, DATA_END, 60)
    prices = short.prices
    gappy = prices[(prices.index < utc("2018-12-01")) | (prices.index >= utc("2018-12-03"))]
    broken = replace(
        short,
        prices=gappy,
        exogenous=short.exogenous.drop(columns=["wind_power_forecast"]).assign(grid_load_forecast=7.0),
    )
    with pytest.raises(TrainingDataError) as info:
        check_training_data(broken, config)
    message = str(info.value)
    assert message.startswith("NP: training data rejected: ")
    problems = message.removeprefix("NP: training data rejected: ").split(" | ")
    assert len(problems) == 4
    assert problems[0].startswith("too little history: 1392 hours")
    assert problems[1].startswith("1 gap(s) of 24 h or more") and "(48 h)" in problems[1]
    assert problems[2] == "exogenous forecast 'grid_load_forecast' is constant (7.0) in the training window"
    assert problems[3] == "exogenous forecast 'wind_power_forecast' is missing from the store for the training window"


# -- extraction from the store -----------------------------------------------------------------


@pytest.fixture
def loaded_store(store, np_history):
    """The store with the last 800 days of the bundled NP history (prices and forecasts)."""
    recent = np_history.between(DATA_END - 800 * DAY, None)
    result = store.upsert_history(recent.prices, recent.exogenous)
    assert result.prices.inserted == 800 * 24
    return store


def test_extract__reads_the_last_730_days_before_as_of(loaded_store, config, np_data):
    window_only = dataclasses.replace(config, lear_history_days=0)  # LEAR on the training window too
    data = extract_training_data(loaded_store, "NP", DATA_END + 5 * DAY, window_only)
    assert data.region == "NP"
    assert len(data.prices) == 730 * 24
    assert data.end == DATA_END and data.start == DATA_END - 730 * DAY
    assert data.prices.index[0] == data.start and data.prices.index[-1] == DATA_END - H
    assert data.prices.index.is_monotonic_increasing and str(data.prices.index.tz) == "UTC"
    assert sorted(data.exogenous.columns) == ["grid_load_forecast", "wind_power_forecast"]
    assert data.exogenous.index[0] == data.start and data.exogenous.index[-1] == DATA_END - H
    # The exact numbers of the bundled file, through the store and back.
    np.testing.assert_array_equal(data.prices.to_numpy(), np_data.prices.to_numpy())
    np.testing.assert_array_equal(data.prices.index.asi8 // 1000, np_data.prices.index.as_unit("us").asi8)
    np.testing.assert_array_equal(
        data.exogenous[sorted(data.exogenous.columns)].to_numpy(),
        np_data.exogenous[sorted(np_data.exogenous.columns)].to_numpy(),
    )
    assert data.checksum == np_data.checksum
    assert check_training_data(data, config)


def test_extract__with_as_of_inside_the_history_reads_nothing_at_or_after_it(loaded_store, config):
    small = dataclasses.replace(config, window_days=60, lear_history_days=0)
    as_of = utc("2018-06-15 13:45")
    data = extract_training_data(loaded_store, "NP", as_of, small)
    assert data.prices.index.max() == utc("2018-06-15 12:00")
    assert (data.prices.index < as_of.floor("h")).all()
    assert data.end == utc("2018-06-15 13:00") and data.start == data.end - 60 * DAY
    assert len(data.prices) == 60 * 24 and data.prices.index[0] == data.start
    # Day-ahead forecasts are known for the next 24 hours, no further.
    assert data.exogenous.index.max() == data.end + 23 * H
    assert data.exogenous.index.min() == data.start


def test_extract__reads_lears_longer_history_where_the_store_has_it_and_the_members_frame_keeps_the_window(
    loaded_store, config, np_data
):
    longer = config  # EOPT_LEAR_HISTORY_DAYS' default: 1456
    data = extract_training_data(loaded_store, "NP", DATA_END + 5 * DAY, longer)
    # the store holds 800 days: all of them, not 1456
    assert longer.history_days == 1456 and len(data.prices) == 800 * 24
    assert data.start == DATA_END - 800 * DAY and data.end == DATA_END
    window = data.last(730)
    assert window.checksum == np_data.checksum and data.last(900) is data
    # the checks and the members' frame read the 730-day window whatever the extract holds
    assert check_training_data(data, config) == check_training_data(np_data, config)
    pd.testing.assert_frame_equal(build_training_frame(data, config), build_training_frame(np_data, config))
    # without LEAR, nothing reads more than the window
    assert dataclasses.replace(longer, models=("xgboost", "lightgbm", "cnn_lstm")).history_days == 730


def test_extract__an_empty_region_is_refused_with_how_to_load_it(store, config):
    with pytest.raises(
        TrainingDataError, match=r"^NP: no prices in the store; load history \(eopt load-history --region NP\)"
    ):
        extract_training_data(store, "NP", DATA_END, config)


def test_extract__as_of_before_the_stored_history_is_refused(loaded_store, config):
    with pytest.raises(
        TrainingDataError,
        match=r"^NP: no prices before 2010-01-01 00:00:00\+00:00 in the store \(newest is 2018-12-24 22:00:00\+00:00\)",
    ):
        extract_training_data(loaded_store, "NP", utc("2010-01-01"), config)


# -- splits ------------------------------------------------------------------------------------


def _local_midnights(origins: pd.DatetimeIndex) -> bool:
    local = origins.tz_convert(OSLO)
    return bool(((local.hour == 0) & (local.minute == 0)).all())


def test_split_origins__are_time_ordered_with_no_target_reaching_the_next_split(np_data, config):
    splits = split_origins(np_data, config)
    assert splits.train.max() < splits.validation.min() and splits.validation.max() < splits.test.min()
    assert splits.train.max() + 23 * H < splits.validation[0]
    assert splits.validation.max() + 23 * H < splits.test[0]
    assert splits.test.max() + 23 * H == np_data.end - H  # the last test target is the last hour
    assert _local_midnights(splits.validation) and _local_midnights(splits.test)

    # The window ends at local midnight (25 Dec): 56 whole test days, 30 Oct .. 24 Dec.
    assert len(splits.test) == config.test_days == 56
    assert splits.test[0] == utc("2018-10-29 23:00") and splits.test[-1] == utc("2018-12-23 23:00")
    # 56 validation days, 4 Sep .. 29 Oct; its last origin's targets end one hour before the test.
    assert len(splits.validation) == 56
    assert splits.validation[0] == utc("2018-09-03 22:00") and splits.validation[-1] == utc("2018-10-28 23:00")
    # Training origins every 7 h from the first with a full week of lags.
    assert splits.train[0] == np_data.start + 168 * H
    assert (np.diff(splits.train.asi8) == 7 * 3600 * 10**9).all()
    assert splits.train[-1] + 7 * H + 23 * H >= splits.validation[0]  # no further origin fits
    assert splits.describe()["test"] == {
        "origins": 56,
        "first_origin": "2018-10-29 23:00:00+00:00",
        "last_target": "2018-12-24 22:00:00+00:00",
    }


def test_split_origins__of_a_window_ending_at_noon_keep_only_whole_test_days(np_full, config):
    data = window(np_full, utc("2018-12-24 11:00"), 730)  # ends at local 12:00 on 24 Dec
    splits = split_origins(data, config)
    assert len(splits.test) == config.test_days - 1 == 55  # 30 Oct .. 23 Dec
    assert splits.test[0] == utc("2018-10-29 23:00") and splits.test[-1] == utc("2018-12-22 23:00")
    assert splits.test[-1] + 23 * H < data.end
    assert _local_midnights(splits.test) and _local_midnights(splits.validation)
    assert splits.validation.max() + 23 * H < splits.test[0]


def test_build_training_frame__has_24_known_targets_per_origin_in_each_split(np_data, config):
    frame = build_training_frame(np_data, config)
    splits = split_origins(np_data, config)
    assert list(frame["split"].unique()) == ["train", "validation", "test"]
    for name in ("train", "validation", "test"):
        part = frame[frame["split"] == name]
        assert pd.DatetimeIndex(part["origin"].unique()).equals(getattr(splits, name))
    assert frame["target_ts"].duplicated().any()  # strided training origins share target hours ...
    assert not frame[["origin", "target_ts"]].duplicated().any()  # ... but each row is one (origin, hour)
    sizes = frame.groupby("origin").size()
    assert (sizes == 24).all()
    assert frame["price"].notna().all()
    assert frame.groupby("origin")["horizon"].apply(list).map(lambda h: h == list(range(24))).all()
    # Ordering: every training target is before the first validation origin, and so on.
    first_validation = frame.loc[frame["split"] == "validation", "origin"].min()
    first_test = frame.loc[frame["split"] == "test", "origin"].min()
    assert frame.loc[frame["split"] == "train", "target_ts"].max() < first_validation
    assert frame.loc[frame["split"] == "validation", "target_ts"].max() < first_test


def test_build_training_frame__drops_an_origin_whose_targets_are_not_all_known(np_data, config):
    prices = np_data.prices
    hole = (prices.index >= utc("2018-12-10 10:00")) & (prices.index < utc("2018-12-10 15:00"))
    frame = build_training_frame(replace(np_data, prices=prices[~hole]), config)
    test_origins = frame.loc[frame["split"] == "test", "origin"].unique()
    assert len(test_origins) == 55
    assert utc("2018-12-09 23:00") not in set(test_origins)  # the local day of 10 Dec
    assert {utc("2018-12-08 23:00"), utc("2018-12-10 23:00")} <= set(test_origins)


# -- checksum, save and load -------------------------------------------------------------------


def test_checksum__is_stable_for_the_same_numbers_and_changes_with_one_price(np_data):
    again = TrainingData("NP", np_data.prices.copy(), np_data.exogenous.copy(), np_data.start, np_data.end)
    assert again.checksum == np_data.checksum
    assert len(np_data.checksum) == 64

    changed = np_data.prices.copy()
    changed.iloc[1000] += 0.01
    assert replace(np_data, prices=changed).checksum != np_data.checksum

    exogenous = np_data.exogenous.copy()
    exogenous.iloc[5, 0] += 1.0
    assert replace(np_data, exogenous=exogenous).checksum != np_data.checksum

    shifted = np_data.prices.copy()
    shifted.index = shifted.index + H
    assert replace(np_data, prices=shifted).checksum != np_data.checksum


def test_save_and_load__round_trip_the_data_and_its_description(np_data, tmp_path):
    np_data.save(tmp_path / "data")
    loaded = TrainingData.load(tmp_path / "data", "NP")
    assert loaded.checksum == np_data.checksum
    assert (loaded.start, loaded.end) == (np_data.start, np_data.end)
    pd.testing.assert_series_equal(loaded.prices, np_data.prices, check_names=False, check_freq=False)
    pd.testing.assert_frame_equal(loaded.exogenous, np_data.exogenous, check_freq=False)
    meta = json.loads((tmp_path / "data" / "data.json").read_text())
    assert meta == {
        "region": "NP",
        "start": "2016-12-24 23:00:00+00:00",
        "end": "2018-12-24 23:00:00+00:00",
        "hours": 17520,
        "exogenous": ["grid_load_forecast", "wind_power_forecast"],
        "sha256": np_data.checksum,
    }


def test_load__of_changed_prices_is_refused(np_data, tmp_path):
    folder = tmp_path / "data"
    np_data.save(folder)
    frame = pd.read_parquet(folder / "prices.parquet")
    frame.iloc[42, 0] += 0.5
    frame.to_parquet(folder / "prices.parquet")
    with pytest.raises(
        TrainingDataError, match=r"^NP: training data in .* changed since extraction; rerun extract_training_data"
    ):
        TrainingData.load(folder, "NP")


# -- core.freshness -------------------------------------------------------------------------


def test_find_gaps__finds_each_run_of_missing_hours_with_its_length():
    hours = pd.date_range(utc("2018-01-01 00:00"), periods=24, freq="h")
    present = hours.delete([3, 4, 5, 10])
    gaps = find_gaps(present)
    assert gaps == [
        Gap(utc("2018-01-01 03:00"), utc("2018-01-01 05:00")),
        Gap(utc("2018-01-01 10:00"), utc("2018-01-01 10:00")),
    ]
    assert [g.hours for g in gaps] == [3, 1]


def test_find_gaps__counts_missing_hours_at_the_edges_of_the_window_and_ignores_order_and_duplicates():
    hours = pd.date_range(utc("2018-01-01 05:00"), periods=10, freq="h")
    scrambled = hours[::-1].append(hours[:2])
    gaps = find_gaps(scrambled, start=utc("2018-01-01 00:00"), end=utc("2018-01-01 20:00"))
    assert gaps == [
        Gap(utc("2018-01-01 00:00"), utc("2018-01-01 04:00")),
        Gap(utc("2018-01-01 15:00"), utc("2018-01-01 19:00")),
    ]
    assert [g.hours for g in gaps] == [5, 5]
    assert find_gaps(hours) == []
    assert find_gaps(pd.DatetimeIndex([], tz="UTC")) == []


def test_freshness__problem_says_no_prices_or_how_old_the_newest_is():
    as_of = utc("2018-12-25 12:00")
    allowed = pd.Timedelta(hours=48)

    none = Freshness("NP", None, as_of, allowed)
    assert not none.fresh and none.age is None
    assert none.problem().startswith("NP: no prices stored before 2018-12-25 12:00:00+00:00")
    assert "eopt load-history --region NP" in none.problem()

    stale = Freshness("NP", as_of - 60 * H, as_of, allowed)
    assert not stale.fresh and stale.age == 60 * H
    assert stale.problem() == (
        "NP: newest price is 2018-12-23 00:00:00+00:00 (60 h before 2018-12-25 12:00:00+00:00), "
        "older than the allowed 48 h; check the ingestion DAG for this region"
    )

    at_limit = Freshness("NP", as_of - 48 * H, as_of, allowed)
    assert at_limit.fresh and at_limit.problem() is None
