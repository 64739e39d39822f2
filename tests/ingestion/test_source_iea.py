"""IEA Real-Time Electricity Tracker (undocumented backend): shape checks, and the client against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import requests

from core.regions import load_catalogue
from ingestion.http import AuthError, HttpTransport, NoData, PayloadError, ProviderConfig, ProviderError, RetryPolicy
from ingestion.sandbox.server import Fault
from ingestion.sources import SOURCE_COLUMNS, iea
from tests.conftest import FIXTURES

# the region catalogue's ids of the enabled regions (what the product configures)
DEFAULT_REGIONS: dict[str, object] = load_catalogue().provider_ids("iea")

IEA = FIXTURES / "iea"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def rows(*items: tuple[str, object], iso3: str = "FRA") -> list[dict]:
    return [{"ISO3": iso3, "Date": date, "Value": value} for date, value in items]


# -- the shape ------------------------------------------------------------------------------------


def test_parse__rows_with_z_or_offsets_become_sorted_utc_hours_per_mwh():
    body = json.dumps(
        rows(("2024-01-01T01:00:00Z", 61.5), ("2024-01-01T01:00:00+01:00", 58.25), ("2024-01-01T02:00:00.000Z", -3))
    ).encode()
    frame = iea.parse_timeseries(body, "FRA")
    assert frame["ts"].tolist() == [utc("2024-01-01 00:00"), utc("2024-01-01 01:00"), utc("2024-01-01 02:00")]
    assert frame["price"].tolist() == [58.25, 61.5, -3.0]
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"


def test_parse__equal_duplicates_merge_and_conflicting_ones_are_refused():
    same = rows(("2024-01-01T00:00:00Z", 10.0), ("2024-01-01T01:00:00+01:00", 10.0))
    assert iea.parse_timeseries(same, "FRA")["price"].tolist() == [10.0]
    with pytest.raises(PayloadError, match="appears with different Values"):
        iea.parse_timeseries(rows(("2024-01-01T00:00:00Z", 10.0), ("2024-01-01T00:00:00Z", 11.0)), "FRA")


@pytest.mark.parametrize("name", ["releases_api_products_200_docs.json", "releases_api_product_releases_200_docs.json"])
def test_parse__the_documented_releases_api_bodies_are_not_price_data(name):
    with pytest.raises(
        PayloadError, match="expected keys ISO3, Date, Value; the undocumented IEA backend changed shape"
    ):
        iea.parse_timeseries((IEA / name).read_bytes(), "FRA")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'{"ISO3": "FRA", "data": []}', "expected a JSON array .* got a dict"),
        (b'[{"ISO3": "FRA", "Date": "2024-01-01T00:00:00Z", "Val', "not valid JSON"),
        (json.dumps([{"ISO3": "FRA", "Date": "2024-01-01T00:00:00Z"}]), r"\['Date', 'ISO3'\], expected keys"),
        (json.dumps([["FRA", "2024-01-01T00:00:00Z", 1.0]]), "row 0 is list"),
        (json.dumps(rows(("2024-01-01T00:00:00Z", 1.0), iso3="BEL")), "is for ISO3 'BEL', not 'FRA'"),
        (json.dumps(rows(("2024-01-01T00:00:00Z", "61.5"))), "Value '61.5' is not a number"),
        (json.dumps(rows(("2024-01-01T00:00:00Z", None))), "Value None is not a number"),
        (json.dumps(rows(("2024-01-01T00:00:00Z", True))), "Value True is not a number"),
        (json.dumps(rows(("01/01/2024 00:00", 1.0))), "Date '01/01/2024 00:00' is not ISO-8601"),
        (json.dumps(rows((1704067200, 1.0))), "is not an ISO-8601 string"),
        (json.dumps(rows(("2024-01-01T00:00:00", 1.0))), "has no UTC offset"),
    ],
)
def test_parse__any_other_shape_says_the_backend_changed(body, match):
    with pytest.raises(PayloadError, match=match) as caught:
        iea.parse_timeseries(body, "FRA")
    assert "update ingestion/sources/iea.py" in str(caught.value)


def test_parse__an_empty_array_is_no_data():
    with pytest.raises(NoData, match="no hourly prices for NOR"):
        iea.parse_timeseries(b"[]", "NOR")


# -- the client -----------------------------------------------------------------------------------


def make_client(
    base_url: str, tmp_path: Path, sleeps, *, regions=None, retry: RetryPolicy = RetryPolicy()
) -> tuple[iea.Client, HttpTransport]:
    config = ProviderConfig(
        source="iea",
        base_url=base_url,
        connection_id=iea.CONNECTION_ID,
        regions=dict(DEFAULT_REGIONS if regions is None else regions),
        requests_per_minute=0,
        retry=retry,
    )
    transport = HttpTransport(config, archive_dir=tmp_path, sleep=sleeps)
    return iea.Client(config, transport), transport


def test_client__bad_regions_are_value_errors_before_any_request(tmp_path, sleeps):
    client, transport = make_client(
        "http://127.0.0.1:9", tmp_path, sleeps, regions={"NP": "NOR", "DE": "DEU", "XX": "france"}
    )
    start, end = utc("2016-01-01"), utc("2016-01-02")
    with pytest.raises(ValueError, match=r"unknown region 'PJM'.*NP"):
        client.fetch_prices("PJM", start, end)
    with pytest.raises(ValueError, match="no local currency known for DEU"):
        client.fetch_prices("DE", start, end)
    with pytest.raises(ValueError, match="ISO3 country code"):
        client.fetch_prices("XX", start, end)
    with pytest.raises(ValueError, match="timezone-aware"):
        client.fetch_prices("NP", pd.Timestamp("2016-01-01"), end)
    assert client.fetch_prices("NP", utc("2016-01-01 00:30"), utc("2016-01-01 01:00")).empty
    assert transport.calls == []


def test_module__defaults():
    assert iea.DEFAULT_BASE_URL == "https://api.iea.org" and iea.CONNECTION_ID == "iea_default"
    assert DEFAULT_REGIONS == {"NP": "NOR", "BE": "BEL", "FR": "FRA"} and iea.REQUESTS_PER_MINUTE == 30
    assert "The IEA publishes no documented price API." in iea.__doc__.replace("**", "")


# -- end to end against the sandbox ---------------------------------------------------------------


@pytest.mark.parametrize(("region", "iso3"), [("NP", "NOR"), ("BE", "BEL"), ("FR", "FRA")])
def test_sandbox__hourly_prices_are_the_bundled_history_for_exactly_the_range(sandbox, tmp_path, sleeps, region, iso3):
    client, transport = make_client(f"{sandbox.url}/iea", tmp_path, sleeps)
    urls: list[str] = []
    transport.session.hooks["response"].append(lambda response, *a, **k: urls.append(response.url))
    start, end = utc("2016-03-26 21:30"), utc("2016-03-28 03:00")  # across the spring DST change
    frame = client.fetch_prices(region, start, end)
    expected = sandbox.history.hourly(region, start, end)
    assert list(frame.columns) == list(SOURCE_COLUMNS) and str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["ts"].tolist() == list(expected.index) and len(frame) == 29
    assert frame["price"].tolist() == expected.tolist()
    assert set(frame["currency"]) == {"EUR"} and set(frame["unit"]) == {"MWh"} and set(frame["resolution"]) == {"PT60M"}
    assert set(frame["region"]) == {region} and set(frame["source"]) == {"iea"}
    assert urls == [
        f"{sandbox.url}/iea/rte/price/hourly/{iso3}/timeseries?from=2016-03-25&to=2016-03-29&currency=local"
    ]
    assert [(c.endpoint, c.status) for c in transport.calls] == [("/rte/price/hourly/{iso3}/timeseries", "ok")]


def test_sandbox__dates_outside_the_history_are_replayed(sandbox, tmp_path, sleeps):
    client, _ = make_client(f"{sandbox.url}/iea", tmp_path, sleeps)
    start, end = utc("2026-02-10"), utc("2026-02-11")
    frame = client.fetch_prices("NP", start, end)
    assert frame["price"].tolist() == sandbox.history.hourly("NP", start, end).tolist() and len(frame) == 24


def test_sandbox__long_ranges_are_asked_for_in_31_day_windows_without_gaps_or_overlaps(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/iea", tmp_path, sleeps)
    start, end = utc("2015-10-01 12:00"), utc("2015-12-10 12:00")  # 70 days
    frame = client.fetch_prices("FR", start, end)
    expected = sandbox.history.hourly("FR", start, end)
    assert len(transport.calls) == 3 and len(frame) == 70 * 24
    assert frame["ts"].tolist() == list(expected.index) and frame["price"].tolist() == expected.tolist()


def test_sandbox__serves_the_expected_row_shape(sandbox):
    response = requests.get(
        f"{sandbox.url}/iea/rte/price/hourly/BEL/timeseries",
        params={"from": "2016-01-01", "to": "2016-01-01", "currency": "local"},
        timeout=10,
    )
    body = response.json()
    assert response.status_code == 200 and len(body) == 24
    assert body[0] == {"ISO3": "BEL", "Date": "2016-01-01T00:00:00Z", "Value": body[0]["Value"]}
    assert isinstance(body[0]["Value"], float)


def test_sandbox__an_unknown_country_is_a_404_reported_as_a_payload_error(sandbox, tmp_path, sleeps, monkeypatch):
    monkeypatch.setitem(iea.LOCAL_CURRENCY, "DEU", "EUR")
    client, transport = make_client(f"{sandbox.url}/iea", tmp_path, sleeps, regions={"DE": "DEU"})
    with pytest.raises(PayloadError, match="DEU: HTTP 404: No hourly price data for DEU") as caught:
        client.fetch_prices("DE", utc("2016-01-01"), utc("2016-01-02"))
    assert Path(caught.value.payload_ref).is_file() and transport.calls[0].http_status == 404


def test_transport__a_403_as_www_iea_org_gives_scripts_is_an_auth_error_naming_the_connection(tmp_path, sleeps):
    class Forbidden(requests.adapters.BaseAdapter):
        def send(self, request, **kwargs):
            response = requests.Response()
            response.status_code, response._content, response.url = 403, b"<html>Access Denied</html>", request.url
            return response

        def close(self):
            pass

    client, transport = make_client("https://api.iea.org", tmp_path, sleeps)
    transport.session.mount("https://", Forbidden())
    with pytest.raises(AuthError, match="iea_default"):
        client.fetch_prices("FR", utc("2016-01-01"), utc("2016-01-02"))


def test_sandbox__500_twice_then_recovers(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/iea", tmp_path, sleeps)
    sandbox.set_faults({"iea": Fault(kind="500", times=2)})
    frame = client.fetch_prices("FR", utc("2016-01-01"), utc("2016-01-01 06:00"))
    assert frame["price"].tolist() == sandbox.history.hourly("FR", utc("2016-01-01"), utc("2016-01-01 06:00")).tolist()
    assert [(c.status, c.http_status) for c in transport.calls] == [("error", 500), ("error", 500), ("ok", 200)]
    error = requests.get(
        f"{sandbox.url}/iea/rte/price/hourly/FRA/timeseries", headers={"X-Sandbox-Fault": "500"}, timeout=10
    )
    assert error.status_code == 500 and error.json() == {"message": "Internal Server Error"}


def test_sandbox__429_with_retry_after_waits_the_given_second(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/iea", tmp_path, sleeps)
    sandbox.set_faults({"iea": Fault(kind="429", times=1)})
    assert len(client.fetch_prices("BE", utc("2016-01-01"), utc("2016-01-01 01:00"))) == 1
    assert sleeps == [1.0] and [c.http_status for c in transport.calls] == [429, 200]


def test_sandbox__429_without_retry_after_backs_off(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/iea", tmp_path, sleeps)
    sandbox.set_faults({"iea": Fault(kind="429-bare", times=1)})
    assert len(client.fetch_prices("BE", utc("2016-01-01"), utc("2016-01-01 01:00"))) == 1
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= RetryPolicy().backoff_base_s
    assert "Retry-After: none" in transport.calls[0].error


def test_sandbox__malformed_body_is_archived_and_raised(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/iea", tmp_path, sleeps)
    sandbox.set_faults({"iea": Fault(kind="malformed", times=1)})
    with pytest.raises(PayloadError, match="not valid JSON") as caught:
        client.fetch_prices("NP", utc("2016-01-01"), utc("2016-01-02"))
    full = requests.get(
        f"{sandbox.url}/iea/rte/price/hourly/NOR/timeseries",
        timeout=10,
        params={"from": "2015-12-31", "to": "2016-01-02", "currency": "local"},
    ).content
    assert Path(caught.value.payload_ref).read_bytes() == full[: len(full) // 2]
    assert transport.calls[-1].status == "error"


def test_sandbox__slow_answer_times_out(sandbox, tmp_path, sleeps):
    client, _ = make_client(
        f"{sandbox.url}/iea", tmp_path, sleeps, retry=RetryPolicy(read_timeout_s=0.3, max_attempts=2)
    )
    sandbox.set_faults({"iea": Fault(kind="slow", slow_s=1.0)})
    with pytest.raises(ProviderError, match="timed out"):
        client.fetch_prices("NP", utc("2016-01-01"), utc("2016-01-02"))
