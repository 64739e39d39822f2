"""ENTSO-E A44 day-ahead prices: the parser on real answers and broken ones, the client against the sandbox."""

from __future__ import annotations

import itertools
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from core.regions import load_catalogue
from ingestion.http import AuthError, HttpTransport, NoData, PayloadError, ProviderConfig, ProviderError, RetryPolicy
from ingestion.sandbox.entsoe import RATE_LIMIT_TEXT
from ingestion.sandbox.server import Fault
from ingestion.sources import SOURCE_COLUMNS
from ingestion.sources.entsoe import (
    CONNECTION_ID,
    DEFAULT_BASE_URL,
    REQUESTS_PER_MINUTE,
    Client,
    parse_a44,
    request_windows,
)
from tests.conftest import FIXTURES

# the region catalogue's ids of the enabled regions (what the product configures)
DEFAULT_REGIONS: dict[str, object] = load_catalogue().provider_ids("entsoe")

ENTSOE = FIXTURES / "entsoe"
BE = "10YBE----------2"
PUB_NS = "urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3"
UTC = "UTC"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


# -- synthetic documents for the shapes no captured fixture shows ---------------------------------


def period(start: str, end: str, resolution: str, points: dict[int, str]) -> str:
    body = "".join(
        f"<Point><position>{p}</position><price.amount>{v}</price.amount></Point>" for p, v in points.items()
    )
    return (
        f"<Period><timeInterval><start>{start}</start><end>{end}</end></timeInterval>"
        f"<resolution>{resolution}</resolution>{body}</Period>"
    )


def series(*periods: str, curve: str = "A03", eic: str = BE, unit: str = "MWH", sequence: str | None = None) -> str:
    seq = (
        (
            f"<classificationSequence_AttributeInstanceComponent.position>{sequence}"
            "</classificationSequence_AttributeInstanceComponent.position>"
        )
        if sequence
        else ""
    )
    return (
        f"<TimeSeries><mRID>1</mRID><businessType>A62</businessType>"
        f'<in_Domain.mRID codingScheme="A01">{eic}</in_Domain.mRID><out_Domain.mRID codingScheme="A01">{eic}</out_Domain.mRID>'
        f"<currency_Unit.name>EUR</currency_Unit.name><price_Measure_Unit.name>{unit}</price_Measure_Unit.name>"
        f"{seq}<curveType>{curve}</curveType>{''.join(periods)}</TimeSeries>"
    )


def document(*timeseries: str, ns: str = PUB_NS) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><Publication_MarketDocument xmlns="{ns}">'
        f"<mRID>x</mRID><type>A44</type>{''.join(timeseries)}</Publication_MarketDocument>"
    ).encode()


def hours(values: list[float]) -> dict[int, str]:
    return {i: f"{v:g}" for i, v in enumerate(values, start=1)}


NL_FIXTURE = (ENTSOE / "a44_NL_2025-09-17_PT60M_A03.xml").read_bytes()


# -- parsing the real fixtures ----------------------------------------------------------------------


