"""ENTSO-E day-ahead exogenous forecasts: the total load forecast (A65) and the wind and solar
forecast (A69), parsed from real recorded answers (tests/fixtures/pricing_apis/entsoe/a65_*, a69_*;
provenance in SOURCES_EXOGENOUS.md there), spoken by the sandbox, and stored by the ingestion cycle.

Every expected number below was read by hand from the fixture's XML (position p of a Period that
starts at S with step d is the instant S + (p - 1) d)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from core.regions import load_catalogue
from core.settings import Settings
from ingestion.aggregate import aggregate_exogenous_hourly
from ingestion.http import HttpTransport, NoData, PayloadError, ProviderConfig, RetryPolicy
from ingestion.pipeline import aggregate_exogenous_step
from ingestion.sources import EXOGENOUS_SOURCE_COLUMNS
from ingestion.sources.entsoe import (
    CONNECTION_ID,
    LOAD_VARIABLE,
    WIND_SOLAR_VARIABLE,
    Client,
    parse_a65,
    parse_a69,
)
from pipelines.electricity_price_ingestion import run_cycle
from storage.cache import PriceCache
from storage.health import ApiHealthStore, QuarantineStore
from storage.prices import PriceStore
from tests.conftest import FIXTURES

# the region catalogue's ids of the enabled regions (what the product configures)
DEFAULT_REGIONS: dict[str, object] = load_catalogue().provider_ids("entsoe")

ENTSOE = FIXTURES / "entsoe"
BE, NL, CZ = "10YBE----------2", "10YNL----------L", "10YCZ-CEPS-----N"
TOKEN = "sandbox-entsoe-token"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def fixture(name: str) -> bytes:
    return (ENTSOE / name).read_bytes()


def value_at(rows: pd.DataFrame, ts: str) -> float:
    [value] = rows.loc[rows["ts"] == utc(ts), "value"].tolist()
    return value


def hourly(rows: pd.DataFrame) -> pd.DataFrame:
    aggregated = aggregate_exogenous_hourly(rows)
    assert aggregated.rejected.empty
    return aggregated.hourly


# -- the real recorded answers ------------------------------------------------------------------------


def test_a65_nl__96_quarter_hours_of_one_cest_delivery_day_become_24_hourly_means():
    rows = parse_a65(fixture("a65_NL_2024-09-02_PT15M.xml"), "NL", NL)

    assert list(rows.columns) == list(EXOGENOUS_SOURCE_COLUMNS)
    assert len(rows) == 96 and set(rows["resolution"]) == {"PT15M"} and set(rows["variable"]) == {LOAD_VARIABLE}
    # the covered interval 2024-09-01T22:00Z -> 2024-09-02T22:00Z: position 1 .. position 96
    assert rows["ts"].iloc[0] == utc("2024-09-01 22:00") and rows["value"].iloc[0] == 11120.58
    assert rows["ts"].iloc[-1] == utc("2024-09-02 21:45") and rows["value"].iloc[-1] == 11663.96
    assert (rows["value"].min(), rows["value"].max()) == (8242.11, 13217.85)

    hours = hourly(rows)
    assert len(hours) == 24 and hours["ts"].iloc[0] == utc("2024-09-01 22:00")
    # positions 1-4: 11120.58, 11057.6, 10951.84, 10848.39; positions 93-96: 12118.89 .. 11663.96
    assert hours["value"].iloc[0] == pytest.approx((11120.58 + 11057.6 + 10951.84 + 10848.39) / 4)
    assert hours["value"].iloc[0] == pytest.approx(10994.6025)
    assert hours["value"].iloc[-1] == pytest.approx((12118.89 + 12012.84 + 11825.99 + 11663.96) / 4)
    # the local (Amsterdam) delivery day 2024-09-02 is the 24 hours from 00:00 CEST
    assert hours["ts"].iloc[0].tz_convert("Europe/Amsterdam") == pd.Timestamp("2024-09-02", tz="Europe/Amsterdam")


def test_a65_be__one_period_spanning_seven_days_gives_672_quarter_hours():
    rows = parse_a65(fixture("a65_BE_2024-01-15_PT15M_7d.xml"), "BE", BE)

    assert len(rows) == 672 and rows["ts"].diff().dropna().eq(pd.Timedelta(minutes=15)).all()
    assert rows["ts"].iloc[0] == utc("2024-01-14 23:00") and rows["value"].iloc[0] == 9317.99
    assert rows["ts"].iloc[-1] == utc("2024-01-21 22:45") and rows["value"].iloc[-1] == 9542.33
    assert (rows["value"].min(), rows["value"].max()) == (8442.9, 12913.89)
    hours = hourly(rows)
    assert len(hours) == 7 * 24
    assert hours["value"].iloc[0] == pytest.approx((9317.99 + 9211.25 + 9124.12 + 9012.66) / 4)
    assert hours["value"].iloc[-1] == pytest.approx(rows["value"].iloc[-4:].mean())


def test_a65_cz__the_document_covers_the_requested_utc_interval_not_a_local_day():
    rows = parse_a65(fixture("a65_CZ_2023-08-14_PT60M_72h.xml"), "CZ", CZ)

    assert len(rows) == 72 and set(rows["resolution"]) == {"PT60M"}
    assert rows["ts"].iloc[0] == utc("2023-08-14 00:00") and rows["value"].iloc[0] == 4933
    assert rows["ts"].iloc[-1] == utc("2023-08-16 23:00") and rows["value"].iloc[-1] == 5446
    # requested 2023-08-14T00:00Z .. 2023-08-17T00:00Z: it begins at 02:00 in Prague, not at midnight
    assert rows["ts"].iloc[0].tz_convert("Europe/Prague").hour == 2
    assert hourly(rows)["value"].tolist() == rows["value"].tolist()  # hourly already: unchanged


def test_a69_be_b16__omitted_positions_repeat_the_previous_value_up_to_the_period_end():
    rows = parse_a69(fixture("a69_BE_2023-08-16_PT60M_B16.xml"), "BE", BE)

    assert len(rows) == 24 and set(rows["variable"]) == {WIND_SOLAR_VARIABLE}
    # 18 points present: position 1 is 0, 2-6 are left out (night), 24 is left out (repeats 23 = 0)
    assert [value_at(rows, f"2023-08-{d} {h:02d}:00") for d, h in [("15", 23), ("16", 0), ("16", 3)]] == [0, 0, 0]
    assert value_at(rows, "2023-08-16 04:00") == 17.2475  # position 7
    assert value_at(rows, "2023-08-16 10:00") == 4028.73  # position 13, the day's peak
    assert rows["ts"].iloc[-1] == utc("2023-08-16 21:00") and rows["value"].iloc[-1] == 0  # position 24 <- 23


def test_a69_nl__solar_wind_offshore_and_onshore_are_summed_per_quarter_hour_after_the_a03_fill():
    rows = parse_a69(fixture("a69_NL_2024-09-02_PT15M.xml"), "NL", NL)

    assert len(rows) == 96 and set(rows["resolution"]) == {"PT15M"}
    # position 1: B16 0 + B18 717 + B19 1842
    assert value_at(rows, "2024-09-01 22:00") == 0 + 717 + 1842
    # position 47: B16 2558 + B18 93 + B19 left out, so position 46's 237
    assert value_at(rows, "2024-09-02 09:30") == 2558 + 93 + 237
    # position 63: B16 3416 + B18 left out, so position 62's 142 + B19 256
    assert value_at(rows, "2024-09-02 13:30") == 3416 + 142 + 256
    # position 86: B16 left out after 85's 2 + B18 102 + B19 163
    assert value_at(rows, "2024-09-02 19:15") == 2 + 102 + 163
    # position 96: B16's last point is 87 (0), repeated to the period's end + B18 96 + B19 36
    assert value_at(rows, "2024-09-02 21:45") == 0 + 96 + 36
    first_hour = hourly(rows).iloc[0]
    assert first_hour["ts"] == utc("2024-09-01 22:00")
    assert first_hour["value"] == pytest.approx((2559 + (683 + 1787) + (659 + 1735) + (634 + 1684)) / 4)


def test_a65__legacy_layout_with_one_a01_timeseries_per_day_is_read_too():
    def day(start: str, end: str, first: int) -> str:
        points = "".join(
            f"<Point><position>{p}</position><quantity>{first + p}</quantity></Point>" for p in range(1, 25)
        )
        return (
            "<TimeSeries><mRID>1</mRID><businessType>A04</businessType>"
            f'<outBiddingZone_Domain.mRID codingScheme="A01">{BE}</outBiddingZone_Domain.mRID>'
            "<quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name><curveType>A01</curveType>"
            f"<Period><timeInterval><start>{start}</start><end>{end}</end></timeInterval>"
            f"<resolution>PT60M</resolution>{points}</Period></TimeSeries>"
        )

    body = gl_document(
        "A65", day("2023-12-27T23:00Z", "2023-12-28T23:00Z", 1000), day("2023-12-28T23:00Z", "2023-12-29T23:00Z", 2000)
    )
    rows = parse_a65(body, "BE", BE)
    assert len(rows) == 48 and rows["value"].iloc[[0, 23, 24, 47]].tolist() == [1001, 1024, 2001, 2024]


def gl_document(document: str, *series: str, process: str = "A01") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<GL_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0">'
        f"<mRID>x</mRID><type>{document}</type><process.processType>{process}</process.processType>"
        f"{''.join(series)}</GL_MarketDocument>"
    ).encode()


NL_LOAD = fixture("a65_NL_2024-09-02_PT15M.xml").decode()
NL_WIND_SOLAR = fixture("a69_NL_2024-09-02_PT15M.xml").decode()


@pytest.mark.parametrize(
    ("parse", "body", "message"),
    [
        (parse_a65, NL_LOAD[: len(NL_LOAD) // 2], "region NL: body is not well-formed XML"),
        (parse_a65, "", "empty body where an A65 XML document was expected"),
        (
            parse_a65,
            NL_LOAD.replace("<process.processType>A01", "<process.processType>A40"),
            "A65 process type is 'A40', expected A01",
        ),
        (parse_a65, NL_LOAD.replace("<type>A65", "<type>A69"), "document type is 'A69', expected A65"),
        (parse_a65, NL_LOAD.replace(">MAW<", ">KWH<"), "quantity_Measure_Unit.name 'KWH'; only MAW"),
        (
            parse_a65,
            NL_LOAD.replace("<quantity>11057.6</quantity>", "<quantity>n/a</quantity>"),
            "position 2: quantity 'n/a' is not a number",
        ),
        (parse_a65, NL_LOAD.replace(NL, BE), f"outBiddingZone_Domain.mRID is {BE}, but {NL} was requested"),
        (parse_a69, NL_WIND_SOLAR.replace("<psrType>B18", "<psrType>B14"), "psrType 'B14'; an A69 answer holds"),
        (
            parse_a69,
            NL_WIND_SOLAR.replace("<start>2024-09-01T22:00Z</start>", "<start>2024-09-01T21:00Z</start>", 2).replace(
                "<end>2024-09-02T22:00Z</end>", "<end>2024-09-02T21:00Z</end>", 2
            ),
            "are not on one time grid",
        ),
        (parse_a69, fixture("a44_NL_2025-09-17_PT60M_A03.xml").decode(), "unexpected root element <Publication_Market"),
    ],
)
def test_parse__a_bad_body_is_a_payload_error_naming_region_document_and_what(parse, body, message):
    eic = NL
    with pytest.raises(PayloadError, match=message):
        parse(body, "NL", eic)


def test_parse__no_matching_data_acknowledgement_is_no_data():
    with pytest.raises(NoData, match="no day-ahead total load forecast for region BE: No matching data found"):
        parse_a65(fixture("acknowledgement_999_no_data_2025-04-04.xml"), "BE", BE)


# -- the sandbox and the client ------------------------------------------------------------------------


def make_client(sandbox, tmp_path: Path) -> tuple[Client, HttpTransport]:
    config = ProviderConfig(
        source="entsoe",
        base_url=f"{sandbox.url}/entsoe",
        connection_id=CONNECTION_ID,
        api_key=TOKEN,
        regions=dict(DEFAULT_REGIONS),
        requests_per_minute=0,
        retry=RetryPolicy(max_attempts=2, backoff_base_s=0.01),
    )
    transport = HttpTransport(config, archive_dir=tmp_path, rng=random.Random(7))
    return Client(config, transport), transport


def test_sandbox__answers_a65_and_a69_in_the_real_format_for_the_requested_interval(sandbox):
    common = {"securityToken": TOKEN, "processType": "A01", "periodStart": "202409012200", "periodEnd": "202409022200"}
    load = requests.get(
        f"{sandbox.url}/entsoe/api", params={**common, "documentType": "A65", "outBiddingZone_Domain": BE}, timeout=30
    )
    wind = requests.get(
        f"{sandbox.url}/entsoe/api", params={**common, "documentType": "A69", "in_Domain": BE}, timeout=30
    )

    assert load.status_code == wind.status_code == 200
    assert b"<GL_MarketDocument" in load.content and b"<type>A65</type>" in load.content
    assert b"<curveType>A03</curveType>" in load.content and b"<resolution>PT60M</resolution>" in load.content
    assert b"<psrType>B19</psrType>" in wind.content and b"<inBiddingZone_Domain.mRID" in wind.content
    rows = parse_a65(load.content, "BE", BE)
    assert rows["ts"].iloc[0] == utc("2024-09-01 22:00") and rows["ts"].iloc[-1] == utc("2024-09-02 21:00")
    expected = sandbox.history.exogenous("BE", LOAD_VARIABLE, utc("2024-09-01 22:00"), utc("2024-09-02 22:00"))
    np.testing.assert_allclose(rows["value"], expected.round(2))
    wind_rows = parse_a69(wind.content, "BE", BE)
    expected_wind = sandbox.history.exogenous(
        "NP", "wind_power_forecast", utc("2024-09-01 22:00"), utc("2024-09-02 22:00")
    )
    np.testing.assert_allclose(wind_rows["value"], expected_wind.round(2))
    assert expected_wind.std() > 0 and expected.std() > 0


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ({"psrType": "B16"}, 200, "No matching data found for Data item WIND_AND_SOLAR_FORECAST"),
        ({"processType": "A40"}, 200, "No matching data found"),
        ({"in_Domain": None}, 400, "Mandatory parameter(s) in_Domain missing"),
        ({"psrType": "B99"}, 400, "psrType 'B99' is not valid"),
        ({"periodEnd": "202510022200"}, 400, "exceeds the allowed maximum of 1 year"),
    ],
)
def test_sandbox__a69_no_data_and_bad_parameters(sandbox, change, status, text):
    params = {
        "securityToken": TOKEN,
        "documentType": "A69",
        "processType": "A01",
        "in_Domain": BE,
        "periodStart": "202409012200",
        "periodEnd": "202409022200",
    }
    params = {k: v for k, v in {**params, **change}.items() if v is not None}
    answer = requests.get(f"{sandbox.url}/entsoe/api", params=params, timeout=30)
    assert answer.status_code == status and text in answer.text


def test_client__asks_for_the_real_parameters_and_keeps_exactly_the_window(sandbox, tmp_path):
    client, transport = make_client(sandbox, tmp_path)
    start, end = utc("2025-11-05 10:30"), utc("2025-11-05 13:00")

    load = client.fetch_load_forecast("FR", start, end)
    wind = client.fetch_wind_solar_forecast("FR", start, end)

    assert [(c.endpoint, c.status, c.records) for c in transport.calls] == [
        ("/api A65", "ok", 12),  # 10:00-13:00 asked (whole hours), quarter-hours since 2025-10-01
        ("/api A69", "ok", 12),
    ]
    assert load["ts"].iloc[0] == start and load["ts"].iloc[-1] == utc("2025-11-05 12:45") and len(load) == 10
    assert len(wind) == 10 and set(wind["variable"]) == {WIND_SOLAR_VARIABLE}


@pytest.mark.parametrize(
    ("local_day", "hours", "slots"),
    [("2016-03-27", 23, 23), ("2016-10-30", 25, 25), ("2026-03-29", 23, 92), ("2025-10-26", 25, 100)],
)
def test_client__dst_change_days_in_brussels_have_their_real_number_of_hourly_means(
    sandbox, tmp_path, local_day, hours, slots
):
    client, _ = make_client(sandbox, tmp_path)
    start = pd.Timestamp(local_day, tz="Europe/Brussels").tz_convert("UTC")
    end = (pd.Timestamp(local_day, tz="Europe/Brussels") + pd.DateOffset(days=1)).tz_convert("UTC")

    rows = client.fetch_load_forecast("BE", start, end)
    means = hourly(rows)

    assert len(rows) == slots and len(means) == hours
    assert means["ts"].diff().dropna().eq(pd.Timedelta(hours=1)).all()
    assert means["ts"].iloc[0] == start and means["ts"].iloc[-1] == end - pd.Timedelta(hours=1)
    expected = sandbox.history.exogenous("BE", LOAD_VARIABLE, start, end).round(2)
    np.testing.assert_allclose(means["value"], expected)


def test_aggregate__an_incomplete_hour_of_a_forecast_is_quarantined_naming_the_variable(store):
    rows = parse_a65(fixture("a65_NL_2024-09-02_PT15M.xml"), "NL", NL).iloc[1:]  # 22:00 lost its first quarter

    hourly_rows, quarantined = aggregate_exogenous_step(rows, QuarantineStore(store.engine))

    assert len(hourly_rows) == 23 and hourly_rows["ts"].iloc[0] == utc("2024-09-01 23:00")
    assert quarantined == 3
    reasons = set(QuarantineStore(store.engine).read(source="entsoe")["reason"])
    assert reasons == {"exogenous system_load_forecast: incomplete hour: 3 of 4 slots"}


# -- the ingestion cycle stores them ----------------------------------------------------------------


def cycle_settings(sandbox, tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "EOPT_HOME": str(tmp_path / "eopt"),
            "EOPT_PRICING_SANDBOX_URL": sandbox.url,
            "EOPT_INGESTION_SOURCES": "entsoe",
            "EOPT_PROVIDER_MAX_ATTEMPTS": "2",
        }
    )


def cycle_cache(settings: Settings, redis_url: str) -> PriceCache:
    return PriceCache.from_url(
        redis_url,
        ttl_prices_s=settings.stores.cache_ttl_prices_s,
        ttl_forecasts_s=settings.stores.cache_ttl_forecasts_s,
    )


def exogenous_rows(store: PriceStore) -> pd.DataFrame:
    return pd.read_sql("SELECT region, source, ts, variable, value FROM market_exogenous", store.engine)


def test_cycle__stores_both_forecasts_hourly_per_region_and_a_rerun_changes_nothing(
    sandbox, tmp_path, store, redis_url
):
    settings = cycle_settings(sandbox, tmp_path)
    cache = cycle_cache(settings, redis_url)
    run_time = utc("2026-03-29 12:10")  # the cycle window [11:00Z the day before, 12:00Z the day after)

    first = run_cycle(settings, run_time, store, cache)

    assert first.failures == {} and first.fetched_exogenous == {"entsoe": 2 * 2 * 48 * 4}  # quarter-hours
    assert first.stored["exogenous"] == {"inserted": 2 * 2 * 48, "updated": 0, "unchanged": 0}
    stored = exogenous_rows(store)
    assert set(stored["source"]) == {"entsoe"}
    assert stored.groupby(["region", "variable"]).size().to_dict() == {
        ("BE", LOAD_VARIABLE): 48,
        ("BE", WIND_SOLAR_VARIABLE): 48,
        ("FR", LOAD_VARIABLE): 48,
        ("FR", WIND_SOLAR_VARIABLE): 48,
    }
    start, end = utc("2026-03-28 12:00"), utc("2026-03-30 12:00")
    wide = store.read_exogenous("FR", start, end)
    assert wide.index[0] == start and len(wide) == 48  # across Paris' spring-forward night
    np.testing.assert_allclose(wide[LOAD_VARIABLE], sandbox.history.exogenous("FR", LOAD_VARIABLE, start, end).round(2))
    np.testing.assert_allclose(
        wide[WIND_SOLAR_VARIABLE], sandbox.history.exogenous("NP", "wind_power_forecast", start, end).round(2)
    )
    health = ApiHealthStore(store.engine).read()
    assert health.groupby("endpoint")["status"].apply(set).to_dict() == {
        "/api": {"ok"},
        "/api A65": {"ok"},
        "/api A69": {"ok"},
    }

    second = run_cycle(settings, run_time, store, cache)
    assert second.stored["exogenous"] == {"inserted": 0, "updated": 0, "unchanged": 192}
    assert len(exogenous_rows(store)) == 192


def test_cycle__a_malformed_forecast_is_archived_and_quarantined_and_the_prices_are_kept(
    sandbox, tmp_path, store, redis_url
):
    settings = cycle_settings(sandbox, tmp_path)
    run_time = utc("2016-06-01 12:00")
    calls = []

    def cut_forecasts(request):  # the sandbox's own malformed fault, on the forecast requests only
        calls.append(request.query.get("documentType"))
        return "malformed" if request.query.get("documentType") in ("A65", "A69") else None

    sandbox.apps["entsoe"] = FaultyForecasts(sandbox.apps["entsoe"], cut_forecasts)

    report = run_cycle(settings, run_time, store, cycle_cache(settings, redis_url))

    assert report.stored["inserted"] == 2 * 48 and report.stored["exogenous"]["inserted"] == 0
    assert len(report.failures["entsoe"]) == 4
    assert any(
        "BE: A65 day-ahead total load forecast: " in f and "not well-formed XML" in f for f in report.failures["entsoe"]
    )
    quarantined = QuarantineStore(store.engine).read(source="entsoe")
    assert len(quarantined) == 4 and set(quarantined["region"]) == {"BE", "FR"}
    for ref in quarantined["payload_ref"]:
        body = Path(ref).read_bytes()
        assert b"<GL_MarketDocument" in body and b"</GL_MarketDocument>" not in body
    health = ApiHealthStore(store.engine).read()
    errors = health[health["status"] == "error"]
    assert sorted(errors["endpoint"]) == ["/api A65", "/api A65", "/api A69", "/api A69"]
    assert exogenous_rows(store).empty
    assert sorted(calls) == ["A44", "A44", "A65", "A65", "A69", "A69"]


class FaultyForecasts:
    """The sandbox's ENTSO-E app, with its answers cut in half where ``fault(request)`` says so."""

    name = "entsoe"

    def __init__(self, app, fault) -> None:
        self.app, self.fault = app, fault

    def handle(self, request):
        response = self.app.handle(request)
        if self.fault(request) == "malformed":
            response.body = response.body[: len(response.body) // 2]
        return response

    def error(self, status: int, message: str):
        return self.app.error(status, message)


def test_read_exogenous__entsoe_stands_before_the_bundled_history_for_the_same_hour(store):
    ts = utc("2016-06-01 10:00")
    rows = pd.DataFrame(
        {
            "region": "BE",
            "source": ["epf-history", "entsoe", "epf-history"],
            "ts": [ts, ts, ts + pd.Timedelta(hours=1)],
            "variable": LOAD_VARIABLE,
            "value": [1.0, 2.0, 3.0],
        }
    )
    store.upsert_history(None, rows)
    assert store.read_exogenous("BE")[LOAD_VARIABLE].tolist() == [2.0, 3.0]
