"""`eopt regions list|add` in process (`check` against the sandbox is in test_new_zone.py)."""

from __future__ import annotations

from click.testing import CliRunner

from core.regions import BUNDLED_CATALOGUE, load_catalogue
from eopt.cli import cli


def _run(tmp_path, *args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env={"EOPT_HOME": str(tmp_path), "EOPT_LOG_LEVEL": "WARNING", **env})


def test_list__shows_the_configured_regions_and_with_all_the_whole_catalogue(tmp_path):
    shown = _run(tmp_path, "regions", "list", EOPT_REGIONS="BE,DE_LU")
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if " | " in line]
    assert [line.split()[1] for line in lines] == ["BE", "DE_LU"]
    assert (
        "Europe/Berlin | EUR | holidays DE | history - | exogenous system_load_forecast, wind_solar_forecast"
        in (lines[1])
    )
    assert "entsoe=10Y1001A1001A82H" in lines[1] and "flatpeak=loc_BE, iea=BEL, entsoe=10YBE----------2" in lines[0]
    everything = _run(tmp_path, "regions", "list", "--all")
    assert "48 region(s)" in everything.output
    assert sum(" | " in line for line in everything.output.splitlines()) == 48


def test_add__writes_a_validated_entry_the_settings_then_read(tmp_path):
    own = tmp_path / "regions.toml"
    added = _run(
        tmp_path,
        "regions",
        "add",
        "pl_south",
        "--name",
        "Poland south (test)",
        "--zone",
        "Europe/Warsaw",
        "--currency",
        "PLN",
        "--holiday-country",
        "PL",
        "--provider",
        "iea=POL",
        "--published-at",
        "12:30",
        "--catalogue",
        str(own),
    )
    assert added.exit_code == 0, added.output
    catalogue = load_catalogue(own)
    region = catalogue.get("PL_SOUTH")
    assert (region.zone, region.currency, region.published_at, region.ids.iea) == (
        "Europe/Warsaw",
        "PLN",
        "12:30",
        "POL",
    )
    assert len(catalogue.regions) == len(load_catalogue().regions) + 1  # the bundled entries, copied first
    listed = _run(tmp_path, "regions", "list", EOPT_REGION_CATALOGUE=str(own), EOPT_REGIONS="PL_SOUTH")
    assert "PL_SOUTH" in listed.output and "iea=POL" in listed.output

    again = _run(
        tmp_path,
        "regions",
        "add",
        "PL_SOUTH",
        "--name",
        "x",
        "--zone",
        "Europe/Warsaw",
        "--holiday-country",
        "PL",
        "--catalogue",
        str(own),
    )
    assert again.exit_code == 2 and "region PL_SOUTH: duplicate region code" in again.output
    assert load_catalogue(own).get("PL_SOUTH").name == "Poland south (test)"  # the file is unchanged


def test_add__a_bad_entry_names_each_field_and_writes_nothing(tmp_path):
    own = tmp_path / "regions.toml"
    refused = _run(
        tmp_path,
        "regions",
        "add",
        "XA",
        "--name",
        "x",
        "--zone",
        "Europe/Atlantis",
        "--holiday-country",
        "QQ",
        "--provider",
        "entsoe=10YNL----------X",
        "--catalogue",
        str(own),
    )
    assert refused.exit_code == 2
    assert "region XA, field zone: unknown IANA time zone 'Europe/Atlantis'" in refused.output
    assert "region XA, field holidays: unknown holiday country 'QQ'" in refused.output
    assert "field ids.entsoe: EIC code '10YNL----------X' ends in 'X' but its check character is 'L'" in refused.output
    assert not own.exists()
    bundled = _run(
        tmp_path,
        "regions",
        "add",
        "XB",
        "--name",
        "x",
        "--zone",
        "Europe/Paris",
        "--holiday-country",
        "FR",
    )
    assert bundled.exit_code == 2 and "point EOPT_REGION_CATALOGUE (or --catalogue) at your own file" in bundled.output
    assert "[regions.XB]" not in BUNDLED_CATALOGUE.read_text()


def test_check__calls_each_provider_once_and_says_what_training_needs(tmp_path, sandbox):
    from ingestion.sandbox.server import Fault

    env = {"EOPT_PRICING_SANDBOX_URL": sandbox.url, "EOPT_INGESTION_SOURCES": "entsoe,iea"}
    assert _run(tmp_path, "db", "upgrade", **env).exit_code == 0
    sandbox.set_faults({"iea": Fault("500")})
    checked = _run(tmp_path, "regions", "check", "be", "--as-of", "2016-06-01", **env)
    assert checked.exit_code == 1, checked.output
    assert "provider flatpeak: not called (not in EOPT_INGESTION_SOURCES)" in checked.output
    assert "provider iea: failed (" in checked.output and "500" in checked.output
    assert "provider entsoe: ok (3 call(s)" in checked.output  # A44 prices, A65 load, A69 wind and solar
    assert (
        "no prices stored for BE: backfill 730 days" in checked.output
        and "eopt load-history --region BE" in checked.output
    )
    assert "stored prices: none" in checked.output
    assert sandbox.stats["entsoe"] == 3 and sandbox.stats["flatpeak"] == 0  # the hour before --as-of, once each
    unknown = _run(tmp_path, "regions", "check", "XX", **env)
    assert unknown.exit_code == 2 and "unknown region 'XX'" in unknown.output
