"""OpenEI URDB v7: the real tariff example expanded by hand, bad tariffs, and the client against the sandbox."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from core.markets import load_market
from core.regions import load_catalogue
from ingestion.http import AuthError, HttpTransport, PayloadError, ProviderConfig, ProviderError, RetryPolicy
from ingestion.sandbox.server import Fault
from ingestion.sources import SOURCE_COLUMNS, openei
from tests.conftest import FIXTURES

# the region catalogue's ids of the enabled regions (what the product configures)
DEFAULT_REGIONS: dict[str, object] = load_catalogue().provider_ids("openei")

OPENEI = FIXTURES / "openei"
REAL = OPENEI / "utility_rates_v7_getpage_full_618940545457a35a1c4097ec.json"
KEY = "sandbox-nrel-key"
DENVER = "America/Denver"
# energyratestructure of the real Colorado example, period -> rate + adj (USD/kWh)
P0, P1, P2, P3, P4 = (
    0.06387 + 0.035187,
    0.08623 + 0.0085112,
    0.10858 + 0.049546,
    0.11816 + 0.0070699,
    0.17246 + 0.047412,
)


def real_doc() -> dict:
    return json.loads(REAL.read_text())


def real_item() -> dict:
    return real_doc()["items"][0]


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def price_at(tariffs, when_local: str, tz: str = DENVER) -> float | None:
    ts = pd.Timestamp(when_local, tz=tz).tz_convert("UTC")
    frame = openei.tariff_prices(tariffs, ts, ts + pd.Timedelta(hours=1), tz)
    return None if frame.empty else float(frame["price"].iloc[0])


# -- the real example -----------------------------------------------------------------------------


def test_parse__real_example_keeps_label_dates_and_rate_plus_adj_per_period():
    [tariff] = openei.parse_utility_rates(REAL.read_bytes())
    assert tariff.label == "618940545457a35a1c4097ec" and tariff.utility == "Public Service Co of Colorado"
    assert tariff.name == "Residential Energy Time Of Use (Schedule RE-TOU)"
    assert tariff.start == utc("2021-10-01 06:00")  # 1633068000 = midnight MDT
    assert tariff.end == utc("2022-06-30 07:00")  # 1656572400
    assert tariff.prices.tolist() == pytest.approx([P0, P1, P2, P3, P4])
    assert tariff.weekday.shape == tariff.weekend.shape == (12, 24)


def test_expand__summer_weekday_afternoon_is_period_4_in_denver_time():
    tariffs = openei.parse_utility_rates(REAL.read_bytes())
    assert price_at(tariffs, "2022-06-01 15:00") == pytest.approx(0.17246 + 0.047412)  # Wednesday, June
    assert price_at(tariffs, "2022-06-01 10:00") == pytest.approx(P3)
    assert price_at(tariffs, "2022-06-04 15:00") == pytest.approx(P3)  # Saturday: weekend schedule
    assert price_at(tariffs, "2022-01-12 16:00") == pytest.approx(P2)  # Wednesday, January
    assert price_at(tariffs, "2022-01-12 03:00") == pytest.approx(P0)
    assert price_at(tariffs, "2022-01-15 12:00") == pytest.approx(P1)  # Saturday, January


def test_expand__a_july_weekday_afternoon_uses_month_index_6():
    item = real_item()
    del item["startdate"], item["enddate"]
    tariffs = openei.parse_utility_rates({"items": [item]})
    assert price_at(tariffs, "2021-07-14 15:00") == pytest.approx(0.17246 + 0.047412)
    ts = pd.Timestamp("2021-07-14 15:00", tz=DENVER).tz_convert("UTC")
    assert ts == utc("2021-07-14 21:00")


def test_expand__a_local_june_weekday_has_12_offpeak_8_shoulder_and_4_peak_hours():
    tariffs = openei.parse_utility_rates(REAL.read_bytes())
    day = pd.Timestamp("2022-06-01", tz=DENVER)
    frame = openei.tariff_prices(tariffs, day.tz_convert("UTC"), (day + pd.Timedelta(days=1)).tz_convert("UTC"), DENVER)
    assert len(frame) == 24 and frame["ts"].iloc[0] == utc("2022-06-01 06:00")
    counts = frame["price"].round(7).value_counts().to_dict()
    assert counts == {round(P0, 7): 12, round(P3, 7): 8, round(P4, 7): 4}


def test_expand__startdate_and_enddate_bound_the_hours_served():
    tariffs = openei.parse_utility_rates(REAL.read_bytes())
    frame = openei.tariff_prices(tariffs, utc("2021-10-01 04:00"), utc("2021-10-01 08:00"), DENVER)
    assert frame["ts"].tolist() == [utc("2021-10-01 06:00"), utc("2021-10-01 07:00")]
    frame = openei.tariff_prices(tariffs, utc("2022-06-30 05:00"), utc("2022-06-30 09:00"), DENVER)
    assert frame["ts"].tolist() == [utc("2022-06-30 05:00"), utc("2022-06-30 06:00")]
    assert openei.tariff_prices(tariffs, utc("2022-07-01"), utc("2022-08-01"), DENVER).empty


def test_expand__each_hour_uses_the_item_in_effect_then():
    older = real_item()
    del older["enddate"]
    newer = copy.deepcopy(older) | {"label": "newer", "startdate": int(utc("2022-01-01 07:00").timestamp())}
    newer["energyratestructure"] = [[{"unit": "kWh", "rate": 1.0 + p}] for p in range(5)]  # no adj: 0
    tariffs = openei.parse_utility_rates({"items": [newer, older]})
    assert price_at(tariffs, "2021-12-15 03:00") == pytest.approx(P0)
    assert price_at(tariffs, "2022-01-12 16:00") == pytest.approx(3.0)
    assert price_at(tariffs, "2021-09-15 03:00") is None  # before either starts


def test_expand__two_items_starting_together_are_ambiguous():
    twin = real_item() | {"label": "twin"}
    tariffs = openei.parse_utility_rates({"items": [real_item(), twin]})
    with pytest.raises(ProviderError, match=r"both start .* pin one with 'getpage'"):
        openei.tariff_prices(tariffs, utc("2022-01-01"), utc("2022-01-02"), DENVER)


# -- bad tariffs ----------------------------------------------------------------------------------


def broken(change) -> dict:
    item = real_item()
    change(item)
    return {"items": [item]}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda i: i["energyweekdayschedule"].pop(), "energyweekdayschedule is not 12 months x 24 hours"),
        (lambda i: i["energyweekendschedule"][3].pop(), "energyweekendschedule is not 12 months x 24 hours"),
        (
            lambda i: i["energyweekdayschedule"][6].__setitem__(15, 5),
            r"energyweekdayschedule\[6\]\[15\] = 5 is not a period",
        ),
        (lambda i: i["energyweekendschedule"][0].__setitem__(0, -1), "is not a period index"),
        (lambda i: i["energyweekdayschedule"][0].__setitem__(0, "1"), "is not a period index"),
        (lambda i: i.pop("energyratestructure"), "no energyratestructure"),
        (lambda i: i.__setitem__("energyratestructure", []), "no energyratestructure"),
        (lambda i: i["energyratestructure"][2][0].__setitem__("unit", "kWh daily"), "only 'kWh' prices"),
        (lambda i: i["energyratestructure"][2][0].pop("unit"), "unit is None"),
        (lambda i: i["energyratestructure"][1][0].__setitem__("rate", "0.08"), r"energyratestructure\[1\]\[0\].rate"),
        (lambda i: i["energyratestructure"][1][0].__setitem__("adj", None), r"\[1\]\[0\].adj"),
        (lambda i: i["energyratestructure"].__setitem__(4, []), r"energyratestructure\[4\] is not a non-empty list"),
        (lambda i: i.__setitem__("startdate", "2021-10-01"), "startdate"),
        (lambda i: i.__setitem__("enddate", i["startdate"]), "enddate .* is not after startdate"),
        (lambda i: i.pop("label"), "has no label"),
    ],
)
def test_parse__malformed_tariffs_are_payload_errors(change, match):
    with pytest.raises(PayloadError, match=match):
        openei.parse_utility_rates(broken(change))


def test_parse__missing_adj_counts_as_zero():
    [tariff] = openei.parse_utility_rates(broken(lambda i: i["energyratestructure"][4][0].pop("adj")))
    assert tariff.prices[4] == pytest.approx(0.17246)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (REAL.read_bytes()[:500], "not valid JSON"),
        (b"[]", "JSON list"),
        (b'{"rates": []}', "no 'items' array"),
        (b'{"items": [7]}', r"items\[0\] is a int"),
        ((OPENEI / "error_api_key_missing.json").read_bytes(), "API error API_KEY_MISSING: No api_key was supplied"),
    ],
)
def test_parse__foreign_truncated_or_error_bodies_are_payload_errors(body, match):
    with pytest.raises(PayloadError, match=match):
        openei.parse_utility_rates(body)


def test_parse__an_empty_items_page_is_an_empty_list():
    assert openei.parse_utility_rates(b'{"items": []}') == []


# -- the client -----------------------------------------------------------------------------------


def make_client(
    base_url: str,
    tmp_path: Path,
    sleeps,
    *,
    api_key: str | None = KEY,
    regions=None,
    retry: RetryPolicy = RetryPolicy(),
    extra=None,
) -> tuple[openei.Client, HttpTransport]:
    config = ProviderConfig(
        source="openei",
        base_url=base_url,
        connection_id=openei.CONNECTION_ID,
        api_key=api_key,
        regions=dict(DEFAULT_REGIONS if regions is None else regions),
        requests_per_minute=0,
        retry=retry,
        extra=extra or {},
    )
    transport = HttpTransport(config, archive_dir=tmp_path, sleep=sleeps)
    return openei.Client(config, transport), transport


def test_client__bad_regions_are_value_errors_before_any_request(tmp_path, sleeps):
    client, transport = make_client(
        "http://127.0.0.1:9",
        tmp_path,
        sleeps,
        regions={
            "PJM": DEFAULT_REGIONS["PJM"],
            "A": {"lat": 1, "lon": 2},
            "B": {"timezone": "Mars/Olympus", "getpage": "x"},
            "C": {"timezone": "UTC", "lat": 1, "lon": 2, "sector": "farm"},
            "D": {"timezone": "UTC"},
        },
    )
    start, end = utc("2024-01-01"), utc("2024-01-02")
    for region, match in (
        ("NP", "unknown region 'NP'.*PJM"),
        ("A", "'timezone'"),
        ("B", "unknown timezone"),
        ("C", "sector 'Farm'"),
        ("D", "'getpage' or 'lat'"),
    ):
        with pytest.raises(ValueError, match=match):
            client.fetch_prices(region, start, end)
    with pytest.raises(ValueError, match="timezone-aware"):
        client.fetch_prices("PJM", pd.Timestamp("2024-01-01"), end)
    assert transport.calls == []


def test_module__defaults_share_the_nrel_connection_and_point_at_chicago():
    assert openei.DEFAULT_BASE_URL == "https://api.openei.org" and openei.CONNECTION_ID == "nrel_default"
    assert DEFAULT_REGIONS["PJM"] == {
        "lat": 41.8781,
        "lon": -87.6298,
        "timezone": "America/Chicago",
        "sector": "Commercial",
    }


# -- end to end against the sandbox ---------------------------------------------------------------


def independent_period_means(market_data_dir: Path) -> list[float]:
    """The documented sandbox schedule restated: off-peak 21-9, peak 14-18 weekdays, summer Jun-Sep."""
    prices = load_market("PJM", market_data_dir).prices
    local = prices["ts"].dt.tz_convert("America/Chicago")
    hour, summer, weekday = local.dt.hour, local.dt.month.between(6, 9), local.dt.dayofweek < 5
    period = np.where((hour < 9) | (hour >= 21), 0, np.where(weekday & (hour >= 14) & (hour < 18), 2, 1))
    period = np.where((period > 0) & summer, period + 2, period)
    return [round(prices["price"][period == p].mean() / 1000, 5) for p in range(5)]


def served_item(sandbox, **params) -> dict:
    response = requests.get(
        f"{sandbox.url}/openei/utility_rates",
        timeout=10,
        params={"api_key": KEY, "version": "7", "format": "json", "detail": "full", **params},
    )
    assert response.status_code == 200
    return response.json()["items"][0]


def test_sandbox__tariff_rates_are_the_pjm_period_means_in_the_v7_item_shape(sandbox, market_data_dir):
    item = served_item(sandbox, lat="41.8781", lon="-87.6298", sector="Commercial")
    means = independent_period_means(market_data_dir)
    assert [tiers[0]["rate"] for tiers in item["energyratestructure"]] == means
    assert all(tiers[0]["adj"] == 0.03 and tiers[0]["unit"] == "kWh" for tiers in item["energyratestructure"])
    assert means[0] < means[1] < means[2] and means[3] < means[4]  # peak dearer than shoulder dearer than night
    real_keys = set(real_item()) - {"enddate", "supersedes"}
    assert real_keys <= set(item) and item["utility"] == "Commonwealth Edison Co" and item["sector"] == "Commercial"


def test_sandbox__chicago_commercial_prices_follow_the_schedule(sandbox, tmp_path, sleeps, market_data_dir):
    client, transport = make_client(f"{sandbox.url}/openei", tmp_path, sleeps)
    start, end = utc("2024-07-10 05:00"), utc("2024-07-14 05:00")  # Wed 00:00 - Sun 00:00 CDT
    frame = client.fetch_prices("PJM", start, end)
    means = independent_period_means(market_data_dir)
    assert list(frame.columns) == list(SOURCE_COLUMNS) and str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert len(frame) == 96 and frame["ts"].iloc[0] == start and frame["ts"].is_monotonic_increasing
    by_ts = frame.set_index("ts")["price"]
    assert by_ts[utc("2024-07-10 20:00")] == pytest.approx(means[4] + 0.03)  # Wed 15:00 CDT, summer peak
    assert by_ts[utc("2024-07-10 15:00")] == pytest.approx(means[3] + 0.03)  # Wed 10:00 CDT
    assert by_ts[utc("2024-07-10 08:00")] == pytest.approx(means[0] + 0.03)  # Wed 03:00 CDT
    assert by_ts[utc("2024-07-13 20:00")] == pytest.approx(means[3] + 0.03)  # Sat 15:00 CDT: weekend
    assert set(frame["unit"]) == {"kWh"} and set(frame["currency"]) == {"USD"} and set(frame["resolution"]) == {"PT60M"}
    assert [(c.endpoint, c.status, c.records) for c in transport.calls] == [("/utility_rates", "ok", 1)]
    winter = client.fetch_prices("PJM", utc("2024-01-16 21:00"), utc("2024-01-16 22:00"))  # Tue 15:00 CST
    assert winter["price"].tolist() == [pytest.approx(means[2] + 0.03)]


def test_sandbox__pages_until_a_short_page(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/openei", tmp_path, sleeps, extra={"page_limit": 1})
    tariffs = client.fetch_tariffs("PJM")
    assert [t.utility for t in tariffs] == ["Commonwealth Edison Co"]
    assert [(c.status, c.records) for c in transport.calls] == [("ok", 1), ("no_data", 0)]


def test_sandbox__getpage_locator_and_unknown_places_or_dates(sandbox, tmp_path, sleeps):
    label = served_item(sandbox)["label"]
    client, _ = make_client(
        f"{sandbox.url}/openei",
        tmp_path,
        sleeps,
        regions={
            "PJM": {"getpage": label, "timezone": "America/Chicago"},
            "NOWHERE": {"getpage": "000000000000000000000000", "timezone": "America/Chicago"},
            "CAROLINA": {"lat": 35.45, "lon": -82.98, "timezone": "America/New_York", "sector": "Commercial"},
        },
    )
    assert len(client.fetch_prices("PJM", utc("2024-01-01"), utc("2024-01-02"))) == 24
    assert client.fetch_prices("PJM", utc("2012-06-01"), utc("2012-06-02")).empty  # before the tariff starts
    assert client.fetch_prices("NOWHERE", utc("2024-01-01"), utc("2024-01-02")).empty
    assert client.fetch_prices("CAROLINA", utc("2024-01-01"), utc("2024-01-02")).empty


def test_sandbox__without_detail_full_the_listing_has_no_rate_structure(sandbox):
    response = requests.get(
        f"{sandbox.url}/openei/utility_rates", timeout=10, params={"api_key": KEY, "version": "7", "format": "json"}
    )
    assert b"\\/" in response.content  # URDB escapes slashes
    with pytest.raises(PayloadError, match="no energyratestructure"):
        openei.parse_utility_rates(response.content)


def test_sandbox__key_checks_answer_api_umbrella_403_bodies(sandbox):
    url = f"{sandbox.url}/openei/utility_rates"
    missing = requests.get(url, params={"version": "7"}, timeout=10)
    assert missing.status_code == 403 and missing.json() == json.loads(
        (OPENEI / "error_api_key_missing.json").read_text()
    )
    wrong = requests.get(url, params={"version": "7", "api_key": "nope"}, timeout=10)
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "API_KEY_INVALID"


def test_sandbox__wrong_key_is_an_auth_error_naming_the_nrel_connection(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/openei", tmp_path, sleeps, api_key="wrong-key")
    with pytest.raises(AuthError, match="nrel_default") as caught:
        client.fetch_prices("PJM", utc("2024-01-01"), utc("2024-01-02"))
    assert "API_KEY_INVALID" in str(caught.value) and "wrong-key" not in str(caught.value)
    assert [c.http_status for c in transport.calls] == [403]


def test_sandbox__500_twice_then_recovers(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/openei", tmp_path, sleeps)
    sandbox.set_faults({"openei": Fault(kind="500", times=2)})
    assert len(client.fetch_prices("PJM", utc("2024-01-01"), utc("2024-01-01 06:00"))) == 6
    assert [(c.status, c.http_status) for c in transport.calls] == [("error", 500), ("error", 500), ("ok", 200)]


def test_sandbox__429_with_retry_after_waits_the_given_second(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/openei", tmp_path, sleeps)
    sandbox.set_faults({"openei": Fault(kind="429", times=1)})
    assert len(client.fetch_prices("PJM", utc("2024-01-01"), utc("2024-01-01 01:00"))) == 1
    assert sleeps == [1.0] and [c.http_status for c in transport.calls] == [429, 200]


def test_sandbox__429_without_retry_after_backs_off(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/openei", tmp_path, sleeps)
    sandbox.set_faults({"openei": Fault(kind="429-bare", times=1)})
    assert len(client.fetch_prices("PJM", utc("2024-01-01"), utc("2024-01-01 01:00"))) == 1
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= RetryPolicy().backoff_base_s
    assert "Retry-After: none" in transport.calls[0].error


def test_sandbox__malformed_body_is_archived_without_the_key_in_its_record(sandbox, tmp_path, sleeps):
    client, transport = make_client(f"{sandbox.url}/openei", tmp_path, sleeps)
    sandbox.set_faults({"openei": Fault(kind="malformed", times=1)})
    with pytest.raises(PayloadError, match="not valid JSON") as caught:
        client.fetch_prices("PJM", utc("2024-01-01"), utc("2024-01-02"))
    full = requests.get(
        f"{sandbox.url}/openei/utility_rates",
        timeout=10,
        params={
            "api_key": KEY,
            "version": "7",
            "format": "json",
            "detail": "full",
            "lat": "41.878100",
            "lon": "-87.629800",
            "sector": "Commercial",
            "approved": "true",
            "is_default": "true",
        },
    ).content
    archived = Path(caught.value.payload_ref)
    assert archived.read_bytes() == full[: len(full) // 2]
    meta = archived.with_suffix(".meta").read_text()
    assert meta.startswith("endpoint: /utility_rates\nnote: utility_rates answer is not valid JSON") and KEY not in meta
    assert KEY not in str(caught.value) and all(KEY not in (c.error or "") for c in transport.calls)


def test_sandbox__slow_answer_times_out(sandbox, tmp_path, sleeps):
    client, _ = make_client(
        f"{sandbox.url}/openei", tmp_path, sleeps, retry=RetryPolicy(read_timeout_s=0.3, max_attempts=2)
    )
    sandbox.set_faults({"openei": Fault(kind="slow", slow_s=1.0)})
    with pytest.raises(ProviderError, match="timed out"):
        client.fetch_prices("PJM", utc("2024-01-01"), utc("2024-01-02"))


@pytest.mark.parametrize("startdate", [10**12, -1, 10**30])
def test_parse__a_startdate_no_tariff_can_have_is_a_payload_error_not_a_timestamp_overflow(startdate):
    item = real_item() | {"startdate": startdate}
    with pytest.raises(PayloadError, match=r"startdate .* is not a tariff date \(unix seconds from 1970 to 2200\)"):
        openei.parse_tariff(item)


def test_parse__a_rate_too_large_for_a_float_is_a_payload_error():
    item = real_item()
    item["energyratestructure"][0][0]["rate"] = 10**400
    with pytest.raises(
        PayloadError, match=r"energyratestructure\[0\]\[0\].rate is 1000.*\(401 characters\), expected a finite"
    ):
        openei.parse_tariff(item)
