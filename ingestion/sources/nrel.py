"""NREL/NLR Utility Rates API v3: a utility's annual average price per sector at a point.

``GET https://developer.nlr.gov/api/utility_rates/v3.json?lat=..&lon=..`` answers, for the
utility serving the point, one **annual average in USD/kWh** for each of ``residential``,
``commercial`` and ``industrial``. The data are from 2012 (Ventyx Research) and NLR says it will
not update them, so this is a coarse source: it has no time axis, and :meth:`Client.fetch_prices`
spreads the one number flat over every hour of the requested range so that it can sit next to
the hourly sources (the aggregation converts USD/kWh to USD/MWh). It is useful as a level check,
not as an hourly signal.

The API key travels in the ``X-Api-Key`` header (also documented: ``api_key`` query or Basic
auth), so it never appears in a URL, a log line or an archived request.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd
import requests

from ingestion.http import NoData, PayloadError
from ingestion.sources import SOURCE_COLUMNS, ProviderClient, decode_json, empty_prices, quoted, utc_bound

log = logging.getLogger(__name__)
T = TypeVar("T")

SOURCE = "nrel"
# NREL became the National Laboratory of the Rockies (NLR); developer.nrel.gov was retired on
# 2026-05-29 (410 Gone during the brownouts, no DNS since). Existing keys keep working here.
DEFAULT_BASE_URL = "https://developer.nlr.gov"
PATH = "/api/utility_rates/v3.json"
CONNECTION_ID = "nrel_default"
REQUESTS_PER_MINUTE = 1000 / 60  # documented: 1,000 requests per hour per key, rolling window
# Region -> (``ids.nrel`` in the region catalogue, core/regions.toml) the point whose utility stands for it. PJM's COMED zone is Commonwealth
# Edison's territory; downtown Chicago lies inside it.

SECTORS = ("residential", "commercial", "industrial")
UNIT = "kWh"
CURRENCY = "USD"
RESOLUTION = "PT60M"
NO_DATA = "no data"  # the string NLR puts in place of a value it does not have


@dataclass(frozen=True)
class UtilityRates:
    """One v3 answer. ``rates[sector]`` is USD/kWh, or None where the API says ``"no data"``."""

    utility_name: str
    company_id: str
    rates: dict[str, float | None]
    version: str | None = None
    sources: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def rate(self, sector: str) -> float:
        """The sector's USD/kWh; ``NoData`` when the API said ``"no data"`` for it."""
        if sector not in self.rates:
            raise ValueError(f"unknown NREL sector {sector!r}; use one of {', '.join(SECTORS)}")
        value = self.rates[sector]
        if value is None:
            raise NoData(f"{SOURCE}: no {sector} rate for utility {self.utility_name!r} ({self.company_id})")
        return value


# -- parsing --------------------------------------------------------------------------------------


def parse_utility_rates(body: bytes | str | Mapping[str, Any]) -> UtilityRates:
    """Parse the JSON form (v3.1.x and the legacy v3.0.x share it).

    ``errors`` non-empty (the 422 validation answer) and API-Umbrella gateway errors raise
    ``PayloadError`` quoting them; a point no utility serves raises ``NoData``.
    """
    doc = decode_json(body, SOURCE, "utility_rates v3 answer")
    if not isinstance(doc, Mapping):
        raise PayloadError(SOURCE, f"utility_rates v3 answer is a JSON {type(doc).__name__}, expected an object")
    _raise_gateway_error(doc.get("error"))
    errors = doc.get("errors")
    if not isinstance(errors, list):
        raise PayloadError(SOURCE, "utility_rates v3 answer has no 'errors' array; not a v3 response")
    if errors:
        raise PayloadError(SOURCE, f"utility_rates v3 reported errors: {'; '.join(map(str, errors))}")
    warnings = tuple(str(w) for w in doc.get("warnings") or ())
    sources = tuple(str(s) for s in ((doc.get("metadata") or {}).get("sources") or ()))
    outputs = doc.get("outputs")
    if not isinstance(outputs, Mapping) or not outputs:
        if _says_no_utility(None, warnings):
            raise NoData(f"{SOURCE}: no utility at this location ({'; '.join(warnings)})")
        raise PayloadError(SOURCE, "utility_rates v3 answer has no 'outputs' object")
    return _rates_from_outputs(
        {k: outputs.get(k) for k in ("utility_name", "company_id", *SECTORS)},
        version=_optional_str(doc.get("version")),
        sources=sources,
        warnings=warnings,
    )


