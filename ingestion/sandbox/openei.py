"""Sandbox OpenEI URDB v7 (``GET /utility_rates``).

Real behaviour kept: the key is the ``api_key`` query parameter (403 with API Umbrella's
``API_KEY_MISSING``/``API_KEY_INVALID`` body otherwise); ``version`` (7 or ``latest``),
``format=json`` and ``detail=full`` (without it only a minimal listing, with no rate structures,
comes back); selection by ``getpage``, or ``lat``/``lon`` with the ``sector``, ``approved``,
``is_default`` and ``effective_on_date`` filters; ``limit`` (at most 500) and ``offset`` paging
with no total, so clients page until a short page; the item has the v7 fields of the real
``618940545457a35a1c4097ec`` example, and ``/`` is escaped as ``\\/`` as URDB's PHP encoder does.

Sandbox-only choices: one tariff is served, a Commercial time-of-use rate of Commonwealth Edison
(EIA id 4110) for points within one degree of Chicago (41.8781, -87.6298), in effect since
2013-01-01 00:00 America/Chicago with no end date. Its schedule (Chicago local clock) has five
periods shaped like the real example: 0 off-peak (21:00-09:00 every day), 1/2 winter
shoulder/peak (Oct-May, 09:00-14:00 and 18:00-21:00 / 14:00-18:00 on weekdays; weekend days are
1), 3/4 the summer equivalents (Jun-Sep). Each period's ``rate`` is the mean bundled PJM COMED
price (USD/MWh / 1000, rounded to 5 decimals) over the whole history's hours that fall in that
period, and ``adj`` is a fixed made-up 0.03 USD/kWh standing in for delivery riders. None of
these numbers is a real ComEd tariff.
"""

from __future__ import annotations

import hashlib
import json
import threading
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from core.markets import load_market
from ingestion.sandbox.nrel import BOX_DEGREES, CHICAGO, gateway_error_json
from ingestion.sandbox.server import SandboxRequest, SandboxResponse

TIMEZONE = "America/Chicago"
ADJ = 0.03  # sandbox-only stand-in for riders
MAX_LIMIT = 500
SIGNUP_URL = "https://api.openei.org:443"
LABEL = hashlib.sha1(b"sandbox comed commercial tou", usedforsecurity=False).hexdigest()[:24]
START = int(pd.Timestamp("2013-01-01", tz=TIMEZONE).timestamp())


def _row(summer: bool, weekend: bool) -> list[int]:
    shoulder, peak = (3, 4) if summer else (1, 2)
    row = [0] * 24
    for hour in range(9, 21):
        row[hour] = shoulder if weekend or not 14 <= hour < 18 else peak
    return row


SUMMER = (5, 6, 7, 8)  # month indexes: June-September
WEEKDAY_SCHEDULE = [_row(m in SUMMER, False) for m in range(12)]
WEEKEND_SCHEDULE = [_row(m in SUMMER, True) for m in range(12)]


def period_means(prices: pd.DataFrame) -> list[float]:
    """Mean price (USD/kWh) of the PJM history hours in each period of the sandbox schedule."""
    local = pd.DatetimeIndex(prices["ts"]).tz_convert(ZoneInfo(TIMEZONE))
    month, hour = local.month.to_numpy() - 1, local.hour.to_numpy()
    weekday = np.array(WEEKDAY_SCHEDULE)[month, hour]
    weekend = np.array(WEEKEND_SCHEDULE)[month, hour]
    period = np.where(local.dayofweek.to_numpy() >= 5, weekend, weekday)
    means = pd.Series(prices["price"].to_numpy()).groupby(period).mean()
    return [round(float(means[p]) / 1000, 5) for p in range(5)]


