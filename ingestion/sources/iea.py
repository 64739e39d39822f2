"""IEA Real-Time Electricity Tracker: hourly wholesale prices from an UNDOCUMENTED backend.

**The IEA publishes no documented price API.** Its only documented API (the paid "Releases
API" at ``www.iea.org/api``) lists and downloads files of purchased data products; it answers no
price query. This client reads the backend behind the IEA website's Real-Time Electricity
Tracker, ``GET https://api.iea.org/rte/price/hourly/{ISO3}/timeseries?from=YYYY-MM-DD&to=YYYY-MM-DD&currency=local``,
which needs no auth, has no published contract, rate limit or error format, and may change or
disappear without notice.

The answer's shape was reverse-engineered from public client code and is **UNVERIFIED**: a JSON
array of ``{"ISO3": str, "Date": ISO-8601 datetime with an offset or Z, "Value": number per MWh}``.
Only that shape is accepted; anything else raises ``PayloadError`` saying the backend changed
shape and this client must be updated, so a silent format change can never feed wrong numbers.

``to`` is taken as an inclusive day and the days' time zone is unknown, so the client asks for
one extra day on each side of [start, end) and cuts the rows to the range; long ranges are asked
for in windows of 31 days, since the backend's range limit is unknown too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import requests

from ingestion.http import NoData, PayloadError
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

SOURCE = "iea"
DEFAULT_BASE_URL = "https://api.iea.org"
PATH = "/rte/price/hourly/{iso3}/timeseries"
CONNECTION_ID = "iea_default"
REQUESTS_PER_MINUTE = 30  # undocumented backend, no published limit: stay well clear of any
# Region -> (``ids.iea`` in the region catalogue, core/regions.toml) the backend's country code.
# What ``currency=local`` is taken to mean for each country. UNVERIFIED for the real backend,
# above all for Norway (whose currency is NOK): EUR is what the sandbox serves, because the
# bundled Nord Pool system price history (NP) is in EUR, as are Belgium's and France's.
LOCAL_CURRENCY = {"NOR": "EUR", "BEL": "EUR", "FRA": "EUR"}
UNIT = "MWh"
RESOLUTION = "PT60M"
DAYS_PER_REQUEST = 31  # the backend's range limit is unknown; keep each answer month-sized
CHANGED = "the undocumented IEA backend changed shape; update ingestion/sources/iea.py"


def parse_timeseries(
    body: bytes | str | list[Any], iso3: str, window: tuple[pd.Timestamp, pd.Timestamp] | None = None
) -> pd.DataFrame:
    """``ts`` (UTC) and ``price`` (per MWh) from an hourly timeseries answer for ``iso3``.

    Duplicate hours with equal values are merged, with different values refused; an empty
    array raises ``NoData``. With the requested ``window``, a time far outside it is refused.
    """
    doc = decode_json(body, SOURCE, f"{iso3}: answer", f"; {CHANGED}")
    if not isinstance(doc, list):
        raise PayloadError(
            SOURCE, f"{iso3}: expected a JSON array of {{ISO3, Date, Value}}, got a {type(doc).__name__}; {CHANGED}"
        )
    if not doc:
        raise NoData(f"{SOURCE}: no hourly prices for {iso3} in the requested days")
    stamps: list[pd.Timestamp] = []
    values: list[float] = []
    for index, row in enumerate(doc):
        where = f"{iso3}: row {index}"
        if not isinstance(row, Mapping) or not {"ISO3", "Date", "Value"} <= row.keys():
            shown = sorted(row.keys()) if isinstance(row, Mapping) else type(row).__name__
            raise PayloadError(SOURCE, f"{where} is {shown}, expected keys ISO3, Date, Value; {CHANGED}")
        if row["ISO3"] != iso3:
            raise PayloadError(SOURCE, f"{where} is for ISO3 {row['ISO3']!r}, not {iso3!r}; {CHANGED}")
        value = finite_number(row["Value"])
        if value is None:
            raise PayloadError(SOURCE, f"{where}: Value {quoted(row['Value'])} is not a number; {CHANGED}")
        stamp = _instant(row["Date"], where)
        if window is not None:
            check_window([stamp], *window, SOURCE, where)
        stamps.append(stamp)
        values.append(value)
    frame = pd.DataFrame({"ts": pd.DatetimeIndex(stamps).as_unit("us"), "price": values})
    frame = frame.sort_values("ts", kind="stable")
    clashes = frame.groupby("ts")["price"].nunique()
    if (clashes > 1).any():
        raise PayloadError(
            SOURCE, f"{iso3}: hour {clashes[clashes > 1].index[0]} appears with different Values; {CHANGED}"
        )
    return frame.drop_duplicates("ts").reset_index(drop=True)


def _instant(value: Any, where: str) -> pd.Timestamp:
    if not isinstance(value, str):
        raise PayloadError(SOURCE, f"{where}: Date {value!r} is not an ISO-8601 string; {CHANGED}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(SOURCE, f"{where}: Date {value!r} is not ISO-8601; {CHANGED}") from None
    if parsed.tzinfo is None:
        raise PayloadError(SOURCE, f"{where}: Date {value!r} has no UTC offset, so the instant is unknown; {CHANGED}")
    stamp = pd.Timestamp(parsed).tz_convert("UTC")
    if not EARLIEST_TIME <= stamp < LATEST_TIME:
        raise PayloadError(
            SOURCE, f"{where}: Date {value!r} is not a price's time (outside {EARLIEST_TIME.year}-{LATEST_TIME.year})"
        )
    return stamp


class Client(ProviderClient):
    """Hourly wholesale prices per country from the Real-Time Electricity Tracker backend."""

    source = SOURCE

    def _iso3(self, region: str) -> tuple[str, str]:
        self.locator(region)  # refuses a region this provider is not configured for
        iso3 = self.config.regions[region]
        if not isinstance(iso3, str) or len(iso3) != 3 or not iso3.isalpha() or not iso3.isupper():
            raise ValueError(f"{SOURCE}: region {region!r} needs an ISO3 country code like 'FRA', got {iso3!r}")
        if iso3 not in LOCAL_CURRENCY:
            raise ValueError(
                f"{SOURCE}: no local currency known for {iso3} (region {region!r}); add it to LOCAL_CURRENCY"
            )
        return iso3, LOCAL_CURRENCY[iso3]

    def fetch_prices(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Prices for [start, end), asked for in windows of at most ``DAYS_PER_REQUEST`` days."""
        iso3, currency = self._iso3(region)
        start, end = utc_bound(start, "start", SOURCE), utc_bound(end, "end", SOURCE)
        if start.ceil("h") >= end:
            return empty_prices()
        parts = []
        window_start = start
        while window_start < end:
            window_end = min(end, window_start + pd.Timedelta(days=DAYS_PER_REQUEST))
            rows = self._fetch_window(iso3, window_start, window_end)
            if rows is not None:
                parts.append(rows[(rows["ts"] >= window_start) & (rows["ts"] < window_end)])
            window_start = window_end
        parts = [part for part in parts if not part.empty]
        if not parts:
            return empty_prices()
        frame = pd.concat(parts, ignore_index=True)
        frame = frame.assign(region=region, source=SOURCE, currency=currency, unit=UNIT, resolution=RESOLUTION)
        return frame.loc[:, list(SOURCE_COLUMNS)].reset_index(drop=True)

    def _fetch_window(self, iso3: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame | None:
        # one extra day each side: ``to`` is inclusive and the days' time zone is unknown
        first = (start - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        last = (end - pd.Timedelta(microseconds=1) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")

        def parse(response: requests.Response) -> pd.DataFrame:
            if response.status_code != 200:
                raise PayloadError(SOURCE, f"{iso3}: HTTP {response.status_code}: {_message(response)}")
            return parse_timeseries(response.content, iso3, (start, end))

        return self.transport.fetch(
            "GET",
            PATH.format(iso3=iso3),
            parse,
            no_data=lambda: None,
            endpoint=PATH,
            params={"from": first, "to": last, "currency": "local"},
        )


def _message(response: requests.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200] or "(empty body)"
    if isinstance(doc, Mapping) and "message" in doc:
        return str(doc["message"])
    return json.dumps(doc)[:200]
