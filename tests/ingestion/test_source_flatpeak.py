"""Flatpeak: the parsers against the real doc/spec fixtures, and the client against the sandbox."""

from __future__ import annotations

import json
import logging
from datetime import UTC
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import requests

from core.regions import load_catalogue
from ingestion.http import AuthError, HttpTransport, NoData, PayloadError, ProviderConfig, ProviderError, RetryPolicy
from ingestion.sandbox.flatpeak import App
from ingestion.sandbox.server import Fault
from ingestion.sources import SOURCE_COLUMNS, flatpeak
from ingestion.sources.flatpeak import (
    CONNECTION_ID,
    Client,
    parse_error,
    parse_login,
    parse_rates_response,
    parse_tariff_rates,
)
from tests.conftest import FIXTURES

# the region catalogue's ids of the enabled regions (what the product configures)
DEFAULT_REGIONS: dict[str, object] = load_catalogue().provider_ids("flatpeak")

HERE = FIXTURES / "flatpeak"
ACCOUNT, KEY = "acc_sandbox", "sk_sandbox_flatpeak"
DAY = pd.Timestamp("2017-06-01", tz="UTC")


def fixture(name: str) -> dict:
    return json.loads((HERE / name).read_text())


def body(**changes) -> dict:
    """The tariffs_rates_200 fixture with its one data item changed (None deletes a key)."""
    doc = fixture("tariffs_rates_200.json")
    item = doc["data"][0]
    for key, value in changes.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return doc


def response(status: int, content: bytes) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = content
    return answer


# -- parsing the real fixtures ------------------------------------------------------------------------


def test_parse__tariff_rates_fixture_expands_the_90_minute_interval_into_six_quarter_hours():
    frame = parse_tariff_rates((HERE / "tariffs_rates_200.json").read_bytes(), "NP")
    assert list(frame.columns) == list(SOURCE_COLUMNS)
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert list(frame["ts"]) == list(pd.date_range("2022-12-28T01:00Z", "2022-12-28T02:15Z", freq="15min"))
    assert frame["price"].tolist() == [4.998] * 6  # EUR per kWh, large units, not converted
    assert set(frame["currency"]) == {"EUR"} and set(frame["unit"]) == {"kWh"}
    assert (
        set(frame["resolution"]) == {"PT15M"}
        and set(frame["region"]) == {"NP"}
        and set(frame["source"]) == {"flatpeak"}
    )


def test_parse__anode_price_fixture_with_price_value_gives_the_same_rows():
    anode = parse_tariff_rates((HERE / "prices_200_anode.json").read_bytes(), "BE")
    zero = parse_tariff_rates((HERE / "tariffs_rates_200.json").read_bytes(), "BE")
    pd.testing.assert_frame_equal(anode, zero)
    assert len(anode) == 6 and anode["price"].iloc[0] == 4.998


def test_parse__offsets_other_than_z_are_converted_to_utc():
    doc = body(valid_from="2022-12-28T02:00:00+01:00", valid_to="2022-12-28T03:30:00+01:00")
    frame = parse_tariff_rates(doc, "FR")
    assert frame["ts"].iloc[0] == pd.Timestamp("2022-12-28T01:00Z")
    assert frame["ts"].iloc[-1] == pd.Timestamp("2022-12-28T02:15Z")
    assert len(frame) == 6


def test_parse__overlapping_intervals_that_agree_are_merged_and_sorted():
    doc = body()
    doc["data"] = [
        {"valid_from": "2022-12-28T02:00:00Z", "valid_to": "2022-12-28T03:00:00Z", "tariff": {"rate": 0.2}},
        {"valid_from": "2022-12-28T01:00:00Z", "valid_to": "2022-12-28T02:30:00Z", "tariff": {"rate": 0.2}},
    ]
    frame = parse_tariff_rates(doc, "NP")
    assert list(frame["ts"]) == list(pd.date_range("2022-12-28T01:00Z", periods=8, freq="15min"))


