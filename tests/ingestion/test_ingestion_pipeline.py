"""Aggregation, validation, quarantine and health rows, the markets-open rule, and the transport's rules."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from core.regions import BUNDLED_CATALOGUE, load_catalogue
from ingestion.aggregate import aggregate_hourly
from ingestion.http import ApiCall, RateLimiter, RetryPolicy, parse_retry_after
from ingestion.pipeline import cycle_window, missing_hours, published_until, quarantine_rejected
from ingestion.validation import ValidationFailed, validate_prices
from storage.health import ApiHealthStore, QuarantinedRow, QuarantineStore
from storage.prices import SOURCE_PRIORITY


def rows(
    source="entsoe",
    region="BE",
    start="2016-06-01 00:00",
    periods=4,
    freq="15min",
    prices=None,
    unit="MWh",
    resolution="PT15M",
    currency="EUR",
) -> pd.DataFrame:
    ts = pd.date_range(start, periods=periods, freq=freq, tz="UTC").astype("datetime64[us, UTC]")
    return pd.DataFrame(
        {
            "region": region,
            "source": source,
            "ts": ts,
            "price": prices if prices is not None else [10.0 + i for i in range(periods)],
            "currency": currency,
            "unit": unit,
            "resolution": resolution,
        }
    )


# -- aggregation ----------------------------------------------------------------------------------


def test_aggregate__quarter_hours_become_the_hourly_mean():
    result = aggregate_hourly(rows(periods=8, prices=[10, 20, 30, 40, -4, -4, 0, 0]))
    assert result.hourly["price"].tolist() == [25.0, -2.0]
    assert result.hourly["ts"].tolist() == [
        pd.Timestamp("2016-06-01 00:00", tz="UTC"),
        pd.Timestamp("2016-06-01 01:00", tz="UTC"),
    ]
    assert set(result.hourly["resolution"]) == {"PT60M"} and set(result.hourly["unit"]) == {"MWh"}
    assert result.rejected.empty


def test_aggregate__per_kwh_becomes_per_mwh():
    result = aggregate_hourly(rows(source="flatpeak", periods=4, prices=[0.25] * 4, unit="kWh"))
    assert result.hourly["price"].tolist() == [250.0]


def test_aggregate__an_incomplete_hour_is_rejected_not_averaged():
    result = aggregate_hourly(rows(periods=6))  # 00:00-01:15: the 01:00 hour has 2 of 4 slots
    assert len(result.hourly) == 1
    assert len(result.rejected) == 2 and set(result.rejected["reason"]) == {"incomplete hour: 2 of 4 slots"}


def test_aggregate__exact_duplicates_are_dropped_and_out_of_order_rows_sorted():
    frame = rows(periods=4, resolution="PT15M")
    shuffled = pd.concat([frame.iloc[[3, 1]], frame, frame.iloc[[0]]], ignore_index=True)
    result = aggregate_hourly(shuffled)
    assert result.hourly["price"].tolist() == [11.5] and result.rejected.empty


def test_aggregate__conflicting_duplicates_are_rejected_with_the_reason():
    frame = rows(periods=4)
    clash = frame.iloc[[2]].assign(price=99.0)
    result = aggregate_hourly(pd.concat([frame, clash], ignore_index=True))
    assert (result.rejected["reason"] == "conflicting duplicate prices for the same source and time").sum() == 2
    # the hour lost a slot to the conflict, so it is incomplete and rejected too, never half-used
    assert result.hourly.empty


def test_aggregate__unknown_units_are_rejected():
    result = aggregate_hourly(rows(periods=4, unit="pence"))
    assert result.hourly.empty and result.rejected["reason"].str.startswith("unknown price unit pence").all()


def test_aggregate__sources_and_regions_stay_apart():
    frame = pd.concat(
        [
            rows(periods=4),
            rows(source="iea", periods=1, resolution="PT60M", prices=[7.0]),
            rows(region="FR", periods=4),
        ],
        ignore_index=True,
    )
    result = aggregate_hourly(frame)
    assert sorted(zip(result.hourly["region"], result.hourly["source"], strict=False)) == [
        ("BE", "entsoe"),
        ("BE", "iea"),
        ("FR", "entsoe"),
    ]


# -- validation -----------------------------------------------------------------------------------

RUN = pd.Timestamp("2016-06-01 12:00", tz="UTC")
CATALOGUE = load_catalogue(BUNDLED_CATALOGUE)


def hourly(**kwargs) -> pd.DataFrame:
    return aggregate_hourly(rows(resolution="PT60M", freq="h", **kwargs)).hourly


def test_validate__accepts_plausible_rows_including_negative_prices():
    result = validate_prices(
        hourly(periods=5, prices=[-120.0, 0.0, 35.5, 80.0, 3999.0]), run_time=RUN, catalogue=CATALOGUE
    )
    assert len(result.accepted) == 5 and result.rejected.empty


def test_validate__rejects_out_of_range_prices_with_the_bounds():
    result = validate_prices(hourly(periods=3, prices=[50.0, 9000.0, -800.0]), run_time=RUN, catalogue=CATALOGUE)
    assert result.accepted["price"].tolist() == [50.0]
    assert result.rejected["reason"].tolist() == [
        "range: price 9000.0 outside the plausible range [-500.0, 4000.0] for BE",
        "range: price -800.0 outside the plausible range [-500.0, 4000.0] for BE",
    ]


def test_validate__rejects_timestamps_beyond_the_publication_horizon():
    frame = hourly(start="2016-06-03 10:00", periods=4)  # run time + 46 h .. + 49 h
    result = validate_prices(frame, run_time=RUN, catalogue=CATALOGUE)
    assert len(result.accepted) == 3
    assert (
        result.rejected["reason"]
        .iloc[0]
        .startswith("future: 2016-06-03 13:00:00+00:00 is beyond the publication horizon of entsoe")
    )


def test_validate__history_rows_may_not_be_in_the_future_at_all():
    result = validate_prices(
        hourly(source="epf-history", start="2016-06-01 12:00", periods=2), run_time=RUN, catalogue=CATALOGUE
    )
    assert len(result.accepted) == 1 and len(result.rejected) == 1


def test_validate__rejects_bad_currency_and_duplicates():
    frame = pd.concat([hourly(periods=2), hourly(periods=1, currency="euro")], ignore_index=True)
    result = validate_prices(frame, run_time=RUN, catalogue=CATALOGUE)
    reasons = sorted(result.rejected["reason"])
    assert "schema: currency is not an ISO 4217 code" in reasons
    assert reasons.count("duplicate: more than one price for this region, source and hour") == 1
    assert len(result.accepted) == 1


def test_validate__a_zone_the_catalogue_in_use_does_not_hold_fails_the_cycle_naming_the_zone_and_the_file(tmp_path):
    """The providers are configured from the settings' catalogue; a zone only that catalogue holds, validated
    against another one (the bundled), is an error naming the zone and the file, never 0 rows stored."""
    own = tmp_path / "regions.toml"
    own.write_text(
        BUNDLED_CATALOGUE.read_text()
        + '\n[regions.ZZ]\nname = "An operator\'s own zone"\nzone = "Europe/Amsterdam"\ncurrency = "EUR"\n'
        'holidays = { country = "NL" }\nexogenous = ["load_forecast"]\n'
    )
    frame = pd.concat([hourly(periods=2), hourly(region="ZZ", periods=2)], ignore_index=True)
    with pytest.raises(ValidationFailed) as caught:
        validate_prices(frame, run_time=RUN, catalogue=CATALOGUE)
    message = str(caught.value)
    assert message.startswith(
        f"price rows for region ZZ, which the region catalogue in use ({BUNDLED_CATALOGUE}) does not hold: "
        f"unknown region 'ZZ': {BUNDLED_CATALOGUE} has no entry for it"
    )
    # against the settings' own catalogue, the same rows are validated and kept
    result = validate_prices(frame, run_time=RUN, catalogue=load_catalogue(own))
    assert len(result.accepted) == 4 and result.rejected.empty
    assert sorted(result.accepted["region"].unique()) == ["BE", "ZZ"]


def test_validate__too_few_rows_fails_the_cycle_naming_the_variable():
    with pytest.raises(
        ValidationFailed, match=r"only 3 valid price rows this cycle \(price_ingestion_min_records = 24\)"
    ):
        validate_prices(hourly(periods=3), run_time=RUN, catalogue=CATALOGUE, min_records=24)


def test_validate__naive_timestamps_fail_loudly():
    frame = hourly(periods=2)
    frame["ts"] = frame["ts"].dt.tz_localize(None)
    with pytest.raises(ValidationFailed, match="not tz-aware UTC"):
        validate_prices(frame, run_time=RUN, catalogue=CATALOGUE)


# -- quarantine and health ------------------------------------------------------------------------


def test_quarantine__keeps_reason_and_payload_ref_and_is_idempotent(store):
    quarantine = QuarantineStore(store.engine)
    rejected = validate_prices(
        hourly(periods=3, prices=[50.0, 9000.0, 60.0]), run_time=RUN, catalogue=CATALOGUE
    ).rejected
    assert quarantine_rejected(rejected, quarantine) == 1
    assert quarantine_rejected(rejected, quarantine) == 0
    payload = QuarantinedRow(
        source="entsoe", region="FR", reason="unparseable payload: truncated XML", payload_ref="/x/y.raw"
    )
    assert quarantine.add([payload, payload]) == 1
    stored = quarantine.read()
    assert len(stored) == 2
    assert stored.loc[0, "raw_value"] == "9000.0" and stored.loc[0, "ts"] == pd.Timestamp("2016-06-01 01:00", tz="UTC")
    assert stored.loc[1, "payload_ref"] == "/x/y.raw"


def test_api_health__one_row_per_call(store):
    health = ApiHealthStore(store.engine)
    now = datetime.now(UTC)
    calls = [
        ApiCall("entsoe", "/api", "ok", 200, 12.5, 24, None, now),
        ApiCall("entsoe", "/api", "error", 500, 3.0, 0, "HTTP 500", now + timedelta(seconds=1)),
    ]
    assert health.record(calls) == 2
    frame = health.read(source="entsoe")
    assert frame["status"].tolist() == ["ok", "error"] and frame["records"].tolist() == [24, 0]


# -- the markets-open rule --------------------------------------------------------------------------


def test_published_until__day_ahead_prices_arrive_after_the_auction():
    before = pd.Timestamp("2016-06-01 10:59", tz="UTC")  # 12:59 CEST
    after = pd.Timestamp("2016-06-01 11:00", tz="UTC")  # 13:00 CEST
    assert published_until("BE", before, CATALOGUE) == pd.Timestamp("2016-06-01 22:00", tz="UTC")
    assert published_until("BE", after, CATALOGUE) == pd.Timestamp("2016-06-02 22:00", tz="UTC")
    assert published_until("PJM", pd.Timestamp("2016-06-01 17:30", tz="UTC"), CATALOGUE) == pd.Timestamp(
        "2016-06-03 04:00", tz="UTC"
    )


def test_missing_hours__zero_once_every_publishable_hour_is_stored(store):
    run = pd.Timestamp("2016-06-01 09:00", tz="UTC")  # before the BE auction: publishable until 22:00 today
    start, end = cycle_window(run)
    assert (start, end) == (pd.Timestamp("2016-05-31 09:00", tz="UTC"), pd.Timestamp("2016-06-02 09:00", tz="UTC"))
    assert missing_hours(store, ["BE"], run, CATALOGUE) == {"BE": 37}
    frame = hourly(start="2016-05-31 09:00", periods=36)
    store.upsert_prices(frame)
    assert missing_hours(store, ["BE"], run, CATALOGUE) == {"BE": 1}
    store.upsert_prices(hourly(start="2016-06-01 21:00", periods=1))
    assert missing_hours(store, ["BE"], run, CATALOGUE) == {"BE": 0}


def test_canonical_priority__wholesale_before_retail():
    assert SOURCE_PRIORITY.index("entsoe") < SOURCE_PRIORITY.index("epf-history") < SOURCE_PRIORITY.index("flatpeak")


def test_read_canonical__takes_the_highest_priority_source_per_hour(store):
    store.upsert_prices(
        pd.concat(
            [
                hourly(source="flatpeak", periods=3, prices=[200.0] * 3),
                hourly(source="entsoe", periods=2, prices=[40.0, 41.0]),
            ],
            ignore_index=True,
        )
    )
    canonical = store.read_canonical("BE")
    assert canonical["price"].tolist() == [40.0, 41.0, 200.0]
    assert canonical["source"].tolist() == ["entsoe", "entsoe", "flatpeak"]


# -- transport rules --------------------------------------------------------------------------------


def test_retry_after__seconds_and_http_dates():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_backoff__is_exponential_with_full_jitter_and_capped():
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=4.0)
    rng = random.Random(7)
    waits = [[policy.backoff_s(attempt, rng) for _ in range(200)] for attempt in (1, 2, 3, 5)]
    assert max(waits[0]) <= 0.5 and max(waits[1]) <= 1.0 and max(waits[2]) <= 2.0 and max(waits[3]) <= 4.0
    assert max(waits[3]) > 3.0 and min(waits[3]) < 1.0  # jitter spreads the retries


def test_rate_limiter__allows_the_limit_per_minute_then_waits_for_the_window():
    clock = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(per_minute=3, clock=lambda: clock[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert slept == []  # a burst within the limit goes at once
    clock[0] += 10
    limiter.wait()
    assert slept == [50.0]  # the 4th waits until the first call is 60 s old
    limiter.wait()
    limiter.wait()
    assert slept == [50.0]  # the three first calls left the window together: two more go at once
    limiter.wait()
    assert slept == [50.0, 60.0]  # a 4th call within that minute waits for the window again


def test_sandbox__enforces_each_providers_rate_limit_with_a_bare_429(market_data_dir):
    import requests

    from ingestion.sandbox.server import DEFAULT_CREDENTIALS, Sandbox, SandboxConfig

    config = SandboxConfig(data_dir=market_data_dir, requests_per_minute={"iea": 2})
    with Sandbox(config) as sandbox:
        url = f"{sandbox.url}/iea/rte/price/hourly/FRA/timeseries"
        params = {"from": "2016-01-01", "to": "2016-01-01", "currency": "local"}
        statuses = [requests.get(url, params=params, timeout=10) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert "Retry-After" not in statuses[2].headers  # as the real providers: no Retry-After
        nrel = f"{sandbox.url}/nrel/api/utility_rates/v3.json"
        headers = {"X-Api-Key": DEFAULT_CREDENTIALS["nrel"]["api_key"]}
        remaining = [
            int(
                requests.get(nrel, params={"lat": 41.88, "lon": -87.63}, headers=headers, timeout=10).headers[
                    "X-RateLimit-Remaining"
                ]
            )
            for _ in range(3)
        ]
        assert remaining == [999, 998, 997]  # 1,000 per rolling hour, per key


def test_rate_limiter__refuses_a_wait_longer_than_the_time_left_without_sleeping():
    clock = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(per_minute=1, clock=lambda: clock[0], sleep=sleep)
    assert limiter.wait(within=5.0) is True and slept == []
    clock[0] += 10
    assert limiter.wait(within=5.0) is False and slept == []  # 50 s to wait, 5 s left: give up at once
    assert limiter.wait(within=60.0) is True and slept == [50.0]
