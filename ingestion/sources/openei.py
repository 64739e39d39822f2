"""OpenEI U.S. Utility Rate Database (URDB) API v7: a utility tariff turned into hourly prices.

``GET https://api.openei.org/utility_rates?version=7&format=json&detail=full`` returns rate items
(``{"items": [...]}``). A time-of-use item says, for each month (12) and hour of the day (24) of
the tariff's local clock, which energy *period* applies on weekdays and on weekends
(``energyweekdayschedule`` / ``energyweekendschedule``), and ``energyratestructure[period]``
lists that period's tiers ``{rate, adj?, max?, unit}`` in USD per ``unit``.

:func:`tariff_prices` expands that into one price per UTC hour:

- the hour is converted to the region's ``timezone`` (URDB schedules are local clock time and
  the item does not say which zone: the region locator must);
- month index 0-11 and weekday (Mon-Fri) vs weekend pick the period; the price is the **first
  tier's** ``rate + adj`` (``adj``, the riders and fuel adjustments, is 0 when absent). Tiers are
  consumption blocks over a billing period, which an hourly price cannot follow, so the first
  block stands for the tariff. Holidays are not modelled (URDB schedules have none). Fixed and
  demand charges are left out: they are not per-kWh energy prices;
- ``unit`` must be ``kWh`` (anything else is refused rather than guessed); prices stay in
  USD/kWh (the aggregation converts to per MWh);
- of several items, each hour uses the one in effect then: the latest ``startdate`` at or before
  it, with ``enddate`` (unix seconds) taken as exclusive. Hours no item covers are left out.

Auth is the ``api_key`` query parameter, the only documented way. Full URLs are therefore never
logged: the transport records only the endpoint name ``/utility_rates``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import requests

from ingestion.http import HttpTransport, PayloadError, ProviderConfig, ProviderError
from ingestion.sources import (
    SOURCE_COLUMNS,
    ProviderClient,
    decode_json,
    empty_prices,
    finite_number,
    quoted,
    utc_bound,
)

log = logging.getLogger(__name__)

SOURCE = "openei"
DEFAULT_BASE_URL = "https://api.openei.org"
PATH = "/utility_rates"
# OpenEI accepts NREL/NLR developer keys (NREL's own tools call it with one), so the same
# Airflow connection configures both clients.
CONNECTION_ID = "nrel_default"
# OpenEI documents no rate limit; assume the NLR/api.data.gov key's 1,000 requests per hour.
REQUESTS_PER_MINUTE = 1000 / 60
PAGE_LIMIT = 500  # the documented maximum of ``limit``
MAX_PAGES = 40  # 20,000 items: far beyond any single utility; stops a server that ignores offset
# Region -> (``ids.openei`` in the region catalogue, core/regions.toml) how to find its tariff: either {"getpage": label, "timezone": ..} or a point
# with a sector (approved, default tariffs only unless "is_default": False).

UNIT = "kWh"
CURRENCY = "USD"
RESOLUTION = "PT60M"
SECTORS = ("Residential", "Commercial", "Industrial", "Lighting")
# startdate/enddate past 2200 are no tariff's dates (and past 2262 overflow pandas' nanosecond times)
LATEST_TARIFF_DATE = 7258118400  # 2200-01-01T00:00:00Z


@dataclass(frozen=True, eq=False)
class Tariff:
    """The parts of a URDB v7 item that set an hourly energy price."""

    label: str
    name: str
    utility: str
    start: pd.Timestamp | None  # startdate, UTC; None: no start given
    end: pd.Timestamp | None  # enddate, UTC, exclusive; None: still in effect
    weekday: np.ndarray  # (12, 24) period index per month and local hour
    weekend: np.ndarray  # (12, 24)
    prices: np.ndarray  # per period: first tier's rate + adj, USD/kWh


# -- parsing --------------------------------------------------------------------------------------


def parse_utility_rates(body: bytes | str | Mapping[str, Any]) -> list[Tariff]:
    """Parse a ``utility_rates`` v7 answer into tariffs (an empty page is an empty list)."""
    doc = decode_json(body, SOURCE, "utility_rates answer")
    if not isinstance(doc, Mapping):
        raise PayloadError(
            SOURCE, f"utility_rates answer is a JSON {type(doc).__name__}, expected an object with 'items'"
        )
    if "error" in doc:
        error = doc["error"]
        code, message = (error.get("code"), error.get("message")) if isinstance(error, Mapping) else (None, error)
        raise PayloadError(SOURCE, f"API error {code or '(no code)'}: {message or '(no message)'}")
    items = doc.get("items")
    if not isinstance(items, list):
        raise PayloadError(SOURCE, "utility_rates answer has no 'items' array")
    return [parse_tariff(item, index) for index, item in enumerate(items)]


def parse_tariff(item: Any, index: int = 0) -> Tariff:
    """Validate one v7 item (``detail=full``) and keep what the hourly price needs."""
    if not isinstance(item, Mapping):
        raise PayloadError(SOURCE, f"items[{index}] is a {type(item).__name__}, expected an object")
    label = item.get("label")
    where = f"item {label!r}" if isinstance(label, str) and label else f"items[{index}]"
    if not isinstance(label, str) or not label:
        raise PayloadError(SOURCE, f"{where} has no label")
    structure = item.get("energyratestructure")
    if not isinstance(structure, list) or not structure:
        raise PayloadError(SOURCE, f"{where} has no energyratestructure (not a detail=full energy tariff)")
    prices = np.array([_period_price(tiers, where, p) for p, tiers in enumerate(structure)], dtype=float)
    weekday = _schedule(item.get("energyweekdayschedule"), "energyweekdayschedule", where, len(structure))
    weekend = _schedule(item.get("energyweekendschedule"), "energyweekendschedule", where, len(structure))
    start = _unix(item.get("startdate"), "startdate", where)
    end = _unix(item.get("enddate"), "enddate", where)
    if start is not None and end is not None and end <= start:
        raise PayloadError(SOURCE, f"{where}: enddate {end} is not after startdate {start}")
    return Tariff(
        label=label,
        name=str(item.get("name") or ""),
        utility=str(item.get("utility") or ""),
        start=start,
        end=end,
        weekday=weekday,
        weekend=weekend,
        prices=prices,
    )


def _period_price(tiers: Any, where: str, period: int) -> float:
    if not isinstance(tiers, list) or not tiers or not isinstance(tiers[0], Mapping):
        raise PayloadError(SOURCE, f"{where}: energyratestructure[{period}] is not a non-empty list of tiers")
    tier = tiers[0]
    unit = tier.get("unit")
    if unit != UNIT:
        raise PayloadError(
            SOURCE, f"{where}: energyratestructure[{period}][0].unit is {unit!r}; only 'kWh' prices are supported"
        )
    rate = _finite(tier.get("rate"), f"{where}: energyratestructure[{period}][0].rate")
    adj = _finite(tier.get("adj", 0.0), f"{where}: energyratestructure[{period}][0].adj")
    return rate + adj


def _schedule(value: Any, name: str, where: str, periods: int) -> np.ndarray:
    if (
        not isinstance(value, list)
        or len(value) != 12
        or any(not isinstance(row, list) or len(row) != 24 for row in value)
    ):
        raise PayloadError(SOURCE, f"{where}: {name} is not 12 months x 24 hours")
    for month, row in enumerate(value):
        for hour, period in enumerate(row):
            if isinstance(period, bool) or not isinstance(period, int) or not 0 <= period < periods:
                raise PayloadError(
                    SOURCE,
                    f"{where}: {name}[{month}][{hour}] = {period!r} is not a period index "
                    f"0..{periods - 1} of energyratestructure",
                )
    return np.array(value, dtype=np.int64)


def _finite(value: Any, what: str) -> float:
    number = finite_number(value)
    if number is None:
        raise PayloadError(SOURCE, f"{what} is {quoted(value)}, expected a finite number")
    return number


def _unix(value: Any, name: str, where: str) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(SOURCE, f"{where}: {name} is {quoted(value)}, expected unix seconds")
    if not 0 <= value < LATEST_TARIFF_DATE:
        raise PayloadError(
            SOURCE,
            f"{where}: {name} {quoted(value)} is not a tariff date (unix seconds from 1970 to "
            f"{pd.Timestamp(LATEST_TARIFF_DATE, unit='s'):%Y}); the item is corrupt",
        )
    return pd.Timestamp(value, unit="s", tz="UTC")


# -- expansion ------------------------------------------------------------------------------------


def tariff_prices(tariffs: Sequence[Tariff], start: pd.Timestamp, end: pd.Timestamp, timezone: str) -> pd.DataFrame:
    """``ts`` (UTC hours in [start, end)) and ``price`` (USD/kWh) from the tariff in effect at each hour.

    Hours no tariff covers are left out. Two tariffs starting at the same instant that both
    cover an hour are ambiguous: a ``ProviderError`` asks for a narrower region locator.
    """
    hours = pd.date_range(pd.Timestamp(start).ceil("h"), pd.Timestamp(end), freq="h", inclusive="left").as_unit("us")
    if len(hours) == 0 or not tariffs:
        return pd.DataFrame({"ts": pd.DatetimeIndex([], tz="UTC").as_unit("us"), "price": np.array([], dtype=float)})
    local = hours.tz_convert(ZoneInfo(timezone))
    month = local.month.to_numpy() - 1
    hour = local.hour.to_numpy()
    weekend = local.dayofweek.to_numpy() >= 5
    chosen = np.full(len(hours), -1)
    chosen_start = np.full(len(hours), np.iinfo(np.int64).min)
    for i, tariff in enumerate(tariffs):
        covers = np.ones(len(hours), dtype=bool)
        if tariff.start is not None:
            covers &= hours >= tariff.start
        if tariff.end is not None:
            covers &= hours < tariff.end
        begins = tariff.start.value if tariff.start is not None else np.iinfo(np.int64).min + 1
        tie = covers & (chosen >= 0) & (chosen_start == begins)
        if tie.any():
            other = tariffs[int(chosen[tie][0])]
            raise ProviderError(
                SOURCE,
                f"tariffs {other.label} and {tariff.label} both start at {tariff.start} and cover "
                f"{hours[tie][0]}; pin one with 'getpage' in the region locator",
            )
        take = covers & (begins > chosen_start)
        chosen[take] = i
        chosen_start[take] = begins
    keep = chosen >= 0
    price = np.full(len(hours), np.nan)
    for i, tariff in enumerate(tariffs):
        rows = chosen == i
        if rows.any():
            period = np.where(
                weekend[rows], tariff.weekend[month[rows], hour[rows]], tariff.weekday[month[rows], hour[rows]]
            )
            price[rows] = tariff.prices[period]
    return pd.DataFrame({"ts": hours[keep], "price": price[keep]})


# -- client ---------------------------------------------------------------------------------------


class Client(ProviderClient):
    """Hourly energy prices from the URDB tariff each region's locator picks."""

    source = SOURCE

    def __init__(self, config: ProviderConfig, transport: HttpTransport) -> None:
        super().__init__(config, transport)
        self.page_limit = int(config.extra.get("page_limit", PAGE_LIMIT))
        if not 1 <= self.page_limit <= PAGE_LIMIT:
            raise ValueError(f"{SOURCE}: page_limit must be 1..{PAGE_LIMIT}, got {self.page_limit}")

    def _locator(self, region: str) -> tuple[dict[str, str], str]:
        """The query that selects the region's tariffs, and the tariff's time zone."""
        self.locator(region)  # refuses a region this provider is not configured for
        spec = self.config.regions[region]
        if not isinstance(spec, Mapping) or "timezone" not in spec:
            raise ValueError(
                f"{SOURCE}: region {region!r} needs a locator with a 'timezone' and either 'getpage' "
                f"or 'lat'/'lon'/'sector', got {spec!r}"
            )
        timezone = str(spec["timezone"])
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{SOURCE}: region {region!r} has unknown timezone {timezone!r}") from None
        if spec.get("getpage"):
            return {"getpage": str(spec["getpage"])}, timezone
        if "lat" not in spec or "lon" not in spec:
            raise ValueError(f"{SOURCE}: region {region!r} needs 'getpage' or 'lat' and 'lon'")
        sector = str(spec.get("sector", "Commercial")).capitalize()
        if sector not in SECTORS:
            raise ValueError(f"{SOURCE}: region {region!r} has sector {sector!r}; use one of {', '.join(SECTORS)}")
        query = {
            "lat": f"{float(spec['lat']):.6f}",
            "lon": f"{float(spec['lon']):.6f}",
            "sector": sector,
            "approved": "true",
        }
        # the utility's default tariff for the sector, unless told otherwise: a point is served by
        # many tariffs and only one of them should price the region
        if spec.get("is_default", True):
            query["is_default"] = "true"
        return query, timezone

    def fetch_tariffs(self, region: str) -> list[Tariff]:
        """Every item the region's query returns, page by page (``limit``/``offset``)."""
        query, _ = self._locator(region)
        tariffs: list[Tariff] = []
        seen: set[str] = set()
        for page in range(MAX_PAGES):
            params = {
                "version": "7",
                "format": "json",
                "detail": "full",
                **query,
                "limit": str(self.page_limit),
                "offset": str(page * self.page_limit),
            }
            if self.config.api_key:
                params["api_key"] = self.config.api_key  # query is the only documented way; never logged
            items = self.transport.fetch("GET", PATH, _parse_response, endpoint=PATH, params=params)
            fresh = [t for t in items if t.label not in seen]
            if items and not fresh:
                raise ProviderError(
                    SOURCE,
                    f"page at offset {page * self.page_limit} repeats earlier items; the API ignored offset, stopping",
                )
            seen.update(t.label for t in fresh)
            tariffs.extend(fresh)
            if len(items) < self.page_limit:
                return tariffs
        raise ProviderError(SOURCE, f"region {region!r}: more than {MAX_PAGES} pages of tariffs; narrow the locator")

    def fetch_prices(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        _, timezone = self._locator(region)
        start, end = utc_bound(start, "start", SOURCE), utc_bound(end, "end", SOURCE)
        if start.ceil("h") >= end:
            return empty_prices()
        tariffs = self.fetch_tariffs(region)
        prices = tariff_prices(tariffs, start, end, timezone)
        if prices.empty:
            log.info(
                "%s: no tariff for region %s is in effect between %s and %s (%d item(s) returned)",
                SOURCE,
                region,
                start,
                end,
                len(tariffs),
            )
            return empty_prices()
        frame = prices.assign(region=region, source=SOURCE, currency=CURRENCY, unit=UNIT, resolution=RESOLUTION)
        return frame.loc[:, list(SOURCE_COLUMNS)].reset_index(drop=True)


def _parse_response(response: requests.Response) -> list[Tariff]:
    return parse_utility_rates(response.content)