def test_parse__empty_data_is_an_empty_frame():
    doc = body()
    doc["data"] = []
    frame = parse_tariff_rates(doc, "NP")
    assert frame.empty and list(frame.columns) == list(SOURCE_COLUMNS)


def test_parse_login__fixture_gives_token_expiry_and_mode_and_hides_the_token():
    token = parse_login((HERE / "login_200.json").read_bytes())
    assert token.value.startswith("eyJhbGciOiJIUzI1NiIs") and token.value.endswith("0-TIrWQ")
    assert token.expires_in == 3600 and token.live_mode is True
    assert "eyJ" not in repr(token)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"expires_in": 3600, "live_mode": True}, "bearer_token"),
        ({"bearer_token": "t", "expires_in": "3600", "live_mode": True}, "expires_in"),
        ({"bearer_token": "t", "expires_in": 3600}, "live_mode"),
    ],
)
def test_parse_login__missing_or_wrong_fields_are_payload_errors(doc, match):
    with pytest.raises(PayloadError, match=match):
        parse_login(doc)


BAD_BODIES = {
    "truncated JSON": ((HERE / "tariffs_rates_200.json").read_bytes()[:300], "not valid JSON"),
    "JSON array": (b"[]", "expected an object"),
    "unknown object": ({**fixture("tariffs_rates_200.json"), "object": "error"}, "object 'error'"),
    "missing currency": (
        {k: v for k, v in fixture("tariffs_rates_200.json").items() if k != "currency_code"},
        "currency_code",
    ),
    "missing data": ({k: v for k, v in fixture("tariffs_rates_200.json").items() if k != "data"}, "'data' array"),
    "missing valid_to": (body(valid_to=None), r"data\[0\].valid_to is None"),
    "missing tariff": (body(tariff=None), "no 'tariff' object"),
    "missing rate": (body(tariff={"confidence": 1}), r"tariff.rate is None"),
    "string rate": (body(tariff={"rate": "4.998", "confidence": 1}), r"tariff.rate is '4.998'"),
    "boolean rate": (body(tariff={"rate": True}), "expected a number"),
    "not a time": (body(valid_from="yesterday"), "not an RFC 3339 time"),
    "naive time": (body(valid_from="2022-12-28T01:00:00"), "no UTC offset"),
    "off the 15-minute grid": (body(valid_to="2022-12-28T02:20:00Z"), "15-minute grid"),
    "empty interval": (body(valid_to="2022-12-28T01:00:00Z"), "at or before it starts"),
    "reversed interval": (body(valid_to="2022-12-28T00:00:00Z"), "at or before it starts"),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_parse__unrecognised_shapes_are_payload_errors_naming_the_problem(name):
    doc, match = BAD_BODIES[name]
    with pytest.raises(PayloadError, match=match) as info:
        parse_tariff_rates(doc, "NP")
    assert str(info.value).startswith("flatpeak: ")


def test_parse__overlapping_intervals_with_different_rates_are_a_payload_error():
    doc = body()
    doc["data"].append(
        {"valid_from": "2022-12-28T02:00:00Z", "valid_to": "2022-12-28T03:00:00Z", "tariff": {"rate": 1.0}}
    )
    with pytest.raises(PayloadError, match="overlapping intervals give different prices for 2 slot"):
        parse_tariff_rates(doc, "NP")


# -- error answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["no_price_data", "no_tariff_connected"])
def test_parse_error__422_without_prices_is_no_data(code):
    doc = {**fixture("error_object_example.json"), "code": code, "message": "No prices"}
    with pytest.raises(NoData, match=f"{code}: No prices"):
        parse_rates_response(response(422, json.dumps(doc).encode()), "NP", "loc_NP")


def test_parse_error__422_account_disabled_fixture_is_a_provider_error_with_the_message():
    with pytest.raises(ProviderError, match="account_disabled: Your account is disabled") as info:
        parse_rates_response(response(422, (HERE / "error_422_account_disabled.json").read_bytes()), "NP", "loc_NP")
    assert info.value.http_status == 422 and not isinstance(info.value, PayloadError)


def test_parse_error__422_error_object_example_fixture_is_a_provider_error():
    with pytest.raises(ProviderError, match="country_code_missing: Country code is required"):
        parse_error(422, (HERE / "error_object_example.json").read_bytes(), "location loc_NP")


def test_parse_error__404_fixture_names_the_location_to_check():
    with pytest.raises(ProviderError, match=r"location loc_x .region NP.: Not Found .HTTP 404.; check the location id"):
        parse_rates_response(response(404, (HERE / "error_404.json").read_bytes()), "NP", "loc_x")


def test_parse_error__a_non_json_error_body_is_a_payload_error():
    with pytest.raises(PayloadError, match=r"HTTP 422 answer .* not valid JSON"):
        parse_rates_response(response(422, b"<html>oops</html>"), "NP", "loc_NP")


# -- the client without a server ----------------------------------------------------------------------


def make_config(base_url: str, **changes) -> ProviderConfig:
    values = {
        "source": "flatpeak",
        "base_url": base_url,
        "connection_id": CONNECTION_ID,
        "login": ACCOUNT,
        "api_key": KEY,
        "regions": dict(DEFAULT_REGIONS),
        "requests_per_minute": 0,
        "retry": RetryPolicy(max_attempts=3, backoff_base_s=0.01),
    }
    values.update(changes)
    return ProviderConfig(**values)


def test_client__unknown_region_raises_value_error_naming_the_known_ones(tmp_path):
    client = Client(
        make_config("http://127.0.0.1:9"), HttpTransport(make_config("http://127.0.0.1:9"), archive_dir=tmp_path)
    )
    with pytest.raises(ValueError, match="unknown region 'DE'; configured regions: NP, PJM, BE, FR"):
        client.fetch_prices("DE", DAY, DAY + pd.Timedelta(days=1))
    assert client.regions() == ("NP", "PJM", "BE", "FR")
    with pytest.raises(ValueError, match="timezone-aware"):
        client.fetch_prices("NP", pd.Timestamp("2017-06-01"), DAY)


def test_client__missing_credentials_are_an_auth_error_naming_the_connection(tmp_path):
    config = make_config("http://127.0.0.1:9", api_key=None)
    with pytest.raises(AuthError, match="flatpeak_default"):
        Client(config, HttpTransport(config, archive_dir=tmp_path)).fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))