def test_parse__nl_fixture_gives_24_hourly_rows_in_eur_per_mwh():
    rows = parse_a44(NL_FIXTURE, "NL", "10YNL----------L")

    assert list(rows.columns) == list(SOURCE_COLUMNS)
    assert str(rows["ts"].dtype) == "datetime64[us, UTC]"
    assert len(rows) == 24
    assert rows["ts"].iloc[0] == utc("2025-09-16 22:00") and rows["price"].iloc[0] == 74.78
    assert rows["ts"].iloc[-1] == utc("2025-09-17 21:00") and rows["price"].iloc[-1] == 71.43
    assert rows["price"].iloc[3] == 53.0 and rows["price"].iloc[11] == 100.0
    assert (rows["ts"].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert set(rows["unit"]) == {"MWh"} and set(rows["currency"]) == {"EUR"} and set(rows["resolution"]) == {"PT60M"}
    assert set(rows["region"]) == {"NL"} and set(rows["source"]) == {"entsoe"}


def test_parse__a03_gap_in_no2_fixture_is_forward_filled():
    rows = parse_a44((ENTSOE / "a44_NO2_2024-10-06_A03_gap_secondhand.xml").read_bytes(), "NO2")

    assert len(rows) == 24  # position 7 is absent from the XML
    by_ts = rows.set_index("ts")["price"]
    assert by_ts[utc("2024-10-06 03:00")] == 47.73  # position 6
    assert by_ts[utc("2024-10-06 04:00")] == 47.73  # position 7, repeated from 6
    assert by_ts[utc("2024-10-06 05:00")] == 48.22  # position 8
    assert rows["ts"].iloc[0] == utc("2024-10-05 22:00") and rows["ts"].iloc[-1] == utc("2024-10-06 21:00")


def test_parse__acknowledgement_999_no_matching_data_is_no_data():
    with pytest.raises(NoData, match="region BE: No matching data found for Data item ENERGY_PRICES"):
        parse_a44((ENTSOE / "acknowledgement_999_no_data_2025-04-04.xml").read_bytes(), "BE")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("999", "The number of instances (365) exceeds the allowed maximum (100) for data item ENERGY_PRICES."),
        ("A02", "Message fully rejected"),
    ],
)
def test_parse__any_other_acknowledgement_is_a_payload_error_quoting_its_text(code, text):
    body = (ENTSOE / "acknowledgement_999_no_data_2025-04-04.xml").read_text()
    body = body.replace("<code>999</code>", f"<code>{code}</code>")
    body = body.replace(body[body.index("<text>") + 6 : body.index("</text>")], text)

    with pytest.raises(PayloadError, match=re.escape(f"ENTSO-E refused the request (Reason {code}: {text})")):
        parse_a44(body, "BE")


def test_parse__namespace_version_7_0_is_read_like_7_3():
    old = NL_FIXTURE.replace(b"publicationdocument:7:3", b"publicationdocument:7:0")

    pd.testing.assert_frame_equal(parse_a44(old, "NL"), parse_a44(NL_FIXTURE, "NL"))


def test_parse__equal_duplicate_points_and_periods_are_dropped():
    day = period("2025-09-16T22:00Z", "2025-09-17T22:00Z", "PT60M", {1: "10", 2: "11", 24: "12"})
    day = day.replace("</Period>", "<Point><position>2</position><price.amount>11.0</price.amount></Point></Period>")
    doubled = document(series(day), series(day))  # a point given twice, and the same day in two TimeSeries

    rows = parse_a44(doubled, "BE")

    assert len(rows) == 24
    assert rows["price"].tolist() == [10.0] + [11.0] * 22 + [12.0]