def _rates_from_outputs(
    fields: Mapping[str, Any], *, version: str | None, sources: tuple[str, ...], warnings: tuple[str, ...]
) -> UtilityRates:
    utility = fields.get("utility_name")
    if _says_no_utility(utility, warnings) and all(_is_no_data(fields.get(s)) for s in SECTORS):
        raise NoData(f"{SOURCE}: no utility at this location (utility_name {utility!r})")
    if not isinstance(utility, str) or not utility.strip():
        raise PayloadError(SOURCE, "utility_rates v3 outputs have no utility_name")
    rates: dict[str, float | None] = {}
    for sector in SECTORS:
        value = fields.get(sector)
        if _is_no_data(value):
            rates[sector] = None
            continue
        if isinstance(value, bool) or value is None:
            raise PayloadError(
                SOURCE, f"utility_rates v3 outputs.{sector} is {quoted(value)}, expected a number in USD/kWh"
            )
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise PayloadError(
                SOURCE, f"utility_rates v3 outputs.{sector} is {quoted(value)}, expected a number in USD/kWh"
            ) from None
        if not math.isfinite(number) or number < 0:
            raise PayloadError(SOURCE, f"utility_rates v3 outputs.{sector} is {quoted(value)}, not a price in USD/kWh")
        rates[sector] = number
    return UtilityRates(
        utility_name=utility,
        company_id=str(fields.get("company_id") or ""),
        rates=rates,
        version=version,
        sources=sources,
        warnings=warnings,
    )


def _raise_gateway_error(error: Any) -> None:
    """API Umbrella (the NLR/api.data.gov gateway) answers ``{"error": {"code", "message"}}``."""
    if error is None:
        return
    if isinstance(error, Mapping):
        code, message = error.get("code"), error.get("message")
    else:
        code, message = None, error
    raise PayloadError(SOURCE, f"API gateway error {code or '(no code)'}: {message or '(no message)'}")


def _is_no_data(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == NO_DATA


def _says_no_utility(utility: Any, warnings: tuple[str, ...]) -> bool:
    if _is_no_data(utility):
        return True
    return any("no utility" in w.lower() or NO_DATA in w.lower() for w in warnings)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


# -- client ---------------------------------------------------------------------------------------


class Client(ProviderClient):
    """Annual-average sector price of the utility at each region's point, flat over the hours."""

    source = SOURCE

    def _locator(self, region: str) -> tuple[float, float, str]:
        self.locator(region)  # refuses a region this provider is not configured for
        spec = self.config.regions[region]
        if not isinstance(spec, Mapping) or "lat" not in spec or "lon" not in spec:
            raise ValueError(
                f"{SOURCE}: region {region!r} needs a locator like {{'lat': .., 'lon': .., 'sector': 'commercial'}}, got {spec!r}"
            )
        sector = str(spec.get("sector", "commercial")).lower()
        if sector not in SECTORS:
            raise ValueError(f"{SOURCE}: region {region!r} has sector {sector!r}; use one of {', '.join(SECTORS)}")
        return float(spec["lat"]), float(spec["lon"]), sector

    def fetch_prices(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The sector's annual average (2012 vintage, USD/kWh) repeated for every hour in [start, end)."""
        _, _, sector = self._locator(region)
        start, end = utc_bound(start, "start", SOURCE), utc_bound(end, "end", SOURCE)
        hours = pd.date_range(start.ceil("h"), end, freq="h", inclusive="left")
        if len(hours) == 0:
            return empty_prices()
        rate = self._get(region, lambda response: parse_utility_rates(response.content).rate(sector))
        if rate is None:
            log.info("%s: the API has no %s rate for region %s's point", SOURCE, sector, region)
            return empty_prices()
        frame = pd.DataFrame(
            {
                "region": region,
                "source": SOURCE,
                "ts": pd.DatetimeIndex(hours).as_unit("us"),
                "price": float(rate),
                "currency": CURRENCY,
                "unit": UNIT,
                "resolution": RESOLUTION,
            }
        )
        return frame.loc[:, list(SOURCE_COLUMNS)]

    def _get(self, region: str, parse: Callable[[requests.Response], T]) -> T | None:
        lat, lon, _ = self._locator(region)
        # the key goes in a header, never in the query string (URLs end up in logs and proxies)
        headers = {"X-Api-Key": self.config.api_key} if self.config.api_key else {}
        return self.transport.fetch(
            "GET",
            PATH,
            parse,
            count=lambda _: 1,
            no_data=lambda: None,
            endpoint=PATH,
            params={"lat": f"{lat:.6f}", "lon": f"{lon:.6f}"},
            headers=headers,
        )