# -- end to end against the sandbox -------------------------------------------------------------------


@pytest.fixture
def connect(sandbox, tmp_path, sleeps):
    def build(clock=None, **changes) -> tuple[Client, HttpTransport]:
        config = make_config(f"{sandbox.url}/flatpeak", **changes)
        transport = HttpTransport(config, archive_dir=tmp_path, sleep=sleeps)
        client = Client(config, transport, clock=clock) if clock else Client(config, transport)
        return client, transport

    return build


def endpoints(transport: HttpTransport) -> list[tuple[str, int | None, str]]:
    return [(c.endpoint, c.http_status, c.status) for c in transport.calls]


def hourly_per_mwh(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby(frame["ts"].dt.floor("h"))["price"].mean() * 1000


@pytest.mark.e2e
def test_e2e__np_day_in_kwh_times_1000_is_the_bundled_history(sandbox, connect):
    client, transport = connect()
    frame = client.fetch_prices("NP", DAY, DAY + pd.Timedelta(days=1))
    assert len(frame) == 96 and frame["ts"].is_monotonic_increasing
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["ts"].iloc[0] == DAY and frame["ts"].iloc[-1] == DAY + pd.Timedelta(hours=23, minutes=45)
    assert set(frame["unit"]) == {"kWh"} and set(frame["currency"]) == {"EUR"} and set(frame["resolution"]) == {"PT15M"}
    expected = sandbox.history.hourly("NP", DAY, DAY + pd.Timedelta(days=1))
    got = hourly_per_mwh(frame)
    assert list(got.index) == list(expected.index)
    assert got.to_numpy() == pytest.approx(expected.to_numpy(), abs=1e-9)
    assert 10 < got.mean() < 100  # a June day in NP, EUR/MWh
    assert endpoints(transport) == [("/login", 200, "ok"), ("/tariffs/rates", 200, "ok")]


@pytest.mark.e2e
def test_e2e__pjm_is_in_usd_and_a_mid_hour_window_is_cut_to_it(sandbox, connect):
    client, _ = connect()
    start, end = DAY + pd.Timedelta(minutes=30), DAY + pd.Timedelta(hours=3, minutes=10)
    frame = client.fetch_prices("PJM", start, end)
    assert frame["ts"].iloc[0] == start and frame["ts"].iloc[-1] == DAY + pd.Timedelta(hours=3)
    assert len(frame) == 11 and set(frame["currency"]) == {"USD"}
    history = sandbox.history.hourly("PJM", DAY, DAY + pd.Timedelta(hours=4))
    assert frame["price"].iloc[0] * 1000 == pytest.approx(history.iloc[0])
    assert frame["price"].iloc[-1] * 1000 == pytest.approx(history.iloc[3])


@pytest.mark.e2e
def test_e2e__neither_the_key_nor_the_bearer_token_reaches_the_logs(sandbox, connect, caplog):
    caplog.set_level(logging.DEBUG)
    client, transport = connect()
    client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))
    tokens = list(sandbox.apps["flatpeak"]._tokens)
    assert len(tokens) == 1
    logged = caplog.text + repr(transport.config) + repr(client._token) + "".join(str(c) for c in transport.calls)
    assert tokens[0] not in logged and KEY not in logged
    assert "logged in" in caplog.text


