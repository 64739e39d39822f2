"""Local-day arithmetic on every daylight-saving change day: the weekly retraining's windows and
the backtest's days and blocks, for every Sunday 02:00 UTC (the weekly DAG's own time) of several
years in every configured market's zone, and local midnights in zones where midnight itself is
repeated or skipped.

The anchor is the zone database itself (Python's ``zoneinfo``), not the product's formula: a day
begins where the local wall clock first shows that date.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from core.markets import bundled_markets
from core.settings import Settings
from core.timestamps import local_day_after, local_day_starts, local_midnights
from training.backtest import _block_index, _local_day_end
from training.config import TrainingConfig
from training.dataset import TrainingData, split_origins
from training.features import HORIZON_HOURS, day_ahead_origins

MARKETS = bundled_markets()  # the region catalogue's regions with a bundled history file

HOUR = pd.Timedelta(hours=1)
SUNDAYS = pd.date_range("2015-01-04 02:00", "2024-12-29 02:00", freq="7D", tz="UTC")  # every Sunday 02:00 UTC
MARKET_ZONES = sorted({m.timezone for m in MARKETS.values()})
MIDNIGHT_CHANGING_ZONES = ["America/Sao_Paulo", "America/Havana"]


def first_instant_of(day: date, zone: str) -> datetime:
    """From the zone database: the first UTC minute whose local wall clock shows ``day``."""
    tz = ZoneInfo(zone)
    probe = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=15)
    while probe.astimezone(tz).date() < day:
        probe += timedelta(minutes=15)
    return probe


@pytest.mark.parametrize("zone", MARKET_ZONES + MIDNIGHT_CHANGING_ZONES)
def test_local_midnights__each_day_begins_where_the_zone_database_says(zone):
    days = pd.date_range("2015-01-01", "2024-12-31", freq="D")
    starts = local_midnights(zone, days)
    expected = [first_instant_of(d.date(), zone) for d in days]
    assert list(starts.to_pydatetime()) == expected
    lengths = set((starts[1:] - starts[:-1]) / HOUR)
    assert lengths <= {23.0, 24.0, 25.0} and 24.0 in lengths


@pytest.mark.parametrize("zone", MARKET_ZONES + MIDNIGHT_CHANGING_ZONES)
def test_local_day_starts__every_hour_of_three_years_maps_to_the_first_instant_of_its_local_day(zone):
    hours = pd.date_range("2016-01-01", "2019-01-01", freq="h", tz="UTC", inclusive="left")
    dates = hours.tz_convert(zone).date
    expected = {day: first_instant_of(day, zone) for day in sorted(set(dates))}
    starts = local_day_starts(zone, hours)
    assert [s.to_pydatetime() for s in starts] == [expected[day] for day in dates]
    assert ((starts <= hours) & (hours - starts < 25 * HOUR)).all()


def test_local_midnights__the_repeated_and_the_skipped_midnight():
    # Havana: summer time ends at 01:00 on 2016-11-06 (00:00-01:00 twice); it starts at 00:00 on 2016-03-13
    assert local_midnights("America/Havana", ["2016-11-06", "2016-03-13"]).tolist() == [
        pd.Timestamp("2016-11-06 04:00", tz="UTC"),  # the first 00:00, still at -04:00
        pd.Timestamp("2016-03-13 05:00", tz="UTC"),  # 01:00 at -04:00: 00:00 never happened
    ]
    # Sao Paulo, 2018-11-04: 00:00 became 01:00, so that day had 23 hours
    assert (
        local_day_after("America/Sao_Paulo", "2018-11-04 12:00Z")
        - local_midnights("America/Sao_Paulo", ["2018-11-04"])[0]
        == 23 * HOUR
    )


@pytest.mark.parametrize("region", sorted(MARKETS))
def test_weekly_windows_and_backtest_days__hold_on_every_sunday_of_ten_years(region):
    zone = MARKETS[region].timezone
    config = TrainingConfig.from_settings(Settings.from_env({}), "smoke")
    for as_of in SUNDAYS:
        data = TrainingData(
            region, pd.Series(dtype=float), pd.DataFrame(), as_of - config.window_days * 24 * HOUR, as_of
        )
        splits = split_origins(data, config)
        for origins in (splits.validation, splits.test):
            local = origins.tz_convert(zone)
            assert (local.hour == 0).all() and (local.minute == 0).all(), (region, as_of)
            assert origins.is_monotonic_increasing and origins.is_unique
        assert splits.validation[-1] + (HORIZON_HOURS - 1) * HOUR < splits.test[0] + HOUR
        assert splits.test[-1] + HORIZON_HOURS * HOUR <= as_of
        # the backtest's days (23, 24 or 25 hours) and its refit blocks
        ends = [_local_day_end(origin, zone) for origin in splits.test]
        assert {(end - origin) / HOUR for origin, end in zip(splits.test, ends, strict=True)} <= {23.0, 24.0, 25.0}
        assert ends[:-1] == list(splits.test[1:])
        blocks = _block_index(splits.test, zone, 7)
        assert list(blocks) == sorted(blocks) and blocks[0] == 0 and blocks[-1] == (len(splits.test) - 1) // 7


def test_day_ahead_origins__the_autumn_change_is_an_end_not_an_error():
    # 2016-10-30 02:00 UTC is 03:00 CET just after the repeated hour; 01:00 UTC is in it
    origins = day_ahead_origins(
        "BE", pd.Timestamp("2016-10-28 22:00", tz="UTC"), pd.Timestamp("2016-10-30 01:00", tz="UTC")
    )
    assert origins.tolist() == [pd.Timestamp("2016-10-28 22:00", tz="UTC"), pd.Timestamp("2016-10-29 22:00", tz="UTC")]