BAD_BODIES = {
    "truncated XML": (NL_FIXTURE[: len(NL_FIXTURE) // 2], "not well-formed XML"),
    "empty body": (b"", "empty body"),
    "unknown namespace": (
        NL_FIXTURE.replace(PUB_NS.encode(), b"urn:example:prices:1:0"),
        "unexpected root element <Publication_MarketDocument> in namespace urn:example:prices:1:0",
    ),
    "no namespace": (NL_FIXTURE.replace(f' xmlns="{PUB_NS}"'.encode(), b""), "in namespace \\(none\\)"),
    "HTML page": ((ENTSOE / "error_401_unauthorized_legacy.html").read_bytes(), "DOCTYPE"),
    "other document type": (NL_FIXTURE.replace(b"<type>A44</type>", b"<type>A65</type>"), "document type is 'A65'"),
    "Point without price.amount": (
        NL_FIXTURE.replace(b"<price.amount>97.8</price.amount>", b""),
        "Period #1: a Point without <price.amount>",
    ),
    "price.amount abc": (NL_FIXTURE.replace(b">97.8<", b">abc<"), "position 7: price.amount 'abc' is not a number"),
    "price.amount NaN": (NL_FIXTURE.replace(b">97.8<", b">NaN<"), "price.amount 'NaN' is not a number"),
    "conflicting duplicate point": (
        NL_FIXTURE.replace(
            b"<Point>\n                <position>24</position>",
            b"<Point><position>7</position><price.amount>1.5</price.amount></Point>"
            b"<Point>\n                <position>24</position>",
        ),
        "position 7 given twice with different prices \\(97.8 and 1.5\\)",
    ),
    "conflicting duplicate TimeSeries": (
        document(
            series(period("2025-09-16T22:00Z", "2025-09-17T22:00Z", "PT60M", {1: "10"})),
            series(period("2025-09-16T22:00Z", "2025-09-17T22:00Z", "PT60M", {1: "10", 5: "99"})),
        ),
        "conflicting prices for 2025-09-17T02:00Z: 10 \\(PT60M\\), 99 \\(PT60M\\)",
    ),
    "position beyond the period": (
        NL_FIXTURE.replace(b"<position>24</position>", b"<position>25</position>"),
        "position '25' outside 1..24",
    ),
    "A01 with a gap": (
        NL_FIXTURE.replace(b"<curveType>A03</curveType>", b"<curveType>A01</curveType>")
        .replace(b"<position>7</position>", b"<position>6</position>")
        .replace(b"<price.amount>97.8</price.amount>", b"<price.amount>81.26</price.amount>"),
        "curveType A01 must list all 24 positions; position 7 is missing",
    ),
    "A03 without position 1": (
        document(series(period("2025-09-16T22:00Z", "2025-09-17T22:00Z", "PT60M", {2: "1"}))),
        "no Point at position 1",
    ),
    "unknown unit": (NL_FIXTURE.replace(b">MWH<", b">KWH<"), "price_Measure_Unit.name 'KWH'; only MWH is known"),
    "unknown resolution": (NL_FIXTURE.replace(b">PT60M<", b">PT5M<"), "resolution 'PT5M'"),
    "interval not a whole number of steps": (
        NL_FIXTURE.replace(b"            <end>2025-09-17T22:00Z</end>", b"            <end>2025-09-17T22:30Z</end>"),
        "not a whole number of PT60M steps",
    ),
    "local time instead of UTC": (
        NL_FIXTURE.replace(
            b"            <start>2025-09-16T22:00Z</start>", b"            <start>2025-09-17T00:00+02:00</start>"
        ),
        "is not a UTC instant",
    ),
    "no TimeSeries": (document(), "without any TimeSeries"),
    "unknown curve type": (NL_FIXTURE.replace(b">A03<", b">A02<"), "curveType 'A02'"),
}


@pytest.mark.parametrize(("body", "message"), list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_parse__refuses_what_it_does_not_recognise(body, message):
    with pytest.raises(PayloadError, match=message) as caught:
        parse_a44(body, "BE")
    assert str(caught.value).startswith("entsoe: region BE")


def test_parse__answer_for_another_zone_is_refused():
    with pytest.raises(PayloadError, match=f"in_Domain.mRID is 10YNL----------L, but {BE} was requested"):
        parse_a44(NL_FIXTURE, "BE", BE)


@pytest.mark.parametrize(
    ("start", "end", "points"),
    [
        ("2025-11-04T23:00Z", "2025-11-05T23:00Z", 96),  # an ordinary day
        ("2026-03-28T23:00Z", "2026-03-29T22:00Z", 92),  # spring forward: 23 hours
        ("2025-10-25T22:00Z", "2025-10-26T23:00Z", 100),  # fall back: 25 hours
    ],
)
def test_parse__quarter_hour_a03_days_are_filled_to_the_period_end(start, end, points):
    given = {1: "50", 5: "40.5", points - 1: "-1.25"}  # A03: only the changes are listed
    rows = parse_a44(document(series(period(start, end, "PT15M", given))), "BE")

    assert len(rows) == points
    assert set(rows["resolution"]) == {"PT15M"}
    assert rows["ts"].iloc[0] == pd.Timestamp(start) and rows["ts"].iloc[-1] == pd.Timestamp(end) - pd.Timedelta(
        minutes=15
    )
    assert rows["price"].tolist() == [50.0] * 4 + [40.5] * (points - 6) + [-1.25] * 2


def test_parse__half_hour_periods_are_read():
    rows = parse_a44(
        document(series(period("2025-10-01T23:00Z", "2025-10-02T23:00Z", "PT30M", {1: "80", 48: "90"}))), "IE"
    )

    assert len(rows) == 48 and set(rows["resolution"]) == {"PT30M"}
    assert rows["ts"].iloc[1] == utc("2025-10-01 23:30") and rows["price"].iloc[-1] == 90.0


def test_parse__mixed_hourly_and_quarter_hour_periods_keep_their_own_resolution():
    hourly = period("2025-09-29T22:00Z", "2025-09-30T22:00Z", "PT60M", hours([float(h) for h in range(24)]))
    quarters = period("2025-09-30T22:00Z", "2025-10-01T22:00Z", "PT15M", {1: "7"})

    rows = parse_a44(document(series(hourly, quarters)), "BE")

    assert rows["resolution"].value_counts().to_dict() == {"PT15M": 96, "PT60M": 24}
    step = rows["ts"].diff().shift(-1).dropna()
    assert (
        step == rows["resolution"].iloc[:-1].map({"PT60M": pd.Timedelta(hours=1), "PT15M": pd.Timedelta(minutes=15)})
    ).all()


def test_parse__overlapping_hourly_and_quarter_hour_prices_are_refused():
    day = ("2025-09-29T22:00Z", "2025-09-30T22:00Z")
    body = document(series(period(*day, "PT60M", {1: "10"})), series(period(*day, "PT15M", {1: "10", 2: "12"})))

    with pytest.raises(PayloadError, match="overlapping points: 2025-09-29T22:00Z \\(PT15M\\) runs into"):
        parse_a44(body, "BE")


def test_parse__sdac_sequence_is_kept_when_exaa_is_published_too():
    # DE-LU before the 15-minute go-live: SDAC hourly as sequence 1, EXAA quarter-hourly as sequence 2.
    day = ("2024-10-05T22:00Z", "2024-10-06T22:00Z")
    body = document(
        series(period(*day, "PT60M", {1: "67.04"}), sequence="1"),
        series(period(*day, "PT15M", {1: "98.1"}), sequence="2"),
    )

    rows = parse_a44(body, "DE_LU")

    assert len(rows) == 24 and set(rows["resolution"]) == {"PT60M"} and set(rows["price"]) == {67.04}


def test_request_windows__cover_whole_brussels_days_in_blocks_of_at_most_100():
    windows = request_windows(utc("2025-01-15 10:30"), utc("2025-01-15 10:30") + pd.Timedelta(days=250))

    local_days = [
        (b.tz_convert("Europe/Brussels").date() - a.tz_convert("Europe/Brussels").date()).days for a, b in windows
    ]
    assert local_days == [100, 100, 51]
    assert windows[0][0] == utc("2025-01-14 23:00")  # Brussels midnight (CET) before 10:30 UTC
    assert windows[-1][1] == utc("2025-09-22 22:00")  # Brussels midnight (CEST) after the end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert request_windows(utc("2025-01-15"), utc("2025-01-15")) == []


# -- the client against the sandbox -----------------------------------------------------------------


class RecordingSession(requests.Session):
    """A real session that also remembers the query parameters it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, str]] = []

    def request(self, method, url, **kwargs):  # type: ignore[override]
        self.sent.append(dict(kwargs.get("params") or {}))
        return super().request(method, url, **kwargs)


def make_client(
    sandbox,
    tmp_path: Path,
    sleeps,
    *,
    retry: RetryPolicy | None = None,
    token: str | None = "default",
    regions: dict | None = None,
) -> tuple[Client, HttpTransport, RecordingSession]:
    config = ProviderConfig(
        source="entsoe",
        base_url=f"{sandbox.url}/entsoe",
        connection_id=CONNECTION_ID,
        api_key=sandbox.config.credentials["entsoe"]["token"] if token == "default" else token,
        regions=dict(DEFAULT_REGIONS if regions is None else regions),
        requests_per_minute=0,  # no client-side spacing, so `sleeps` holds only retry waits
        retry=retry or RetryPolicy(),
    )
    session = RecordingSession()
    transport = HttpTransport(config, archive_dir=tmp_path, sleep=sleeps, session=session, rng=random.Random(7))
    return Client(config, transport), transport, session


def history(sandbox, region: str, start: str, end: str) -> np.ndarray:
    return sandbox.history.hourly(region, utc(start), utc(end)).to_numpy()


def test_module_constants_name_the_real_api():
    assert DEFAULT_BASE_URL == "https://web-api.tp.entsoe.eu"
    assert CONNECTION_ID == "entsoe_default" and REQUESTS_PER_MINUTE == 400
    assert DEFAULT_REGIONS == {"BE": "10YBE----------2", "FR": "10YFR-RTE------C"}


def test_client__asks_for_whole_days_and_keeps_exactly_the_requested_window(sandbox, tmp_path, sleeps):
    client, transport, session = make_client(sandbox, tmp_path, sleeps)

    rows = client.fetch_prices("FR", utc("2025-09-17 10:00"), utc("2025-09-17 13:30"))

    assert session.sent == [
        {
            "securityToken": "sandbox-entsoe-token",
            "documentType": "A44",
            "in_Domain": "10YFR-RTE------C",
            "out_Domain": "10YFR-RTE------C",
            "periodStart": "202509162200",
            "periodEnd": "202509172200",  # the Paris delivery day, in UTC
            "contract_MarketAgreement.type": "A01",
        }
    ]
    assert rows["ts"].tolist() == [utc(f"2025-09-17 {h}:00") for h in (10, 11, 12, 13)]
    np.testing.assert_allclose(
        rows["price"], history(sandbox, "FR", "2025-09-17 10:00", "2025-09-17 14:00"), atol=0.005
    )
    assert [(c.endpoint, c.status, c.http_status, c.records) for c in transport.calls] == [("/api", "ok", 200, 24)]
    assert set(rows["currency"]) == {"EUR"} and set(rows["unit"]) == {"MWh"} and set(rows["resolution"]) == {"PT60M"}


@pytest.mark.parametrize(
    ("local_day", "points", "resolution"),
    [
        ("2016-06-01", 24, "PT60M"),
        ("2016-03-27", 23, "PT60M"),
        ("2016-10-30", 25, "PT60M"),  # hourly before the SDAC switch
        ("2025-11-05", 96, "PT15M"),
        ("2026-03-29", 92, "PT15M"),
        ("2025-10-26", 100, "PT15M"),  # quarter-hours after it
    ],
)
def test_client__dst_days_from_the_sandbox_have_their_real_number_of_points(
    sandbox, tmp_path, sleeps, local_day, points, resolution
):
    client, _, _ = make_client(sandbox, tmp_path, sleeps)
    start = pd.Timestamp(local_day, tz="Europe/Brussels").tz_convert(UTC)
    end = (pd.Timestamp(local_day, tz="Europe/Brussels") + pd.DateOffset(days=1)).tz_convert(UTC)
    slots_per_hour = 4 if resolution == "PT15M" else 1

    rows = client.fetch_prices("BE", start, end)

    assert len(rows) == points
    assert set(rows["resolution"]) == {resolution}
    assert (rows["ts"].diff().dropna() == pd.Timedelta(minutes=60 // slots_per_hour)).all()
    expected = np.repeat(sandbox.history.hourly("BE", start, end).to_numpy(), slots_per_hour)
    np.testing.assert_allclose(rows["price"], expected, atol=0.005)


def test_client__250_day_request_makes_3_calls_and_returns_a_gapless_series(sandbox, tmp_path, sleeps):
    client, transport, session = make_client(sandbox, tmp_path, sleeps)
    start = utc("2025-05-31 22:00")  # Brussels midnight, 1 June: 250 whole delivery days
    end = start + pd.Timedelta(days=250)

    rows = client.fetch_prices("BE", start, end)

    assert len(transport.calls) == 3 and all(c.status == "ok" for c in transport.calls)
    assert [(s["periodStart"], s["periodEnd"]) for s in session.sent] == [
        ("202505312200", "202509082200"),
        ("202509082200", "202512172300"),
        ("202512172300", "202602052300"),
    ]
    assert rows["ts"].iloc[0] == start and rows["ts"].iloc[-1] < end
    steps = rows["ts"].diff().shift(-1).iloc[:-1]
    width = rows["resolution"].iloc[:-1].map({"PT60M": pd.Timedelta(hours=1), "PT15M": pd.Timedelta(minutes=15)})
    assert (steps == width).all()  # gapless, PT60M then PT15M from 2025-10-01 (Brussels)
    assert rows.loc[rows["resolution"] == "PT15M", "ts"].iloc[0] == utc("2025-09-30 22:00")
    assert rows.loc[rows["resolution"] == "PT60M", "ts"].iloc[-1] == utc("2025-09-30 21:00")
    hourly = rows.set_index("ts")["price"].resample("h").mean()
    np.testing.assert_allclose(hourly, sandbox.history.hourly("BE", start, end).to_numpy(), atol=0.005)


def test_sandbox__refuses_more_than_100_days_or_a_year_so_the_client_must_split(sandbox):
    base = {"securityToken": "sandbox-entsoe-token", "documentType": "A44", "in_Domain": BE, "out_Domain": BE}
    too_many = requests.get(
        f"{sandbox.url}/entsoe/api",
        params={**base, "periodStart": "202505312200", "periodEnd": "202509092200"},
        timeout=30,
    )
    too_long = requests.get(
        f"{sandbox.url}/entsoe/api",
        params={**base, "periodStart": "202401010000", "periodEnd": "202501020000"},
        timeout=30,
    )

    assert too_many.status_code == 400
    with pytest.raises(PayloadError, match=r"The number of instances \(101\) exceeds the allowed maximum \(100\)"):
        parse_a44(too_many.content, "BE")
    assert too_long.status_code == 400
    with pytest.raises(PayloadError, match="exceeds the allowed maximum of 1 year"):
        parse_a44(too_long.content, "BE")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"periodEnd": None}, "Mandatory parameter\\(s\\) periodEnd missing"),
        ({"periodStart": "2025-09-17"}, "periodStart='2025-09-17' is not a valid date"),
        ({"periodStart": "202513010000"}, "periodStart='202513010000' is not a valid date"),
        ({"out_Domain": "10YFR-RTE------C"}, "must be the same bidding zone"),
        ({"documentType": "A75"}, "documentType 'A75'"),
        ({"periodStart": "202509180000"}, "periodStart must be before periodEnd"),
    ],
)
def test_sandbox__bad_parameters_get_a_400_acknowledgement(sandbox, change, message):
    params = {
        "securityToken": "sandbox-entsoe-token",
        "documentType": "A44",
        "in_Domain": BE,
        "out_Domain": BE,
        "periodStart": "202509162200",
        "periodEnd": "202509172200",
    }
    params = {k: v for k, v in {**params, **change}.items() if v is not None}

    answer = requests.get(f"{sandbox.url}/entsoe/api", params=params, timeout=30)

    assert answer.status_code == 400
    with pytest.raises(PayloadError, match=message):
        parse_a44(answer.content, "BE")


def test_sandbox__document_is_built_like_the_real_one_and_leaves_out_repeated_prices(sandbox):
    answer = requests.get(
        f"{sandbox.url}/entsoe/api",
        params={
            "securityToken": "sandbox-entsoe-token",
            "documentType": "A44",
            "in_Domain": BE,
            "out_Domain": BE,
            "periodStart": "202511042300",
            "periodEnd": "202511052300",
            "contract_MarketAgreement.type": "A01",
        },
        timeout=30,
    )

    root = ET.fromstring(answer.content)
    names = {element.tag for element in root.iter()}
    real = {element.tag for element in ET.fromstring(NL_FIXTURE).iter()}
    assert answer.status_code == 200 and root.tag == f"{{{PUB_NS}}}Publication_MarketDocument"
    assert names == real  # same elements, same namespace
    positions = [int(p.text) for p in root.iter(f"{{{PUB_NS}}}position")]
    assert root.find(f".//{{{PUB_NS}}}resolution").text == "PT15M"
    assert positions[0] == 1 and len(positions) <= 24 < 96  # only the hour changes are listed
    assert all((p - 1) % 4 == 0 for p in positions)
    assert len(parse_a44(answer.content, "BE", BE)) == 96


def test_client__unknown_zone_is_recorded_as_no_data_not_as_an_error(sandbox, tmp_path, sleeps):
    client, transport, _ = make_client(sandbox, tmp_path, sleeps, regions={"NL": "10YNL----------L"})

    rows = client.fetch_prices("NL", utc("2025-09-17 00:00"), utc("2025-09-18 00:00"))

    assert rows.empty and list(rows.columns) == list(SOURCE_COLUMNS)
    assert [(c.status, c.http_status) for c in transport.calls] == [("no_data", 200)]
    assert "No matching data found for Data item ENERGY_PRICES" in transport.calls[0].error


def test_client__unknown_region_raises_value_error_naming_the_known_ones(sandbox, tmp_path, sleeps):
    client, transport, _ = make_client(sandbox, tmp_path, sleeps)

    with pytest.raises(ValueError, match="unknown region 'NP'; configured regions: BE, FR"):
        client.fetch_prices("NP", utc("2025-09-17 00:00"), utc("2025-09-18 00:00"))
    assert client.regions() == ("BE", "FR") and transport.calls == []


def test_client__naive_timestamps_are_refused(sandbox, tmp_path, sleeps):
    client, _, _ = make_client(sandbox, tmp_path, sleeps)

    with pytest.raises(ValueError, match="start 2025-09-17 00:00:00 has no time zone"):
        client.fetch_prices("BE", pd.Timestamp("2025-09-17"), utc("2025-09-18 00:00"))


def test_client__missing_token_fails_before_any_call(sandbox, tmp_path, sleeps):
    client, transport, _ = make_client(sandbox, tmp_path, sleeps, token=None)

    with pytest.raises(AuthError, match="connection 'entsoe_default'"):
        client.fetch_prices("BE", utc("2025-09-17 00:00"), utc("2025-09-18 00:00"))
    assert transport.calls == []


def test_client__wrong_token_is_an_auth_error_naming_the_connection(sandbox, tmp_path, sleeps):
    client, transport, _ = make_client(sandbox, tmp_path, sleeps, token="not-the-token")

    with pytest.raises(
        AuthError, match=r"credentials refused \(HTTP 401: .*fix the Airflow connection 'entsoe_default'"
    ):
        client.fetch_prices("BE", utc("2025-09-17 00:00"), utc("2025-09-18 00:00"))
    assert [(c.status, c.http_status) for c in transport.calls] == [("error", 401)]
    answer = requests.get(f"{sandbox.url}/entsoe/api", params={"securityToken": "nope"}, timeout=30)
    assert answer.status_code == 401 and answer.content == (ENTSOE / "error_401_unauthorized_legacy.html").read_bytes()


def test_client__recovers_after_two_500s(sandbox, tmp_path, sleeps):
    client, transport, _ = make_client(sandbox, tmp_path, sleeps)
    sandbox.set_faults({"entsoe": Fault(kind="500", times=2)})

    rows = client.fetch_prices("BE", utc("2025-09-16 22:00"), utc("2025-09-17 22:00"))

    assert len(rows) == 24
    assert [(c.status, c.http_status) for c in transport.calls] == [("error", 500), ("error", 500), ("ok", 200)]
    assert "HTTP 500" in transport.calls[0].error and len(sleeps) == 2


def test_client__honours_retry_after_on_429(sandbox, tmp_path, sleeps):
    client, transport, _ = make_client(sandbox, tmp_path, sleeps)
    sandbox.set_faults({"entsoe": Fault(kind="429", times=1)})

    rows = client.fetch_prices("BE", utc("2025-09-16 22:00"), utc("2025-09-17 22:00"))

    assert len(rows) == 24 and sleeps == [1.0]
    assert [(c.status, c.http_status) for c in transport.calls] == [("error", 429), ("ok", 200)]


def test_client__backs_off_on_429_without_retry_after(sandbox, tmp_path, sleeps):
    client, transport, _ = make_client(sandbox, tmp_path, sleeps)
    sandbox.set_faults({"entsoe": Fault(kind="429-bare", times=1)})

    rows = client.fetch_prices("BE", utc("2025-09-16 22:00"), utc("2025-09-17 22:00"))

    assert len(rows) == 24
    assert len(sleeps) == 1 and 0 < sleeps[0] <= RetryPolicy().backoff_base_s  # jittered backoff, first retry
    assert transport.calls[0].error == "HTTP 429 rate limited (Retry-After: none)"


def test_client__malformed_body_is_a_payload_error_with_the_archived_bytes(sandbox, tmp_path, sleeps):
    client, transport, _ = make_client(sandbox, tmp_path, sleeps)
    sandbox.set_faults({"entsoe": Fault(kind="malformed", times=1)})

    with pytest.raises(PayloadError, match="not well-formed XML") as caught:
        client.fetch_prices("BE", utc("2025-09-16 22:00"), utc("2025-09-17 22:00"))

    archived = Path(caught.value.payload_ref).read_bytes()
    assert archived.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<Publication_MarketDocument')
    assert b"</Publication_MarketDocument>" not in archived  # the cut-off half the sandbox sent
    assert [(c.status, c.http_status) for c in transport.calls] == [("error", 200)]


def test_client__slow_answers_time_out(sandbox, tmp_path, sleeps):
    client, transport, _ = make_client(sandbox, tmp_path, sleeps, retry=RetryPolicy(read_timeout_s=0.3, max_attempts=2))
    sandbox.set_faults({"entsoe": Fault(kind="slow", slow_s=1.0)})

    with pytest.raises(ProviderError, match="timed out"):
        client.fetch_prices("BE", utc("2025-09-16 22:00"), utc("2025-09-17 22:00"))
    assert [c.error for c in transport.calls] == ["timed out: ReadTimeout"] * 2


def test_sandbox__rate_limit_and_server_errors_use_entsoe_bodies(sandbox):
    app = sandbox.apps["entsoe"]

    limited = app.error(429, "ignored")
    broken = app.error(500, "Internal Server Error")

    assert limited.status == 429 and limited.body.decode() == RATE_LIMIT_TEXT
    assert broken.status == 500 and broken.content_type.startswith("text/html")
    assert b"Internal Server Error" in broken.body


def test_parse__a_period_in_year_9999_is_refused_naming_the_time():
    doc = document(series(period("9999-09-16T22:00Z", "9999-09-17T22:00Z", "PT60M", {1: "10"})))
    with pytest.raises(PayloadError, match=r"time '9999-09-16T22:00Z' is not a delivery time \(outside 1990-2200\)"):
        parse_a44(doc, "BE", BE)