def test_sandbox__consecutive_equal_hours_are_merged_into_one_interval():
    hours = pd.date_range(DAY, periods=5, freq="h")
    history = SimpleNamespace(
        hourly=lambda region, lo, hi: pd.Series([40.0, 40.0, 40.0, 52.5, float("nan")], index=hours),
        currency=lambda region: "EUR",
    )
    app = App(SimpleNamespace(history=history, config=SimpleNamespace(credentials={}, token_ttl_s=3600)))
    data = app._intervals("NP", DAY.to_pydatetime(), (DAY + pd.Timedelta(hours=5)).to_pydatetime(), UTC)
    assert data == [
        {
            "valid_from": "2017-06-01T00:00:00Z",
            "valid_to": "2017-06-01T03:00:00Z",
            "tariff": {"rate": 0.04, "confidence": 1},
        },
        {
            "valid_from": "2017-06-01T03:00:00Z",
            "valid_to": "2017-06-01T04:00:00Z",
            "tariff": {"rate": 0.0525, "confidence": 1},
        },
    ]
    frame = parse_tariff_rates({"object": "tariff_rate", "currency_code": "EUR", "data": data}, "NP")
    assert len(frame) == 16 and frame["price"].iloc[11] == 0.04 and frame["price"].iloc[12] == 0.0525


@pytest.mark.e2e
def test_e2e__a_window_over_90_days_is_split_and_the_token_is_reused(sandbox, connect):
    client, transport = connect()
    start, end = DAY, DAY + pd.Timedelta(days=100)
    frame = client.fetch_prices("BE", start, end)
    assert len(frame) == 100 * 96 and not frame["ts"].duplicated().any()
    assert hourly_per_mwh(frame).to_numpy() == pytest.approx(
        sandbox.history.hourly("BE", start, end).to_numpy(), abs=1e-9
    )
    assert [e for e, _, _ in endpoints(transport)] == ["/login", "/tariffs/rates", "/tariffs/rates"]


