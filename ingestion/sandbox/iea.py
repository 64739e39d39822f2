"""Sandbox IEA Real-Time Electricity Tracker backend (``GET /rte/price/hourly/{ISO3}/timeseries``).

The real backend is undocumented (see ``ingestion/sources/iea.py``); this app serves the shape
the client expects, which is itself reverse-engineered and UNVERIFIED: a JSON array of
``{"ISO3", "Date": "YYYY-MM-DDTHH:MM:SSZ", "Value": per MWh}``, one row per UTC hour from
``from`` 00:00Z to the end of the ``to`` day (inclusive). No auth, as the real backend.

Countries: NOR serves the bundled Nord Pool system price (NP), BEL Belgium (BE), FRA France (FR),
all in EUR/MWh, replayed by ``ReplayHistory`` at any requested date; ``currency`` may be
``local`` or ``EUR`` (the same numbers). Any other ISO3 is a 404; bad parameters a 400; errors
are ``{"message": ...}`` (the real error format is unknown).
"""

from __future__ import annotations

import json
import re

import pandas as pd

from ingestion.sandbox.server import SandboxRequest, SandboxResponse

PATH = re.compile(r"^/rte/price/hourly/([A-Za-z]{3})/timeseries/?$")
MAX_DAYS = 400


class App:
    name = "iea"

    def __init__(self, sandbox) -> None:
        self.history = sandbox.history

    def error(self, status: int, message: str) -> SandboxResponse:
        return SandboxResponse.json(status, {"message": message})

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        match = PATH.match(request.path)
        if match is None or request.method != "GET":
            return self.error(404, f"Cannot {request.method} {request.path}")
        iso3 = match.group(1)
        countries = self.history.regions_by_id("iea")  # ISO3 -> region, from the catalogue's ids.iea
        region = countries.get(iso3)
        if region is None:
            return self.error(404, f"No hourly price data for {iso3}; the sandbox serves {', '.join(countries)}")
        try:
            first = pd.Timestamp(request.query["from"], tz="UTC")
            last = pd.Timestamp(request.query["to"], tz="UTC")
        except (KeyError, ValueError) as exc:
            return self.error(400, f"'from' and 'to' must be dates YYYY-MM-DD ({exc})")
        if first != first.normalize() or last != last.normalize():
            return self.error(400, "'from' and 'to' must be dates YYYY-MM-DD, without a time")
        if request.query.get("currency", "local") not in ("local", "EUR"):
            return self.error(400, f"currency must be 'local' or 'EUR', not {request.query['currency']!r}")
        end = last + pd.Timedelta(days=1)
        if end <= first:
            return SandboxResponse.json(200, [])
        if (end - first).days > MAX_DAYS:
            return self.error(400, f"at most {MAX_DAYS} days per request")
        series = self.history.hourly(region, first, end)
        rows = [
            {"ISO3": iso3, "Date": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "Value": float(value)}
            for ts, value in series.items()
        ]
        return SandboxResponse(200, json.dumps(rows).encode(), "application/json")
