"""The region catalogue: the bundled file, and one test per kind of bad entry (each error names the
file, the region and the field)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from core.regions import (
    BUNDLED_CATALOGUE,
    CatalogueError,
    eic_check_character,
    load_catalogue,
    read_catalogue_text,
)
from core.settings import Settings, SettingsError

REFERENCE = Path(__file__).resolve().parents[2] / "data" / "reference" / "entsoe_bidding_zones.csv"

GOOD = """
version = 1

[regions.NL]
name = "Netherlands bidding zone"
zone = "Europe/Amsterdam"
currency = "EUR"
holidays = { country = "NL" }
providers = ["entsoe"]
ids = { entsoe = "10YNL----------L" }
exogenous = ["system_load_forecast", "wind_solar_forecast"]
"""


def _bad(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def test_a_good_entry_reads_into_typed_fields():
    region = read_catalogue_text(GOOD, "ops.toml").get("nl")
    assert (region.code, region.timezone, region.currency, region.holiday_country) == (
        "NL",
        "Europe/Amsterdam",
        "EUR",
        "NL",
    )
    assert region.ids.of("entsoe") == "10YNL----------L" and region.published_at == "13:00"
    assert region.price_range == (-500.0, 4000.0) and not region.enabled and region.history is None


def test_the_bundled_catalogue_holds_the_four_markets_and_every_current_entsoe_zone():
    catalogue = load_catalogue()
    assert catalogue.enabled == ("NP", "PJM", "BE", "FR")
    assert {c: r.history for c, r in catalogue.with_history().items()} == {
        "NP": "NP.csv",
        "PJM": "PJM.csv",
        "BE": "BE.csv",
        "FR": "FR.csv",
    }
    with REFERENCE.open() as handle:
        zones = [row for row in csv.DictReader(handle) if not row["note"].startswith("historical")]
    assert len(zones) == 46
    for row in zones:
        region = catalogue.get(row["code"])
        assert region.ids.entsoe == row["eic"] and "entsoe" in region.providers
        assert region.zone == row["timezone"].replace("Europe/Kiev", "Europe/Kyiv")
    assert catalogue.provider_ids("entsoe") == {"BE": "10YBE----------2", "FR": "10YFR-RTE------C"}
    assert catalogue.provider_ids("entsoe", ["NL", "NP"]) == {"NL": "10YNL----------L"}


def test_eic_check_character_of_real_codes():
    # codes from the ENTSO-E list of bidding zones: NL, DE-LU, NO5 (the 16th character is the check)
    assert eic_check_character("10YNL----------L") == "L"
    assert eic_check_character("10Y1001A1001A82H") == "H"
    assert eic_check_character("10Y1001A1001A48H") == "H"
    with REFERENCE.open() as handle:
        for row in csv.DictReader(handle):
            assert eic_check_character(row["eic"]) == row["eic"][15], row["code"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'zone = "Europe/Amsterdam"',
            'zone = "Europe/Amsterdm"',
            "ops.toml: region NL, field zone: unknown IANA time zone 'Europe/Amsterdm'",
        ),
        (
            'entsoe = "10YNL----------L"',
            'entsoe = "10YNL---------L"',
            "ops.toml: region NL, field ids.entsoe: EIC code '10YNL---------L' has 15 characters; an EIC code has 16",
        ),
        (
            'entsoe = "10YNL----------L"',
            'entsoe = "10YNL----------K"',
            "ops.toml: region NL, field ids.entsoe: EIC code '10YNL----------K' ends in 'K' but its check character is 'L'",
        ),
        (
            'ids = { entsoe = "10YNL----------L" }',
            'ids = { iea = "NLD" }',
            "ops.toml: region NL, field ids.entsoe: missing; entsoe is in the region's providers",
        ),
        ('currency = "EUR"', 'currency = "EUX"', "ops.toml: region NL, field currency: unknown currency 'EUX'"),
        (
            'holidays = { country = "NL" }',
            'holidays = { country = "QQ" }',
            "ops.toml: region NL, field holidays: unknown holiday country 'QQ'",
        ),
        (
            'holidays = { country = "NL" }',
            'holidays = { country = "US", subdivision = "XX" }',
            "ops.toml: region NL, field holidays: unknown subdivision 'XX' of US",
        ),
        ('name = "Netherlands bidding zone"\n', "", "ops.toml: region NL, field name: missing"),
        (
            'providers = ["entsoe"]',
            'providers = ["entsoe", "nordpool"]',
            "field providers: unknown provider(s) nordpool",
        ),
        ('currency = "EUR"', 'currency = "EUR"\ncolour = "orange"', "region NL, field colour: unknown field"),
        ("version = 1", "version = 2", "ops.toml: version is 2; this product reads catalogue version 1"),
    ],
    ids=[
        "unknown-zone",
        "eic-length",
        "eic-check-character",
        "missing-provider-id",
        "unknown-currency",
        "unknown-holiday-country",
        "unknown-holiday-subdivision",
        "missing-field",
        "unknown-provider",
        "unknown-field",
        "version",
    ],
)
def test_a_bad_entry_is_refused_naming_the_region_and_field(old, new, message):
    with pytest.raises(CatalogueError) as caught:
        read_catalogue_text(_bad(old, new), "ops.toml")
    assert message in str(caught.value)


def test_a_duplicate_region_code_is_refused():
    with pytest.raises(CatalogueError, match=r"ops.toml: region NL: duplicate region code"):
        read_catalogue_text(GOOD + GOOD.split("version = 1", 1)[1], "ops.toml")
    lower = GOOD.split("version = 1", 1)[1].replace("[regions.NL]", "[regions.nl]")
    with pytest.raises(CatalogueError, match=r"ops.toml: region NL: duplicate region code"):
        read_catalogue_text(GOOD + lower, "ops.toml")


def test_a_sandbox_replay_must_name_a_region_with_bundled_history():
    text = GOOD + 'sandbox = { replays = "DE_LU", shift_days = 7 }\n'
    with pytest.raises(CatalogueError, match=r"region NL, field sandbox.replays: 'DE_LU' is not a catalogue region"):
        read_catalogue_text(text, "ops.toml")


def test_settings_read_an_operators_catalogue_and_refuse_regions_it_lacks(tmp_path):
    own = tmp_path / "regions.toml"
    own.write_text(GOOD.replace('providers = ["entsoe"]', 'enabled = true\nproviders = ["entsoe"]'))
    settings = Settings.from_env({"EOPT_REGION_CATALOGUE": str(own)})
    assert settings.regions == ("NL",) and settings.catalogue.source == str(own)
    assert Settings.from_env({"EOPT_REGIONS": "nl,de_lu"}).regions == ("NL", "DE_LU")  # the bundled catalogue
    with pytest.raises(SettingsError, match=r"EOPT_REGIONS names NP, not in the region catalogue .*regions.toml"):
        Settings.from_env({"EOPT_REGION_CATALOGUE": str(own), "EOPT_REGIONS": "NP"})
    own.write_text(GOOD.replace('"Europe/Amsterdam"', '"Europe/Nowhere"'))
    with pytest.raises(SettingsError, match=r"EOPT_REGION_CATALOGUE: .*regions.toml: region NL, field zone"):
        Settings.from_env({"EOPT_REGION_CATALOGUE": str(own)})
    with pytest.raises(SettingsError, match=r"EOPT_REGION_CATALOGUE: region catalogue .*missing.toml not found"):
        Settings.from_env({"EOPT_REGION_CATALOGUE": str(tmp_path / "missing.toml")})
    assert Settings.from_env().region_catalogue == BUNDLED_CATALOGUE


def test_one_bidding_zone_is_one_region():
    second = GOOD.split("version = 1", 1)[1].replace("[regions.NL]", "[regions.NL_COPY]")
    with pytest.raises(CatalogueError, match=r"region NL_COPY, field ids.entsoe: 10YNL----------L is also region NL's"):
        read_catalogue_text(GOOD + second, "ops.toml")