@pytest.mark.e2e
def test_e2e__token_expiring_on_the_server_mid_run_causes_exactly_one_relogin(sandbox, connect):
    app = sandbox.apps["flatpeak"]
    now = [1000.0]
    app.clock = lambda: now[0]
    served = app.handle

    def handle_then_age_tokens(request):
        answer = served(request)
        if request.path.startswith("/tariffs/rates/") and answer.status == 200:
            now[0] += sandbox.config.token_ttl_s  # every token issued so far is now expired
        return answer

    app.handle = handle_then_age_tokens
    client, transport = connect()  # the client's own clock still believes the token is fresh
    start, end = DAY, DAY + pd.Timedelta(days=100)
    frame = client.fetch_prices("NP", start, end)
    assert endpoints(transport) == [
        ("/login", 200, "ok"),
        ("/tariffs/rates", 200, "ok"),
        ("/tariffs/rates", 401, "error"),
        ("/login", 200, "ok"),
        ("/tariffs/rates", 200, "ok"),
    ]
    assert len(frame) == 100 * 96
    assert hourly_per_mwh(frame).to_numpy() == pytest.approx(
        sandbox.history.hourly("NP", start, end).to_numpy(), abs=1e-9
    )


@pytest.mark.e2e
def test_e2e__the_client_logs_in_again_before_its_token_expires(sandbox, connect):
    now = [0.0]
    client, transport = connect(clock=lambda: now[0])
    client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))
    now[0] = sandbox.config.token_ttl_s - 120  # still comfortably valid: reused
    client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))
    now[0] = sandbox.config.token_ttl_s - 30  # inside the 60 s refresh margin: renewed first
    client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))
    assert [e for e, _, _ in endpoints(transport)] == [
        "/login",
        "/tariffs/rates",
        "/tariffs/rates",
        "/login",
        "/tariffs/rates",
    ]
    assert all(status == 200 for _, status, _ in endpoints(transport))


@pytest.mark.e2e
def test_e2e__a_second_refusal_after_relogin_is_an_auth_error_naming_the_connection(sandbox, connect):
    app = sandbox.apps["flatpeak"]
    ticks = iter(range(0, 10**9, 10**6))  # every read of the server clock is a ttl later: tokens die at once
    app.clock = lambda: float(next(ticks))
    client, transport = connect()
    with pytest.raises(AuthError, match="flatpeak_default") as info:
        client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))
    assert info.value.http_status == 401 and "Token expired" in str(info.value)
    assert endpoints(transport) == [
        ("/login", 200, "ok"),
        ("/tariffs/rates", 401, "error"),
        ("/login", 200, "ok"),
        ("/tariffs/rates", 401, "error"),
    ]


@pytest.mark.e2e
def test_e2e__wrong_credentials_are_an_auth_error_naming_the_connection(connect):
    client, transport = connect(api_key="sk_wrong")
    with pytest.raises(AuthError, match=r"credentials refused .HTTP 403: .*Bad credentials.*flatpeak_default") as info:
        client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))
    assert "sk_wrong" not in str(info.value)
    assert endpoints(transport) == [("/login", 403, "error")]


@pytest.mark.e2e
def test_e2e__an_unknown_location_is_a_provider_error_from_the_404(connect):
    client, _ = connect(regions={"NP": "loc_NOWHERE"})
    with pytest.raises(ProviderError, match=r"location loc_NOWHERE .region NP.: Not Found .HTTP 404."):
        client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))


@pytest.mark.e2e
def test_e2e__422_no_price_data_is_recorded_as_no_data_and_gives_an_empty_frame(sandbox, connect):
    app = sandbox.apps["flatpeak"]
    served = app.handle
    app.handle = lambda r: (
        app.error(422, "No price data for this location", code="no_price_data")
        if r.path.startswith("/tariffs/rates/")
        else served(r)
    )
    client, transport = connect()
    frame = client.fetch_prices("FR", DAY, DAY + pd.Timedelta(days=1))
    assert frame.empty and list(frame.columns) == list(SOURCE_COLUMNS)
    assert endpoints(transport)[-1] == ("/tariffs/rates", 422, "no_data")


