"""Pricing-API clients, one module per provider, all with the same small interface.

A client is built from a ``ProviderConfig`` and an ``HttpTransport`` and answers
``fetch_prices(region, start, end)`` with rows in the canonical price schema
(``SOURCE_COLUMNS``): UTC ``ts``, the provider's own price unit (``kWh`` or ``MWh``) and
resolution (``PT15M``, ``PT60M`` ...). Converting to per-MWh hourly values is the aggregation's job
(``ingestion.aggregate``), so every client stays a faithful reader of its provider's format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import pandas as pd

from ingestion.http import HttpTransport, PayloadError, ProviderConfig

SOURCE_COLUMNS = ("region", "source", "ts", "price", "currency", "unit", "resolution")
# Day-ahead exogenous forecasts (load, wind and solar) a provider publishes next to its prices:
# ``variable`` is the stored name (``market_exogenous.variable``), ``value`` in the provider's unit.
EXOGENOUS_SOURCE_COLUMNS = ("region", "source", "ts", "variable", "value", "resolution")
ExogenousFetch = Callable[[str, pd.Timestamp, pd.Timestamp], pd.DataFrame]
# How far outside the requested window an answer's timestamps may lie: providers answer whole
# delivery days and clients ask for a day more on each side, never for weeks more. A time
# beyond it (year 9999, a clock gone wrong) is a parse error, not a row to drop in silence.
SANE_MARGIN = pd.Timedelta(days=7)
# The times any price can have (and pandas' nanosecond times can hold: up to 2262); a provider's
# time outside them is refused where it is read, before arithmetic on it overflows.
EARLIEST_TIME, LATEST_TIME = pd.Timestamp("1990-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC")


class PriceClient(Protocol):
    source: str

    def __init__(self, config: ProviderConfig, transport: HttpTransport) -> None: ...

    def regions(self) -> tuple[str, ...]:
        """The product regions this provider is configured to serve."""
        ...

    def fetch_prices(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Rows with ``start <= ts < end`` (UTC) in ``SOURCE_COLUMNS``; empty when the provider has none."""
        ...

    def exogenous_series(self) -> dict[str, ExogenousFetch]:
        """The day-ahead exogenous forecasts the provider publishes, by name (``ProviderClient``'s: none)."""
        ...


def empty_prices() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in SOURCE_COLUMNS})
    frame["ts"] = pd.Series(dtype="datetime64[us, UTC]")
    frame["price"] = pd.Series(dtype=float)
    return frame


def empty_exogenous() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in EXOGENOUS_SOURCE_COLUMNS})
    frame["ts"] = pd.Series(dtype="datetime64[us, UTC]")
    frame["value"] = pd.Series(dtype=float)
    return frame


class ProviderClient:
    """What every client shares: its configuration, its transport and its regions."""

    source = ""

    def __init__(self, config: ProviderConfig, transport: HttpTransport) -> None:
        self.config = config
        self.transport = transport

    def regions(self) -> tuple[str, ...]:
        return tuple(self.config.regions)

    def exogenous_series(self) -> dict[str, ExogenousFetch]:
        """The day-ahead exogenous forecasts this provider publishes, by name: each a
        ``fetch(region, start, end)`` answering ``EXOGENOUS_SOURCE_COLUMNS`` rows. None by default."""
        return {}

    def locator(self, region: str) -> Any:
        """The provider's locator for a region (zone code, location id, coordinates ...)."""
        if region not in self.config.regions:
            raise ValueError(
                f"{self.source}: unknown region {region!r}; configured regions: {', '.join(self.config.regions) or 'none'}"
            )
        return self.config.regions[region]


def utc_bound(value: pd.Timestamp, name: str, source: str) -> pd.Timestamp:
    """A window bound as UTC; a naive one is refused, since its instant is unknown."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{source}: {name} {stamp} has no time zone; pass a timezone-aware timestamp (UTC)")
    return stamp.tz_convert("UTC")


def decode_json(body: bytes | str | Mapping[str, Any] | list, source: str, what: str, hint: str = "") -> Any:
    """JSON from a provider's body (already-decoded documents pass through); bad JSON is a PayloadError."""
    if isinstance(body, (Mapping, list)):
        return body
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(source, f"{what} is not valid JSON ({exc}){hint}") from None


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float; None for anything else: a string, a bool, NaN, an infinity, or
    an integer too large for a float (JSON allows any number of digits)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def quoted(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: a 400-digit number is cut, not printed whole."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def check_window(
    stamps: Iterable[pd.Timestamp], start: pd.Timestamp, end: pd.Timestamp, source: str, where: str
) -> None:
    """Refuse an answer with a time more than ``SANE_MARGIN`` outside the requested ``[start, end)``."""
    low, high = start - SANE_MARGIN, end + SANE_MARGIN
    for stamp in stamps:
        if not low <= stamp < high:
            raise PayloadError(
                source,
                f"{where}: time {stamp.isoformat()} lies outside the requested window {start.isoformat()} .. "
                f"{end.isoformat()} by more than {SANE_MARGIN.days} days; the provider's clock or format is wrong",
            )
