"""The scale benchmark's zones (benchmarks/scale.py): a valid operator catalogue of 200 zones whose
ENTSO-E zones keep their real EICs and time zones, and whose sandbox replays all differ."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.scale import BUNDLED, scale_regions, synthetic_eic, write_scale_catalogue
from core.regions import BUNDLED_CATALOGUE, eic_check_character, load_catalogue
from ingestion.sandbox.replay import ReplayHistory


def test_the_200_zones_make_a_valid_catalogue_with_the_real_entsoe_zones_first(tmp_path):
    bundled = load_catalogue(BUNDLED_CATALOGUE)
    regions = scale_regions(200, bundled)
    catalogue = write_scale_catalogue(tmp_path / "regions.toml", regions)  # the loader checks every field

    assert len(catalogue.regions) == 200 and catalogue.codes[:4] == BUNDLED
    assert set(catalogue.enabled) == set(catalogue.codes)
    eics = [r.ids.entsoe for r in catalogue.regions.values() if r.ids.entsoe]
    assert len(eics) == len(set(eics)) == 198  # every zone but NP and PJM; one bidding zone is one region
    assert all(eic[-1] == eic_check_character(eic[:-1]) for eic in eics)
    real = [c for c, r in bundled.regions.items() if c not in BUNDLED and r.ids.entsoe]
    for code in real:  # the catalogue's ENTSO-E zones come next, with their real EIC and time zone
        assert catalogue.get(code).ids.entsoe == bundled.get(code).ids.entsoe
        assert catalogue.get(code).zone == bundled.get(code).zone
    assert list(catalogue.codes[4 : 4 + len(real)]) == real
    synthetic = catalogue.codes[4 + len(real) :]
    assert synthetic[0] == "SYN_001" and len(synthetic) == 200 - 4 - len(real)
    assert catalogue.get("SYN_001").ids.entsoe == synthetic_eic(1)
    replays = [(r.sandbox.replays, r.sandbox.shift_days) for r in catalogue.regions.values() if r.sandbox]
    assert len(replays) == 196 and len(set(replays)) == 196 and {s for s, _ in replays} == {"BE", "FR"}
    assert scale_regions(46, bundled) == regions[:46]  # each tier holds the smaller ones


def test_zones_replaying_the_same_market_are_served_different_prices(tmp_path, market_data_dir):
    catalogue = write_scale_catalogue(tmp_path / "regions.toml", scale_regions(200))
    first, second = [c for c, r in catalogue.regions.items() if r.sandbox and r.sandbox.replays == "BE"][:2]
    synthetic = next(c for c, r in catalogue.regions.items() if c.startswith("SYN_") and r.sandbox.replays == "BE")
    replay = ReplayHistory(market_data_dir, catalogue)
    start, end = pd.Timestamp("2016-12-01", tz="UTC"), pd.Timestamp("2016-12-08", tz="UTC")
    be = replay.hourly("BE", start - pd.Timedelta(days=400), end)
    served = {code: replay.hourly(code, start, end) for code in (first, second, synthetic)}
    for code, prices in served.items():
        shift = pd.Timedelta(days=catalogue.get(code).sandbox.shift_days)
        assert len(prices) == 168 and prices.notna().all()
        # BE's real price of the hour shift_days earlier
        np.testing.assert_array_equal(prices.to_numpy(), be.reindex(prices.index - shift).to_numpy())
    values = [s.to_numpy() for s in served.values()]
    assert not np.array_equal(values[0], values[1]) and not np.array_equal(values[0], values[2])
    assert not np.array_equal(values[1], values[2])
