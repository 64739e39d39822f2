"""The latest-values cache: Redis (real server) and the in-process fallback."""

from __future__ import annotations

import json
import logging
import time

import pandas as pd
import pytest
import redis

from storage.cache import FORECAST_KEY, PRICES_KEY, InProcessBackend, PriceCache, RedisBackend, refresh_latest_prices
from tests.storage.test_storage import price_rows


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.integration)])
def cache(request) -> PriceCache:
    if request.param == "in-process":
        return PriceCache(InProcessBackend(), ttl_prices_s=1800, ttl_forecasts_s=7200)
    return PriceCache.from_url(request.getfixturevalue("redis_url"), ttl_prices_s=1800, ttl_forecasts_s=7200)


def test_latest_prices__are_the_newest_24_hours_under_the_documented_key(cache):
    frame = price_rows(hours=48)
    write = cache.publish_latest_prices("NP", frame)
    assert write.ok and write.key == PRICES_KEY.format(region="NP") == "eopt:prices:latest:NP"

    document = cache.latest_prices("NP")
    assert document["region"] == "NP" and document["currency"] == "EUR"
    assert len(document["points"]) == 24
    assert document["as_of"] == "2024-03-02T23:00:00+00:00"
    assert document["points"][0]["ts"] == "2024-03-02T00:00:00+00:00"
    assert [p["price"] for p in document["points"]] == frame["price"].tail(24).tolist()
    assert 1790 <= cache.backend.ttl(write.key) <= 1800
    assert cache.latest_prices("FR") is None


def test_forecast__is_cached_with_its_own_ttl(cache):
    write = cache.publish_forecast("BE", {"region": "BE", "model_version": "3", "points": [{"ts": "x", "yhat": 1.5}]})
    assert write.ok and write.key == FORECAST_KEY.format(region="BE")
    assert cache.latest_forecast("BE")["model_version"] == "3"
    assert 7190 <= cache.backend.ttl(write.key) <= 7200


def test_in_process_entries__expire_after_their_ttl():
    cache = PriceCache(InProcessBackend(), ttl_prices_s=1, ttl_forecasts_s=1)
    cache.publish_forecast("NP", {"points": []})
    assert cache.latest_forecast("NP") is not None
    time.sleep(1.05)
    assert cache.latest_forecast("NP") is None


@pytest.mark.integration
def test_redis_values__are_plain_json_readable_by_other_clients(redis_url):
    cache = PriceCache.from_url(redis_url, ttl_prices_s=60, ttl_forecasts_s=60)
    cache.publish_latest_prices("PJM", price_rows(region="PJM", hours=3))
    raw = redis.Redis.from_url(redis_url).get("eopt:prices:latest:PJM")
    assert len(json.loads(raw)["points"]) == 3


def test_cache_down__is_logged_and_reported_and_never_fails_the_store_write(store, caplog):
    dead = PriceCache(
        RedisBackend("redis://:hunter2@127.0.0.1:1/0", timeout_s=0.5), ttl_prices_s=60, ttl_forecasts_s=60
    )
    result = store.upsert_prices(price_rows(hours=30))

    with caplog.at_level(logging.WARNING, logger="storage.cache"):
        write = refresh_latest_prices(store, dead, "NP")

    assert result.inserted == 30 and store.count_prices("NP") == 30  # the store write stands
    assert write.ok is False and "ConnectionError" in write.error
    assert "cache write of eopt:prices:latest:NP to redis://127.0.0.1:1/0 failed" in caplog.text
    assert "hunter2" not in caplog.text and "hunter2" not in dead.backend.describe()
    assert dead.latest_prices("NP") is None  # reads degrade to a miss


def test_refresh_latest_prices__copies_the_stores_newest_hours(store):
    cache = PriceCache(InProcessBackend(), ttl_prices_s=60, ttl_forecasts_s=60)
    store.upsert_prices(price_rows(hours=50))
    write = refresh_latest_prices(store, cache, "NP")
    assert write.ok
    points = cache.latest_prices("NP")["points"]
    assert len(points) == 24 and points[-1]["ts"] == pd.Timestamp("2024-03-03 01:00", tz="UTC").isoformat()
    assert refresh_latest_prices(store, cache, "FR").ok is False


def test_refresh_latest_prices__caches_one_price_per_hour_by_source_priority(store):
    cache = PriceCache(InProcessBackend(), ttl_prices_s=60, ttl_forecasts_s=60)
    retail = price_rows(hours=30).assign(source="flatpeak", price=250.0)
    wholesale = price_rows(hours=28).assign(source="entsoe")
    store.upsert_prices(pd.concat([retail, wholesale], ignore_index=True))
    assert refresh_latest_prices(store, cache, "NP").ok
    points = cache.latest_prices("NP")["points"]
    assert len(points) == 24 and len({p["ts"] for p in points}) == 24
    assert [p["source"] for p in points[-2:]] == ["flatpeak", "flatpeak"]  # hours only the retail source has
    assert {p["source"] for p in points[:-2]} == {"entsoe"}
