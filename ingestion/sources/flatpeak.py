"""Flatpeak tariff rates: a location's import price per kWh over variable-length intervals.

``GET https://api.flatpeak.com/tariffs/rates/{location_id}?start_time=..&end_time=..`` (spec
version 2024-08-24, schema ``TariffRate``) answers ``data[]`` intervals ``valid_from``/``valid_to``
with ``tariff.rate``: the price **per kWh in large currency units** (EUR/kWh, not cents) in
``currency_code``. Intervals have no fixed length (the docs' example spans 01:00-02:30), so each is
expanded into the 15-minute slots it covers (``PT15M`` rows at the interval's rate); the
aggregation turns them into hourly per-MWh values. The newer "anode" answer (``"object":
"price"``, ``price.value``) is read by the same parser.

Auth is two-step: ``GET /login`` with HTTP Basic (account id : API key) gives a bearer token that
expires after ``expires_in`` seconds. The client reuses it until shortly before it expires and
logs in once more if a data call is refused mid-run. Neither the key nor the token is logged.

Prices a location does not have are a 422 error object (codes ``no_price_data``,
``no_tariff_connected``, ``pending_connect``): recorded as ``no_data``, not as a failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pandas as pd
import requests

from core.redaction import register_secret
from ingestion.http import AuthError, HttpTransport, NoData, PayloadError, ProviderConfig, ProviderError
from ingestion.sources import (
    EARLIEST_TIME,
    LATEST_TIME,
    SOURCE_COLUMNS,
    ProviderClient,
    check_window,
    decode_json,
    empty_prices,
    finite_number,
    quoted,
    utc_bound,
)

log = logging.getLogger(__name__)

SOURCE = "flatpeak"
# The real host has NO "/v1" prefix (the OpenAPI spec's servers entry is the bare host); the
# ".../v1" URL seen in some public code is not supported by any official source.
DEFAULT_BASE_URL = "https://api.flatpeak.com"
CONNECTION_ID = "flatpeak_default"
# Flatpeak documents no numeric rate limit (only that 429 means "too many requests"); 60/min is a
# conservative choice of ours, not a documented figure.
REQUESTS_PER_MINUTE = 60
# Region -> (``ids.flatpeak`` in the region catalogue, core/regions.toml) Flatpeak location id. These are the sandbox's ids; a real deployment puts its
# own location ids (from the Connect flow) in the connection's extra "regions".

LOGIN_PATH = "/login"
RATES_PATH = "/tariffs/rates/{location_id}"
RATES_ENDPOINT = "/tariffs/rates"  # the name recorded in api_health (without the location id)
MAX_SPAN = pd.Timedelta(days=90)  # documented maximum between start_time and end_time
SLOT = pd.Timedelta(minutes=15)
UNIT = "kWh"
RESOLUTION = "PT15M"
DIRECTION = "IMPORT"
TOKEN_REFRESH_MARGIN_S = 60.0  # log in again this long before the token's expiry
# 422 codes by which Flatpeak says it has no prices for the location (errors guide).
NO_PRICE_CODES = frozenset({"no_price_data", "no_tariff_connected", "pending_connect"})
RATE_OBJECTS = {"tariff_rate": ("tariff", "rate"), "price": ("price", "value")}


@dataclass(frozen=True)
class BearerToken:
    """A ``/login`` answer. ``repr`` hides the token so it cannot leak into logs or tracebacks."""

    value: str
    expires_in: float
    live_mode: bool

    def __repr__(self) -> str:
        return f"BearerToken(value=<hidden>, expires_in={self.expires_in!r}, live_mode={self.live_mode!r})"


# -- parsing --------------------------------------------------------------------------------------


def _load_json(body: bytes | str | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    doc = decode_json(body, SOURCE, what)
    if not isinstance(doc, Mapping):
        raise PayloadError(SOURCE, f"{what} is a JSON {type(doc).__name__}, expected an object")
    return doc


def parse_login(body: bytes | str | Mapping[str, Any]) -> BearerToken:
    """Parse the ``AuthToken`` answer of ``GET /login`` (``bearer_token``, ``expires_in``, ``live_mode``)."""
    doc = _load_json(body, "/login answer")
    token = doc.get("bearer_token")
    if not isinstance(token, str) or not token.strip():
        raise PayloadError(SOURCE, "/login answer has no 'bearer_token' string")
    expires_in = finite_number(doc.get("expires_in"))
    if expires_in is None or expires_in <= 0:
        raise PayloadError(
            SOURCE,
            f"/login answer has expires_in {quoted(doc.get('expires_in'))}, expected a positive number of seconds",
        )
    live_mode = doc.get("live_mode")
    if not isinstance(live_mode, bool):
        raise PayloadError(SOURCE, f"/login answer has live_mode {live_mode!r}, expected true or false")
    return BearerToken(token, expires_in, live_mode)


def parse_error(status: int, body: bytes | str | Mapping[str, Any], where: str) -> None:
    """Raise what a non-200 Flatpeak answer means; never returns.

    422 with a no-price code -> ``NoData``; any other error object, the plain ``{"message"}``
    bodies (404 ...) -> ``ProviderError`` quoting the message; an unreadable body -> ``PayloadError``.
    """
    doc = _load_json(body, f"HTTP {status} answer to {where}")
    message = doc.get("message")
    code = doc.get("code")
    if not isinstance(message, str):
        raise PayloadError(SOURCE, f"HTTP {status} answer to {where} has no 'message'; not a Flatpeak error")
    if status == 422 and code in NO_PRICE_CODES:
        raise NoData(f"{SOURCE}: no prices for {where} ({code}: {message})")
    if status == 404:
        hint = (
            "check the location id configured for this region" if where.startswith("location") else "check the base URL"
        )
        raise ProviderError(SOURCE, f"{where}: {message} (HTTP 404); {hint}", http_status=status)
    detail = f"{code}: {message}" if code else message
    raise ProviderError(SOURCE, f"{where}: HTTP {status} {detail}", http_status=status)


def _utc_instant(value: Any, field: str, index: int) -> pd.Timestamp:
    if not isinstance(value, str):
        raise PayloadError(SOURCE, f"data[{index}].{field} is {value!r}, expected an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadError(SOURCE, f"data[{index}].{field} {value!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise PayloadError(SOURCE, f"data[{index}].{field} {value!r} has no UTC offset")
    stamp = pd.Timestamp(moment).tz_convert("UTC")
    if not EARLIEST_TIME <= stamp < LATEST_TIME:
        raise PayloadError(
            SOURCE,
            f"data[{index}].{field} {value!r} is not a tariff time (outside {EARLIEST_TIME.year}-{LATEST_TIME.year})",
        )
    if stamp != stamp.floor(SLOT):
        raise PayloadError(SOURCE, f"data[{index}].{field} {value!r} is not on the 15-minute grid")
    return stamp


def parse_tariff_rates(
    body: bytes | str | Mapping[str, Any], region: str, window: tuple[pd.Timestamp, pd.Timestamp] | None = None
) -> pd.DataFrame:
    """Parse a ``tariff_rate`` (``tariff.rate``) or ``price`` (``price.value``) answer into PT15M rows.

    Each interval becomes one row per 15-minute slot it covers, at its rate (currency/kWh).
    Overlapping intervals must agree on the price of the slots they share. With the requested
    ``window``, an interval reaching far outside it (``SANE_MARGIN``) is refused before it is expanded.
    """
    doc = _load_json(body, "tariff rates answer")
    kind = doc.get("object")
    if kind not in RATE_OBJECTS:
        raise PayloadError(SOURCE, f"answer has object {kind!r}, expected one of {', '.join(RATE_OBJECTS)}")
    holder, key = RATE_OBJECTS[kind]
    currency = doc.get("currency_code")
    if not isinstance(currency, str) or len(currency.strip()) != 3:
        raise PayloadError(SOURCE, f"{kind} answer has currency_code {currency!r}, expected an ISO 4217 code")
    data = doc.get("data")
    if not isinstance(data, list):
        raise PayloadError(SOURCE, f"{kind} answer has no 'data' array")
    starts: list[pd.Timestamp] = []
    prices: list[float] = []
    for index, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise PayloadError(SOURCE, f"data[{index}] is {type(item).__name__}, expected an object")
        valid_from = _utc_instant(item.get("valid_from"), "valid_from", index)
        valid_to = _utc_instant(item.get("valid_to"), "valid_to", index)
        if valid_to <= valid_from:
            raise PayloadError(
                SOURCE, f"data[{index}] ends ({item.get('valid_to')}) at or before it starts ({item.get('valid_from')})"
            )
        inner = item.get(holder)
        if not isinstance(inner, Mapping):
            raise PayloadError(SOURCE, f"data[{index}] has no '{holder}' object")
        rate = finite_number(inner.get(key))
        if rate is None:
            raise PayloadError(
                SOURCE, f"data[{index}].{holder}.{key} is {quoted(inner.get(key))}, expected a number (per kWh)"
            )
        if window is not None:
            check_window((valid_from, valid_to - SLOT), *window, SOURCE, f"data[{index}]")
        slots = pd.date_range(valid_from, valid_to, freq=SLOT, inclusive="left")
        starts.extend(slots)
        prices.extend([rate] * len(slots))
    if not starts:
        return empty_prices()
    frame = pd.DataFrame({"ts": pd.DatetimeIndex(starts).as_unit("us"), "price": prices})
    frame = _dedupe(frame, "overlapping intervals")
    frame = frame.assign(
        region=region, source=SOURCE, currency=currency.strip().upper(), unit=UNIT, resolution=RESOLUTION
    )
    return frame.loc[:, list(SOURCE_COLUMNS)]


def _dedupe(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Sort by ts and drop repeated slots, refusing them when their prices differ."""
    frame = frame.sort_values("ts", kind="stable")
    clash = frame.groupby("ts")["price"].nunique()
    clash = clash[clash > 1]
    if len(clash):
        raise PayloadError(SOURCE, f"{what} give different prices for {len(clash)} slot(s), first at {clash.index[0]}")
    return frame.drop_duplicates("ts").reset_index(drop=True)