@pytest.mark.e2e
def test_sandbox__answers_in_the_end_time_offset_and_the_parser_reads_it_as_utc(sandbox):
    base = f"{sandbox.url}/flatpeak"
    token = requests.get(f"{base}/login", auth=(ACCOUNT, KEY), timeout=5).json()["bearer_token"]
    answer = requests.get(
        f"{base}/tariffs/rates/loc_FR",
        timeout=5,
        headers={"Authorization": f"Bearer {token}"},
        params={"start_time": "2017-06-01T02:00:00+01:00", "end_time": "2017-06-01T05:00:00+01:00"},
    )
    doc = answer.json()
    assert answer.status_code == 200 and doc["object"] == "tariff_rate" and doc["location_timezone"] == "Europe/Paris"
    assert doc["data"][0]["valid_from"].endswith("+01:00") and doc["data"][0]["valid_from"].startswith(
        "2017-06-01T02:00"
    )
    assert set(doc) >= {
        "id",
        "live_mode",
        "location_id",
        "currency_code",
        "direction",
        "last_updated",
        "next_update",
        "request",
        "data",
        "time_created",
        "account_id",
    }
    frame = parse_tariff_rates(doc, "FR")
    history = sandbox.history.hourly("FR", DAY + pd.Timedelta(hours=1), DAY + pd.Timedelta(hours=4))
    assert frame["ts"].iloc[0] == DAY + pd.Timedelta(hours=1) and len(frame) == 12
    assert hourly_per_mwh(frame).to_numpy() == pytest.approx(history.to_numpy(), abs=1e-9)


@pytest.mark.e2e
def test_sandbox__bad_requests_get_flatpeak_error_answers(sandbox):
    base = f"{sandbox.url}/flatpeak"
    assert requests.get(f"{base}/login", timeout=5).status_code == 403
    token = requests.get(f"{base}/login", auth=(ACCOUNT, KEY), timeout=5).json()["bearer_token"]
    auth = {"Authorization": f"Bearer {token}"}
    no_end = requests.get(
        f"{base}/tariffs/rates/loc_NP", headers=auth, params={"start_time": "2017-06-01T00:00:00Z"}, timeout=5
    )
    assert (
        no_end.status_code == 422 and no_end.json()["object"] == "error" and no_end.json()["type"] == "invalid_request"
    )
    too_long = requests.get(
        f"{base}/tariffs/rates/loc_NP",
        headers=auth,
        timeout=5,
        params={"start_time": "2017-01-01T00:00:00Z", "end_time": "2017-04-02T00:00:00Z"},
    )
    assert too_long.status_code == 422 and "90 days" in too_long.json()["message"]
    unknown = requests.get(
        f"{base}/tariffs/rates/loc_XX", headers=auth, params={"end_time": "2017-06-01T00:00:00Z"}, timeout=5
    )
    assert (unknown.status_code, unknown.json()) == (404, {"message": "Not Found"})
    stranger = requests.get(
        f"{base}/tariffs/rates/loc_NP",
        headers={"Authorization": "Bearer nope"},
        params={"end_time": "2017-06-01T00:00:00Z"},
        timeout=5,
    )
    assert (stranger.status_code, stranger.json()) == (403, {"message": "Bad credentials"})
    limited = sandbox.apps["flatpeak"].error(429, "slow down")
    assert limited.status == 429 and json.loads(limited.body)["type"] == "rate_limit"
    assert json.loads(sandbox.apps["flatpeak"].error(500, "boom").body)["type"] == "api_error"


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_fault__500_twice_then_recovery(sandbox, connect):
    client, transport = connect()
    client.login()
    sandbox.set_faults({"flatpeak": Fault(kind="500", times=2)})
    frame = client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=2))
    assert len(frame) == 8
    assert endpoints(transport)[1:] == [
        ("/tariffs/rates", 500, "error"),
        ("/tariffs/rates", 500, "error"),
        ("/tariffs/rates", 200, "ok"),
    ]


