"""Cache of the latest prices and forecasts: Redis in production, in-process when no Redis is set.

Keys (values are JSON documents):

| key | value | TTL |
|---|---|---|
| ``eopt:prices:latest:{region}`` | the region's last 24 stored hours, one price per hour from the highest-priority source (``storage.prices.SOURCE_PRIORITY``): ``{"region", "as_of", "currency", "unit", "points": [{"ts", "price", "source"}]}`` | ``EOPT_CACHE_TTL_PRICES_S`` |
| ``eopt:forecast:latest:{region}`` | the region's newest forecast (``serving.forecasting.forecast_document``): ``{"region", "issued_at", "model_name", "model_version", "is_fallback", "points": [{"target_ts", "yhat", "lower", "upper", "q05", "q10", "q25", "q50", "q75", "q90", "q95"}]}`` (interval and quantiles null for the seasonal-naive fallback) | ``EOPT_CACHE_TTL_FORECASTS_S`` |

The store is the source of truth and the cache only a copy: a cache that is down is logged and
reported (``CacheWrite.ok`` is False, ``error`` says why) and never fails a write to the store.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import pandas as pd
import redis

from core.settings import Settings

if TYPE_CHECKING:
    from storage.prices import PriceStore

log = logging.getLogger(__name__)

PRICES_KEY = "eopt:prices:latest:{region}"
FORECAST_KEY = "eopt:forecast:latest:{region}"
LATEST_HOURS = 24


class CacheBackend(Protocol):
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl_s: int) -> None: ...
    def ttl(self, key: str) -> int | None: ...
    def describe(self) -> str: ...


class InProcessBackend:
    """A dict with expiry, for the embedded mode: good for one process, gone when it exits."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            value, expires = item
            if expires <= time.monotonic():
                del self._items[key]
                return None
            return value

    def set(self, key: str, value: str, ttl_s: int) -> None:
        with self._lock:
            self._items[key] = (value, time.monotonic() + ttl_s)

    def ttl(self, key: str) -> int | None:
        with self._lock:
            item = self._items.get(key)
        return None if item is None else max(0, int(item[1] - time.monotonic()))

    def describe(self) -> str:
        return "in-process cache"


class RedisBackend:
    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        pool_kwargs = self._client.connection_pool.connection_kwargs
        self._where = (
            f"redis://{pool_kwargs.get('host', '?')}:{pool_kwargs.get('port', '?')}/{pool_kwargs.get('db', 0)}"
        )

    def get(self, key: str) -> str | None:
        # the client decodes (decode_responses=True); redis's stubs cannot express that and say bytes | str
        return cast("str | None", self._client.get(key))

    def set(self, key: str, value: str, ttl_s: int) -> None:
        self._client.set(key, value, ex=ttl_s)

    def ttl(self, key: str) -> int | None:
        value = self._client.ttl(key)
        return None if value is None or value < 0 else int(value)

    def describe(self) -> str:
        return self._where  # never the password


@dataclass(frozen=True)
class CacheWrite:
    key: str
    ok: bool
    error: str | None = None


class PriceCache:
    """Latest prices and forecasts per region, with TTLs; failures are reported, never raised."""

    def __init__(self, backend: CacheBackend, *, ttl_prices_s: int, ttl_forecasts_s: int) -> None:
        self.backend = backend
        self.ttl_prices_s = ttl_prices_s
        self.ttl_forecasts_s = ttl_forecasts_s

    @classmethod
    def from_url(cls, redis_url: str | None, *, ttl_prices_s: int, ttl_forecasts_s: int) -> PriceCache:
        backend: CacheBackend = RedisBackend(redis_url) if redis_url else InProcessBackend()
        return cls(backend, ttl_prices_s=ttl_prices_s, ttl_forecasts_s=ttl_forecasts_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceCache:
        """The cache the settings name (``REDIS_URL``; in-process without one), with their TTLs."""
        return cls.from_url(
            settings.stores.redis_url,
            ttl_prices_s=settings.stores.cache_ttl_prices_s,
            ttl_forecasts_s=settings.stores.cache_ttl_forecasts_s,
        )

    def _put(self, key: str, document: dict[str, Any], ttl_s: int) -> CacheWrite:
        try:
            self.backend.set(key, json.dumps(document), ttl_s)
        except (redis.RedisError, OSError) as exc:
            log.warning(
                "cache write of %s to %s failed (the store is unaffected): %s", key, self.backend.describe(), exc
            )
            return CacheWrite(key, False, f"{type(exc).__name__}: {exc}")
        return CacheWrite(key, True)

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self.backend.get(key)
        except (redis.RedisError, OSError) as exc:
            log.warning("cache read of %s from %s failed: %s", key, self.backend.describe(), exc)
            return None
        return None if raw is None else json.loads(raw)

    def publish_latest_prices(self, region: str, prices: pd.DataFrame) -> CacheWrite:
        """Cache the newest ``LATEST_HOURS`` points of a region's prices (a frame from the store)."""
        key = PRICES_KEY.format(region=region)
        latest = prices.sort_values("ts").tail(LATEST_HOURS)
        if latest.empty:
            return CacheWrite(key, False, f"no stored prices for region {region}")
        document = {
            "region": region,
            "as_of": latest["ts"].iloc[-1].isoformat(),
            "currency": str(latest["currency"].iloc[-1]),
            "unit": str(latest["unit"].iloc[-1]),
            "points": [
                {"ts": ts.isoformat(), "price": float(price), "source": str(source)}
                for ts, price, source in zip(latest["ts"], latest["price"], latest["source"], strict=False)
            ],
        }
        return self._put(key, document, self.ttl_prices_s)

    def latest_prices(self, region: str) -> dict[str, Any] | None:
        return self._get(PRICES_KEY.format(region=region))

    def publish_forecast(self, region: str, document: dict[str, Any]) -> CacheWrite:
        return self._put(FORECAST_KEY.format(region=region), document, self.ttl_forecasts_s)

    def latest_forecast(self, region: str) -> dict[str, Any] | None:
        return self._get(FORECAST_KEY.format(region=region))


def refresh_latest_prices(store: PriceStore, cache: PriceCache, region: str) -> CacheWrite:
    """Copy a region's newest stored hours into the cache: one price per hour, by source priority."""
    newest = store.latest_ts(region)
    if newest is None:
        return CacheWrite(PRICES_KEY.format(region=region), False, f"no stored prices for region {region}")
    recent = store.read_canonical(region, start=newest - pd.Timedelta(hours=LATEST_HOURS - 1))
    return cache.publish_latest_prices(region, recent)
