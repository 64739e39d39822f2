"""The bundled market history and its mapping from local clock hours to UTC."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

import core.settings
from core.markets import MarketDataError, adopt_market, bundled_markets, get_market, load_market, read_market_file

MARKETS = bundled_markets()  # the region catalogue's regions with a bundled history file


def test_bundled_files__match_the_recorded_checksums(market_data_dir):
    with open(market_data_dir / "SOURCES.csv", newline="") as handle:
        sources = list(csv.DictReader(handle))
    assert {row["file"] for row in sources} == {m.file_name for m in MARKETS.values()}
    for row in sources:
        digest = hashlib.sha256((market_data_dir / row["file"]).read_bytes()).hexdigest()
        assert digest == row["sha256"], row["file"]


@pytest.mark.parametrize("region", list(MARKETS))
def test_each_market__maps_to_a_gapless_hourly_utc_series_of_52416_rows(region, market_data_dir):
    history = load_market(region, market_data_dir)
    prices = history.prices
    assert len(prices) == 52_416
    assert str(prices["ts"].dt.tz) == "UTC"
    assert prices["ts"].is_unique and prices["ts"].is_monotonic_increasing
    assert (prices["ts"].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert set(prices.columns) == {"region", "source", "ts", "price", "currency", "unit", "resolution"}
    assert (prices["region"] == region).all() and (prices["source"] == "epf-history").all()
    assert prices["currency"].iloc[0] == MARKETS[region].currency and prices["unit"].iloc[0] == "MWh"
    assert len(history.exogenous) == 2 * 52_416
    assert set(history.exogenous["variable"]) == set(MARKETS[region].exogenous)


def test_first_hour__is_local_midnight_in_the_market_zone(market_data_dir):
    assert load_market("NP", market_data_dir).prices["ts"].iloc[0] == pd.Timestamp("2012-12-31 23:00", tz="UTC")
    assert load_market("PJM", market_data_dir).prices["ts"].iloc[0] == pd.Timestamp("2013-01-01 05:00", tz="UTC")


def _by_utc(region: str, market_data_dir: Path) -> pd.Series:
    return load_market(region, market_data_dir).prices.set_index("ts")["price"]


def test_spring_forward__drops_the_interpolated_hour_that_does_not_exist(market_data_dir):
    # NP.csv: 2013-03-31 01:00 = 46.64, 02:00 = 46.575 (interpolated by the publisher), 03:00 = 46.51
    np_prices = _by_utc("NP", market_data_dir)
    assert np_prices[pd.Timestamp("2013-03-31 00:00", tz="UTC")] == 46.64  # 01:00 CET
    assert np_prices[pd.Timestamp("2013-03-31 01:00", tz="UTC")] == 46.51  # 03:00 CEST
    assert 46.575 not in np_prices.loc["2013-03-30":"2013-04-01"].tolist()
    local_day = np_prices.tz_convert("Europe/Oslo").loc["2013-03-31"]
    assert len(local_day) == 23


def test_fall_back__gives_the_averaged_hour_to_both_instants(market_data_dir):
    # NP.csv: 2013-10-27 02:00 = 32.93, the publisher's average of the two real 02:00 hours
    np_prices = _by_utc("NP", market_data_dir)
    assert np_prices[pd.Timestamp("2013-10-27 00:00", tz="UTC")] == 32.93  # 02:00 CEST
    assert np_prices[pd.Timestamp("2013-10-27 01:00", tz="UTC")] == 32.93  # 02:00 CET
    local_day = np_prices.tz_convert("Europe/Oslo").loc["2013-10-27"]
    assert len(local_day) == 25


def test_us_market__follows_us_eastern_daylight_saving(market_data_dir):
    pjm = _by_utc("PJM", market_data_dir).tz_convert("America/New_York")
    assert len(pjm.loc["2013-03-10"]) == 23 and len(pjm.loc["2013-11-03"]) == 25
    assert len(pjm.loc["2013-03-31"]) == 24  # the European change day is an ordinary US day


def test_local_days__have_24_hours_except_the_change_days(market_data_dir):
    fr = _by_utc("FR", market_data_dir).tz_convert("Europe/Paris")
    per_day = fr.groupby(fr.index.date).size()
    assert sorted(per_day.value_counts().items()) == [(23, 6), (24, 2184 - 12), (25, 6)]


def test_between__cuts_on_utc_bounds(market_data_dir):
    history = load_market("BE", market_data_dir).between(
        pd.Timestamp("2016-12-01", tz="UTC"), pd.Timestamp("2016-12-02", tz="UTC")
    )
    assert len(history.prices) == 24 and len(history.exogenous) == 48


def test_a_file_read_again__gives_the_same_frames_as_copies_and_a_changed_file_is_read_anew(market_data_dir, tmp_path):
    path = tmp_path / "NP.csv"
    shutil.copy(market_data_dir / "NP.csv", path)
    first = read_market_file(path, get_market("NP"))
    first.prices.loc[0, "price"] = -999.0  # a caller changing its frames changes no later caller's
    first.exogenous.loc[0, "value"] = -1.0
    again = read_market_file(path, get_market("NP"))
    pd.testing.assert_frame_equal(again.prices, load_market("NP", market_data_dir).prices)
    assert again.prices.loc[0, "price"] == 31.05 and again.exogenous.loc[0, "value"] != -1.0
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("31.05", "31.06", 1)  # same size, same folder: only the content differs
    path.write_text("\n".join(lines) + "\n")
    assert read_market_file(path, get_market("NP")).prices.loc[0, "price"] == 31.06


# -- bad input ----------------------------------------------------------------------------------


def test_unknown_region__lists_the_known_ones():
    with pytest.raises(
        MarketDataError,
        match=r"unknown region 'XX': .*regions.toml has no entry for it; add one \(`eopt regions add`\) or use one of NP, PJM, BE, FR, ",
    ):
        get_market("XX")


def test_missing_file__names_the_path_and_the_fix(tmp_path):
    with pytest.raises(MarketDataError, match=r"not found at .*NP.csv.*EOPT_MARKET_DATA_DIR"):
        load_market("NP", tmp_path)


def _broken_copy(market_data_dir: Path, tmp_path: Path, edit) -> Path:
    lines = (market_data_dir / "NP.csv").read_text().splitlines()
    path = tmp_path / "NP.csv"
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


def test_non_numeric_price__names_file_line_and_column(market_data_dir, tmp_path):
    def edit(lines):
        lines[10] = "2013-01-01 09:00:00,n/a,42497.0,2798.0"
        return lines

    path = _broken_copy(market_data_dir, tmp_path, edit)
    with pytest.raises(MarketDataError, match=r"NP.csv, line 11, column price: not a finite number \(value 'n/a'\)"):
        read_market_file(path, get_market("NP"))


def test_wrong_columns__are_refused(market_data_dir, tmp_path):
    path = _broken_copy(market_data_dir, tmp_path, lambda lines: [",".join(line.split(",")[:3]) for line in lines])
    with pytest.raises(MarketDataError, match=r"expected 4 columns .* found 3"):
        read_market_file(path, get_market("NP"))


def test_a_day_with_a_missing_hour__is_refused(market_data_dir, tmp_path):
    path = _broken_copy(market_data_dir, tmp_path, lambda lines: lines[:30] + lines[31:])
    with pytest.raises(MarketDataError, match=r"local day 2013-01-02 has 23 rows, expected 24"):
        read_market_file(path, get_market("NP"))


def test_a_missing_day__is_refused(market_data_dir, tmp_path):
    path = _broken_copy(market_data_dir, tmp_path, lambda lines: lines[:25] + lines[49:])
    with pytest.raises(MarketDataError, match=r"days are missing before 2013-01-03"):
        read_market_file(path, get_market("NP"))


def test_bad_timestamp__is_refused(market_data_dir, tmp_path):
    def edit(lines):
        lines[5] = "01/01/2013 04:00,30.0,1.0,2.0"
        return lines

    path = _broken_copy(market_data_dir, tmp_path, edit)
    with pytest.raises(MarketDataError, match=r"line 6, column local: timestamp is not YYYY-MM-DD HH:MM:SS"):
        read_market_file(path, get_market("NP"))


def test_empty_file__is_refused(tmp_path):
    path = tmp_path / "NP.csv"
    path.write_text("")
    with pytest.raises(MarketDataError, match=r"not a readable CSV"):
        read_market_file(path, get_market("NP"))


def test_bundled_history__does_not_depend_on_the_shared_folder(market_data_dir, tmp_path):
    copy = tmp_path / "markets"
    shutil.copytree(market_data_dir, copy)
    assert len(load_market("FR", copy).prices) == 52_416
    assert "shared" not in str(market_data_dir.resolve().relative_to(Path(__file__).resolve().parents[2]))


@pytest.fixture
def process_catalogue(monkeypatch):
    """Whatever a test makes this process's catalogue is undone after it."""
    monkeypatch.setattr(core.settings, "_PROCESS_CATALOGUE", core.settings._PROCESS_CATALOGUE)