@pytest.mark.e2e
def test_fault__429_with_retry_after_waits_the_given_second(sandbox, connect, sleeps):
    client, transport = connect()
    client.login()
    sandbox.set_faults({"flatpeak": Fault(kind="429", times=1)})
    assert len(client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))) == 4
    assert 1.0 in sleeps
    assert [s for _, s, _ in endpoints(transport)] == [200, 429, 200]


@pytest.mark.e2e
def test_fault__429_without_retry_after_backs_off(sandbox, connect, sleeps):
    client, transport = connect()
    client.login()
    sandbox.set_faults({"flatpeak": Fault(kind="429-bare", times=2)})
    assert len(client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))) == 4
    assert len(sleeps) == 2 and all(0 <= s <= 0.02 for s in sleeps)  # full jitter under 0.01 * 2**(n-1)
    assert "Retry-After: none" in transport.calls[1].error


@pytest.mark.e2e
def test_fault__malformed_body_is_a_payload_error_with_the_truncated_bytes_archived(sandbox, connect):
    client, transport = connect()
    client.login()
    sandbox.set_faults({"flatpeak": Fault(kind="malformed", times=1)})
    with pytest.raises(PayloadError, match="not valid JSON") as info:
        client.fetch_prices("NP", DAY, DAY + pd.Timedelta(days=1))
    raw = Path(info.value.payload_ref).read_bytes()
    assert raw.startswith(b'{"id": "rts_') and b'"object": "tariff_rate"' in raw
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    assert endpoints(transport)[-1] == ("/tariffs/rates", 200, "error")


@pytest.mark.e2e
def test_fault__slow_answers_time_out_into_a_provider_error(sandbox, connect):
    client, transport = connect(retry=RetryPolicy(read_timeout_s=0.3, max_attempts=2, backoff_base_s=0.01))
    client.login()
    sandbox.set_faults({"flatpeak": Fault(kind="slow", slow_s=1.0)})
    with pytest.raises(ProviderError, match="timed out"):
        client.fetch_prices("NP", DAY, DAY + pd.Timedelta(hours=1))
    assert [(e, s) for e, s, _ in endpoints(transport)][1:] == [("/tariffs/rates", None), ("/tariffs/rates", None)]


def test_module_constants_follow_the_contract():
    assert flatpeak.SOURCE == "flatpeak" and flatpeak.DEFAULT_BASE_URL == "https://api.flatpeak.com"
    assert flatpeak.CONNECTION_ID == "flatpeak_default" and flatpeak.REQUESTS_PER_MINUTE == 60
    assert DEFAULT_REGIONS == {"NP": "loc_NP", "PJM": "loc_PJM", "BE": "loc_BE", "FR": "loc_FR"}


def test_parse__a_rate_too_large_for_a_float_is_a_payload_error_not_an_overflow():
    with pytest.raises(
        PayloadError, match=r"tariff.rate is 1000000000000000000000000000000000000000… \(401 characters\)"
    ):
        parse_tariff_rates(body(tariff={"rate": 10**400}), "NP")


def test_parse__an_interval_ending_in_year_9999_is_refused_naming_the_time():
    with pytest.raises(PayloadError, match=r"data\[0\].valid_to '9999-12-31T00:00:00Z' is not a tariff time"):
        parse_tariff_rates(body(valid_to="9999-12-31T00:00:00Z"), "NP")


def test_parse__an_interval_reaching_months_past_the_window_is_refused_before_it_is_expanded():
    window = (pd.Timestamp("2022-12-28", tz="UTC"), pd.Timestamp("2022-12-29", tz="UTC"))
    with pytest.raises(PayloadError, match=r"data\[0\]: time 2023-06-30T23:45:00\+00:00 lies outside the requested"):
        parse_tariff_rates(body(valid_to="2023-07-01T00:00:00Z"), "NP", window)