def parse_login_response(response: requests.Response) -> BearerToken:
    if response.status_code != 200:
        parse_error(response.status_code, response.content, LOGIN_PATH)
    return parse_login(response.content)


def parse_rates_response(
    response: requests.Response,
    region: str,
    location_id: str,
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> pd.DataFrame:
    """The transport hands over every 2xx/4xx other than 401/403/429, so check the status first."""
    if response.status_code != 200:
        parse_error(response.status_code, response.content, f"location {location_id} (region {region})")
    return parse_tariff_rates(response.content, region, window)


# -- client ---------------------------------------------------------------------------------------


class Client(ProviderClient):
    """Import tariff rates of each region's Flatpeak location, as PT15M rows in currency/kWh."""

    source = SOURCE

    def __init__(
        self, config: ProviderConfig, transport: HttpTransport, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(config, transport)
        self._clock = clock
        self._token: BearerToken | None = None
        self._expires_at = 0.0

    def _location(self, region: str) -> str:
        self.locator(region)  # refuses a region this provider is not configured for
        location = self.config.regions[region]
        if not isinstance(location, str) or not location.strip():
            raise ValueError(f"{SOURCE}: region {region!r} needs a Flatpeak location id like 'loc_…', got {location!r}")
        return location.strip()

    # -- auth ---------------------------------------------------------------------------------
    def login(self) -> None:
        """Get a fresh bearer token with the account id and API key (HTTP Basic)."""
        if not self.config.login or not self.config.api_key:
            raise AuthError(
                SOURCE,
                f"no account id and API key configured; set login and password of the Airflow "
                f"connection '{self.config.connection_id}' (or EOPT_FLATPEAK_ACCOUNT_ID/EOPT_FLATPEAK_API_KEY)",
            )
        token = self.transport.fetch(
            "GET",
            LOGIN_PATH,
            parse_login_response,
            count=lambda _: 1,
            endpoint=LOGIN_PATH,
            auth=(self.config.login, self.config.api_key),
        )
        register_secret(token.value)
        self._token = token
        # refresh early, but never so early that a short-lived token is useless
        margin = min(TOKEN_REFRESH_MARGIN_S, token.expires_in / 2)
        self._expires_at = self._clock() + token.expires_in - margin
        log.info("%s: logged in (token valid for %.0fs, live_mode=%s)", SOURCE, token.expires_in, token.live_mode)

    def _bearer(self) -> str:
        if self._token is None or self._clock() >= self._expires_at:
            self.login()
        if self._token is None:  # login() sets it or raises
            raise RuntimeError("Flatpeak login returned no token")
        return self._token.value

    # -- data ---------------------------------------------------------------------------------
    def fetch_prices(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """PT15M rows (currency/kWh) with ``start <= ts < end``; windows over 90 days are split."""
        location = self._location(region)
        start, end = utc_bound(start, "start", SOURCE), utc_bound(end, "end", SOURCE)
        if end <= start:
            return empty_prices()
        # ask on the 15-minute grid so the answer's interval boundaries are on it too
        lo, hi = start.floor(SLOT), end.ceil(SLOT)
        parts = []
        while lo < hi:
            upper = min(lo + MAX_SPAN, hi)
            parts.append(self._fetch_window(region, location, lo, upper))
            lo = upper
        parts = [p for p in parts if len(p)]
        if not parts:
            return empty_prices()
        frame = _dedupe(pd.concat(parts, ignore_index=True), f"location {location} (region {region}): requests")
        frame = frame.loc[(frame["ts"] >= start) & (frame["ts"] < end)].reset_index(drop=True)
        if frame.empty:
            return empty_prices()
        currencies = frame["currency"].unique()
        if len(currencies) > 1:
            raise PayloadError(
                SOURCE, f"location {location} (region {region}) answered in several currencies: {', '.join(currencies)}"
            )
        frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
        return frame.loc[:, list(SOURCE_COLUMNS)]

    def _fetch_window(self, region: str, location: str, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
        params = {
            "start_time": _rfc3339(lo),
            "end_time": _rfc3339(hi),
            "direction": DIRECTION,
            "include_tariff": "true",
        }
        path = RATES_PATH.format(location_id=quote(location, safe=""))
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._bearer()}"}
            try:
                return self.transport.fetch(
                    "GET",
                    path,
                    lambda response: parse_rates_response(response, region, location, (lo, hi)),
                    no_data=empty_prices,
                    endpoint=RATES_ENDPOINT,
                    params=params,
                    headers=headers,
                )
            except AuthError:
                if attempt == 2:
                    raise
                # the token may have expired mid-run (server clock, revocation): one fresh login
                log.info("%s: bearer token refused for %s; logging in again and retrying once", SOURCE, region)
                self._token = None
        raise AssertionError("unreachable")


def _rfc3339(stamp: pd.Timestamp) -> str:
    return stamp.tz_convert(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