class App:
    name = "openei"

    def __init__(self, sandbox) -> None:
        self.data_dir = sandbox.config.data_dir
        self.credentials = sandbox.config.credentials.get("openei", {})
        self._item: dict | None = None
        self._lock = threading.Lock()

    def error(self, status: int, message: str) -> SandboxResponse:
        return gateway_error_json(status, message)

    def item(self) -> dict:
        """The served tariff, built on first use (reads the PJM history once)."""
        with self._lock:
            if self._item is None:
                rates = period_means(load_market("PJM", self.data_dir).prices)
                self._item = _tariff_item(rates)
            return self._item

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if request.path.rstrip("/") != "/utility_rates":
            return gateway_error_json(404, f"No data was found for the path {request.path}", "NOT_FOUND")
        query = request.query
        key = query.get("api_key")
        if not key:
            return gateway_error_json(403, f"No api_key was supplied. Get one at {SIGNUP_URL}", "API_KEY_MISSING")
        if key != self.credentials.get("api_key"):
            return gateway_error_json(
                403, f"An invalid api_key was supplied. Get one at {SIGNUP_URL}", "API_KEY_INVALID"
            )
        if query.get("version", "latest") not in ("7", "latest"):
            return _bad_request(f"the sandbox serves version=7 (or latest) only, not {query.get('version')!r}")
        if query.get("format", "json") != "json":
            return _bad_request(f"the sandbox serves format=json only, not {query.get('format')!r}")
        try:
            limit = min(int(query.get("limit", MAX_LIMIT)), MAX_LIMIT)
            offset = int(query.get("offset", 0))
        except ValueError:
            return _bad_request("limit and offset must be integers")
        if limit < 1 or offset < 0:
            return _bad_request("limit must be positive and offset not negative")
        items = [item for item in (self.item(),) if _matches(item, query)]
        if query.get("detail") != "full":
            items = [_minimal(item) for item in items]
        page = items[offset : offset + limit]
        body = json.dumps({"items": page}).replace("/", "\\/")
        return SandboxResponse(200, body.encode(), "application/json")


def _matches(item: dict, query: dict[str, str]) -> bool:
    if "getpage" in query:
        return query["getpage"] == item["label"]
    if "lat" in query or "lon" in query:
        try:
            lat, lon = float(query.get("lat", "nan")), float(query.get("lon", "nan"))
        except ValueError:
            return False
        if not (abs(lat - CHICAGO[0]) <= BOX_DEGREES and abs(lon - CHICAGO[1]) <= BOX_DEGREES):
            return False
    if "sector" in query and query["sector"].lower() != item["sector"].lower():
        return False
    for flag in ("approved", "is_default"):
        if flag in query and (query[flag].lower() == "true") != item[flag]:
            return False
    if "ratesforutility" in query and query["ratesforutility"] != item["utility"]:
        return False
    if "effective_on_date" in query:
        try:
            when = int(query["effective_on_date"])
        except ValueError:
            return False
        if when < item["startdate"] or ("enddate" in item and when >= item["enddate"]):
            return False
    return True


def _minimal(item: dict) -> dict:
    keep = (
        "label",
        "uri",
        "approved",
        "is_default",
        "utility",
        "eiaid",
        "name",
        "startdate",
        "enddate",
        "sector",
        "description",
        "source",
    )
    return {k: item[k] for k in keep if k in item}


def _bad_request(message: str) -> SandboxResponse:
    return gateway_error_json(400, message, "BAD_REQUEST")


def _tariff_item(rates: list[float]) -> dict:
    return {
        "label": LABEL,
        "uri": f"https://apps.openei.org/IURDB/rate/view/{LABEL}",
        "revisions": [START],
        "approved": True,
        "is_default": True,
        "utility": "Commonwealth Edison Co",
        "eiaid": 4110,
        "name": "Commercial Time Of Use (Sandbox, derived from PJM COMED prices)",
        "startdate": START,
        "sector": "Commercial",
        "servicetype": "Bundled",
        "description": "Sandbox tariff: energy rates are period means of the bundled PJM COMED day-ahead history; "
        "not a real Commonwealth Edison rate.",
        "source": "data/markets/PJM.csv",
        "sourceparent": "data/markets/README.md",
        "demandunits": "kW",
        "voltagecategory": "Secondary",
        "flatdemandunit": "kW",
        "demandrateunit": "kW",
        "energyratestructure": [[{"unit": "kWh", "rate": rate, "adj": ADJ}] for rate in rates],
        "energyweekdayschedule": WEEKDAY_SCHEDULE,
        "energyweekendschedule": WEEKEND_SCHEDULE,
        "energycomments": "Adjustments = sandbox delivery rider (fixed)",
        "dgrules": "Net Metering",
        "fixedchargefirstmeter": 15.0,
        "fixedchargeunits": "$/month",
        "country": "USA",
    }
