"""NREL/NLR Utility Rates v3: the official examples, bad bodies, and the client against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import requests

from core.regions import load_catalogue
from ingestion.http import AuthError, HttpTransport, NoData, PayloadError, ProviderConfig, ProviderError, RetryPolicy
from ingestion.sandbox.server import Fault
from ingestion.sources import SOURCE_COLUMNS, nrel
from tests.conftest import FIXTURES

# the region catalogue's ids of the enabled regions (what the product configures)
DEFAULT_REGIONS: dict[str, object] = load_catalogue().provider_ids("nrel")

NREL = FIXTURES / "nrel"
KEY = "sandbox-nrel-key"
DAY = pd.Timedelta(days=364)


def fixture_json(name: str) -> dict:
    return json.loads((NREL / name).read_text())


# -- the official examples ------------------------------------------------------------------------


def test_parse__current_json_example_gives_the_three_sector_rates_in_usd_per_kwh():
    rates = nrel.parse_utility_rates((NREL / "utility_rates_v3_200.json").read_bytes())
    assert rates.rates == {"residential": 0.123, "commercial": 0.0977, "industrial": 0.0862}
    assert rates.utility_name == "Haywood Electric Member Corp|Tennessee Valley Authority"
    assert rates.company_id == "8333|18642"
    assert rates.version == "3.1.0" and rates.sources == ("Ventyx Research (2012)",)
    assert rates.rate("commercial") == 0.0977


def test_parse__legacy_v3_0_2_example_with_api_key_echo_parses_the_same_way():
    rates = nrel.parse_utility_rates((NREL / "utility_rates_v3_200_legacy_v3.0.2.json").read_text())
    assert rates.rates == {"residential": 0.0952, "commercial": 0.0855, "industrial": 0.0755}
    assert rates.utility_name == "Sho ME Power Electric Coop|Howell Oregon Electric Coop Inc"
    assert rates.version == "3.0.2" and rates.sources == ("Ventyx Research (2011)", "EIA (2011)")


def test_parse__api_umbrella_key_missing_body_is_recognised_as_a_gateway_error():
    with pytest.raises(PayloadError, match="API gateway error API_KEY_MISSING: No api_key was supplied"):
        nrel.parse_utility_rates((NREL / "error_api_key_missing.json").read_bytes())


# -- bad and empty bodies -------------------------------------------------------------------------


def test_parse__a_non_empty_errors_array_is_quoted():
    doc = fixture_json("utility_rates_v3_200.json") | {"errors": ["lat is out of range", "lon is required"]}
    with pytest.raises(PayloadError, match="reported errors: lat is out of range; lon is required"):
        nrel.parse_utility_rates(doc)


def test_parse__no_data_outputs_mean_no_utility_serves_the_point():
    doc = fixture_json("utility_rates_v3_200.json")
    doc["outputs"] = {
        "company_id": "no data",
        "utility_name": "no data",
        "utility_info": [],
        "commercial": "no data",
        "industrial": "no data",
        "residential": "no data",
    }
    with pytest.raises(NoData, match="no utility"):
        nrel.parse_utility_rates(doc)


def test_parse__no_data_for_one_sector_is_no_data_for_that_sector_only():
    doc = fixture_json("utility_rates_v3_200.json")
    doc["outputs"]["industrial"] = "no data"
    rates = nrel.parse_utility_rates(doc)
    assert rates.rates["industrial"] is None and rates.rate("residential") == 0.123
    with pytest.raises(NoData, match="no industrial rate"):
        rates.rate("industrial")


@pytest.mark.parametrize("value", ["0.09x", True, None, [], -0.1, "NaN"])
def test_parse__a_sector_value_that_is_not_a_price_is_a_payload_error(value):
    doc = fixture_json("utility_rates_v3_200.json")
    doc["outputs"]["commercial"] = value
    with pytest.raises(PayloadError, match=r"outputs.commercial"):
        nrel.parse_utility_rates(doc)


def test_parse__missing_outputs_is_a_payload_error_unless_the_api_says_no_utility():
    doc = fixture_json("utility_rates_v3_200.json")
    del doc["outputs"]
    with pytest.raises(PayloadError, match="no 'outputs'"):
        nrel.parse_utility_rates(doc)
    with pytest.raises(NoData):
        nrel.parse_utility_rates(doc | {"warnings": ["No utility found for this location"]})


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'{"inputs": {"lat": "35.45"}, "errors": [', "not valid JSON"),
        (b"[1, 2]", "JSON list"),
        (b'{"outputs": {"commercial": 0.1}}', "no 'errors' array"),
        (b"", "not valid JSON"),
    ],
)
def test_parse__truncated_or_foreign_json_is_a_payload_error(body, match):
    with pytest.raises(PayloadError, match=match):
        nrel.parse_utility_rates(body)


# -- the client -----------------------------------------------------------------------------------


def make_client(
    base_url: str,
    tmp_path: Path,
    sleeps,
    *,
    api_key: str | None = KEY,
    regions=None,
    retry: RetryPolicy = RetryPolicy(),
) -> tuple[nrel.Client, HttpTransport]:
    config = ProviderConfig(
        source="nrel",
        base_url=base_url,
        connection_id=nrel.CONNECTION_ID,
        api_key=api_key,
        regions=dict(DEFAULT_REGIONS if regions is None else regions),
        requests_per_minute=0,
        retry=retry,
    )
    transport = HttpTransport(config, archive_dir=tmp_path, sleep=sleeps)
    return nrel.Client(config, transport), transport


def test_client__unknown_region_bad_sector_and_naive_times_are_value_errors(tmp_path, sleeps):
    client, transport = make_client(
        "http://127.0.0.1:9",
        tmp_path,
        sleeps,
        regions={"PJM": DEFAULT_REGIONS["PJM"], "XX": {"lat": 1, "lon": 2, "sector": "farm"}},
    )
    start, end = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC")
    with pytest.raises(ValueError, match=r"unknown region 'NP'.*PJM"):
        client.fetch_prices("NP", start, end)
    with pytest.raises(ValueError, match="sector 'farm'"):
        client.fetch_prices("XX", start, end)
    with pytest.raises(ValueError, match="timezone-aware"):
        client.fetch_prices("PJM", pd.Timestamp("2024-01-01"), end)
    assert client.fetch_prices("PJM", end, start).empty and transport.calls == []


def test_module__defaults_point_at_the_nlr_host_and_chicago():
    assert nrel.DEFAULT_BASE_URL == "https://developer.nlr.gov" and nrel.CONNECTION_ID == "nrel_default"
    assert DEFAULT_REGIONS == {"PJM": {"lat": 41.8781, "lon": -87.6298, "sector": "commercial"}}
    assert pytest.approx(1000 / 60) == nrel.REQUESTS_PER_MINUTE


# -- end to end against the sandbox ---------------------------------------------------------------


def expected_rates(sandbox) -> dict[str, float]:
    at = pd.Timestamp.now(tz="UTC").floor("D")
    industrial = float(sandbox.history.hourly("PJM", at - DAY, at).mean()) / 1000
    return {
        "industrial": round(industrial, 4),
        "commercial": round(industrial * 1.15, 4),
        "residential": round(industrial * 1.45, 4),
    }


def test_sandbox__chicago_gives_a_flat_hourly_commercial_series_from_the_pjm_trailing_year(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/nrel", tmp_path, sleeps)
    urls: list[str] = []
    transport.session.hooks["response"].append(lambda response, *a, **k: urls.append(response.url))
    start, end = pd.Timestamp("2024-03-09 22:30", tz="UTC"), pd.Timestamp("2024-03-11 02:00", tz="UTC")
    frame = client.fetch_prices("PJM", start, end)
    expected = expected_rates(sandbox)
    assert list(frame.columns) == list(SOURCE_COLUMNS) and str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["ts"].iloc[0] == pd.Timestamp("2024-03-09 23:00", tz="UTC")
    assert frame["ts"].iloc[-1] == pd.Timestamp("2024-03-11 01:00", tz="UTC") and len(frame) == 27
    assert frame["ts"].diff().dropna().eq(pd.Timedelta(hours=1)).all()
    assert frame["price"].tolist() == [expected["commercial"]] * 27
    assert 0.01 < expected["commercial"] < 0.2
    assert set(frame["unit"]) == {"kWh"} and set(frame["currency"]) == {"USD"} and set(frame["resolution"]) == {"PT60M"}
    assert set(frame["source"]) == {"nrel"} and set(frame["region"]) == {"PJM"}
    assert [c.status for c in transport.calls] == ["ok"] and transport.calls[0].endpoint == "/api/utility_rates/v3.json"
    assert urls and all(KEY not in url for url in urls), "the key must travel in the header, not the URL"


def test_sandbox__answers_every_sector_with_rate_limit_headers(sandbox):
    point = {"lat": "41.8781", "lon": "-87.6298"}
    as_json = requests.get(f"{sandbox.url}/nrel/api/utility_rates/v3.json", params=point | {"api_key": KEY}, timeout=10)
    assert as_json.status_code == 200
    assert as_json.headers["X-RateLimit-Limit"] == "1000" and int(as_json.headers["X-RateLimit-Remaining"]) < 1000
    rates = nrel.parse_utility_rates(as_json.content)
    assert rates.rates == expected_rates(sandbox) and rates.utility_name == "Commonwealth Edison Co"
    assert set(as_json.json()) == set(fixture_json("utility_rates_v3_200.json"))


def test_sandbox__a_point_outside_comed_gives_no_data_and_an_empty_frame(sandbox, tmp_path, sleeps):
    client, transport = make_client(
        f"{sandbox.url}/nrel", tmp_path, sleeps, regions={"PJM": {"lat": 35.45, "lon": -82.98, "sector": "residential"}}
    )
    frame = client.fetch_prices("PJM", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC"))
    assert frame.empty and list(frame.columns) == list(SOURCE_COLUMNS)
    assert [c.status for c in transport.calls] == ["no_data"]


def test_sandbox__key_checks_answer_api_umbrella_403_bodies(sandbox):
    url = f"{sandbox.url}/nrel/api/utility_rates/v3.json"
    missing = requests.get(url, params={"lat": 41.9, "lon": -87.6}, timeout=10)
    assert missing.status_code == 403 and missing.json() == fixture_json("error_api_key_missing.json")
    missing_xml = requests.get(url.replace(".json", ".xml"), params={"lat": 41.9, "lon": -87.6}, timeout=10)
    assert missing_xml.status_code == 403 and b"<code>API_KEY_MISSING</code>" in missing_xml.content
    wrong = requests.get(url, params={"lat": 41.9, "lon": -87.6}, headers={"X-Api-Key": "nope"}, timeout=10)
    assert wrong.status_code == 403 and wrong.json() == {
        "error": {
            "code": "API_KEY_INVALID",
            "message": "An invalid api_key was supplied. Get one at https://developer.nlr.gov",
        }
    }


def test_sandbox__address_parameter_is_refused_with_422_and_the_client_quotes_it(sandbox):
    response = requests.get(
        f"{sandbox.url}/nrel/api/utility_rates/v3.json", params={"address": "Chicago", "api_key": KEY}, timeout=10
    )
    assert response.status_code == 422
    with pytest.raises(PayloadError, match="The 'address' parameter is no longer supported"):
        nrel.parse_utility_rates(response.content)


def test_sandbox__wrong_key_is_an_auth_error_naming_the_connection(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/nrel", tmp_path, sleeps, api_key="wrong-key")
    with pytest.raises(AuthError, match="nrel_default") as caught:
        client.fetch_prices("PJM", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC"))
    assert caught.value.http_status == 403 and "API_KEY_INVALID" in str(caught.value)
    assert "wrong-key" not in str(caught.value)
    assert len(transport.calls) == 1 and sleeps == []


def test_sandbox__500_twice_then_recovers(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/nrel", tmp_path, sleeps)
    sandbox.set_faults({"nrel": Fault(kind="500", times=2)})
    frame = client.fetch_prices("PJM", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-01 03:00", tz="UTC"))
    assert frame["price"].tolist() == [expected_rates(sandbox)["commercial"]] * 3
    assert [(c.status, c.http_status) for c in transport.calls] == [("error", 500), ("error", 500), ("ok", 200)]
    assert len(sleeps) == 2


def test_sandbox__429_with_retry_after_waits_the_given_second(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/nrel", tmp_path, sleeps)
    sandbox.set_faults({"nrel": Fault(kind="429", times=1)})
    frame = client.fetch_prices("PJM", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-01 01:00", tz="UTC"))
    assert len(frame) == 1 and sleeps == [1.0]
    assert transport.calls[0].http_status == 429
    body = requests.get(f"{sandbox.url}/nrel/api/utility_rates/v3.json", headers={"X-Sandbox-Fault": "429"}, timeout=10)
    assert body.json()["error"]["code"] == "OVER_RATE_LIMIT"
    assert body.json()["error"]["message"].startswith(
        "You have exceeded your rate limit. Try again later or contact us"
    )


def test_sandbox__429_without_retry_after_backs_off(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/nrel", tmp_path, sleeps)
    sandbox.set_faults({"nrel": Fault(kind="429-bare", times=1)})
    frame = client.fetch_prices("PJM", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-01 01:00", tz="UTC"))
    assert len(frame) == 1
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= RetryPolicy().backoff_base_s
    assert [c.http_status for c in transport.calls] == [429, 200]
    assert "Retry-After: none" in transport.calls[0].error


def test_sandbox__malformed_body_is_archived_and_raised(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/nrel", tmp_path, sleeps)
    sandbox.set_faults({"nrel": Fault(kind="malformed", times=1)})
    with pytest.raises(PayloadError, match="not valid JSON") as caught:
        client.fetch_prices("PJM", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC"))
    full = requests.get(
        f"{sandbox.url}/nrel/api/utility_rates/v3.json",
        params={"lat": "41.878100", "lon": "-87.629800"},
        headers={"X-Api-Key": KEY},
        timeout=10,
    ).content
    archived = Path(caught.value.payload_ref)
    assert archived.is_file() and archived.read_bytes() == full[: len(full) // 2]
    assert transport.calls[-1].status == "error"


def test_sandbox__slow_answer_times_out(sandbox, tmp_path, sleeps):
    client, transport = make_client(
        f"{sandbox.url}/nrel", tmp_path, sleeps, retry=RetryPolicy(read_timeout_s=0.3, max_attempts=2)
    )
    sandbox.set_faults({"nrel": Fault(kind="slow", slow_s=1.0)})
    with pytest.raises(ProviderError, match="timed out"):
        client.fetch_prices("PJM", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC"))
    assert [c.error for c in transport.calls] == ["timed out: ReadTimeout"] * 2