def test_adopt_market__a_region_the_catalogue_lacks_is_added_as_the_model_recorded_it(process_catalogue):
    recorded = get_market("NP").model_copy(update={"code": "NP_ELSEWHERE", "name": "NP under another code"})
    with pytest.raises(MarketDataError, match="NP_ELSEWHERE"):
        get_market("NP_ELSEWHERE")
    assert adopt_market(recorded) == recorded
    assert get_market("NP_ELSEWHERE") == recorded
    assert get_market("NP") != recorded  # the rest of the catalogue is untouched


def test_adopt_market__the_same_feature_fields_keep_the_catalogue_entry_without_a_word(process_catalogue, caplog):
    catalogue_np = get_market("NP")
    recorded = catalogue_np.model_copy(update={"providers": (), "mape_threshold": 3.0})  # not what features read
    with caplog.at_level("WARNING", logger="core.markets"):
        assert adopt_market(recorded) is not recorded
    assert get_market("NP") == catalogue_np
    assert caplog.records == []


def test_adopt_market__another_zone_or_series_is_taken_from_the_model_and_said(process_catalogue, caplog):
    catalogue_be = get_market("BE")
    recorded = catalogue_be.model_copy(update={"zone": "Europe/Paris", "exogenous": ("load", "wind"), "providers": ()})
    with caplog.at_level("WARNING", logger="core.markets"):
        adopted = adopt_market(recorded)
    assert adopted.zone == "Europe/Paris" and adopted.exogenous == ("load", "wind")
    assert adopted.providers == catalogue_be.providers  # what ingestion reads stays the catalogue's
    assert get_market("BE") == adopted
    (record,) = caplog.records
    assert "BE: the model was trained with another zone, exogenous" in record.getMessage()
    assert "retrain the region" in record.getMessage()
