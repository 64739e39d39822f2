"""ENTSO-E Transparency Platform: day-ahead prices [12.1.D] (``documentType=A44``).

``GET https://web-api.tp.entsoe.eu/api?securityToken=..&documentType=A44&in_Domain=EIC&out_Domain=EIC
&periodStart=yyyyMMddHHmm&periodEnd=yyyyMMddHHmm&contract_MarketAgreement.type=A01`` answers a
``Publication_MarketDocument`` (IEC 62325-451-3) with one price per market time unit of the bidding
zone, in ``currency_Unit.name`` (EUR) per ``price_Measure_Unit.name`` (MWH). What a reader must know:

- the answer covers **whole delivery days** in the zone's publication time zone (CET/CEST for BE
  and FR), whatever part of a day was asked for; the client asks for the days covering
  ``[start, end)`` and keeps exactly ``start <= ts < end``;
- the market time unit was 60 minutes until delivery day 2025-09-30 and is **15 minutes from
  2025-10-01** (SDAC go-live); one answer can mix ``PT60M`` and ``PT15M`` periods, so every row
  carries its own resolution (the aggregation averages quarters to hours);
- ``curveType`` A03 **leaves out a point whose price repeats the previous one**; the missing
  positions are forward-filled up to the period's end. A01 periods must be complete;
- "no data" is an ``Acknowledgement_MarketDocument`` with reason 999 and the text "No matching
  data found ..."; the same code 999 is used for real errors (e.g. "The number of instances (365)
  exceeds the allowed maximum (100) ..."), so only that text means no data, anything else is an error;
- limits: one year per request and 100 documents (delivery days) per answer, so long windows are
  split into requests of at most ``MAX_DAYS_PER_REQUEST`` delivery days; 400 requests per minute
  per token (a ban of about 10 minutes follows, so the client-side limiter matters).

The token is a query parameter (the API has no other way); it is never logged, and the transport
records only the path ``/api`` in ``api_health``.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import requests

from core.markets import MarketDataError, get_market
from ingestion.http import AuthError, NoData, PayloadError
from ingestion.sources import (
    EARLIEST_TIME,
    EXOGENOUS_SOURCE_COLUMNS,
    LATEST_TIME,
    SOURCE_COLUMNS,
    ExogenousFetch,
    ProviderClient,
    check_window,
    empty_exogenous,
    empty_prices,
    utc_bound,
)

log = logging.getLogger(__name__)

SOURCE = "entsoe"
DEFAULT_BASE_URL = "https://web-api.tp.entsoe.eu"
PATH = "/api"
CONNECTION_ID = "entsoe_default"
REQUESTS_PER_MINUTE = 400  # documented: 400 requests/minute per token (R3 API), then a ~10 minute ban
# Region -> bidding-zone EIC code: ``ids.entsoe`` of the region catalogue (core/regions.toml). NP (the
# Nord Pool *system* price) is a Nord Pool calculation, not an ENTSO-E bidding zone, and PJM is a US
# market: ENTSO-E has neither.

DOCUMENT_TYPE = "A44"
DAY_AHEAD_CONTRACT = "A01"
MAX_DAYS_PER_REQUEST = 100  # 100 documents per answer; one delivery day is one document
MAX_REQUEST_SPAN = pd.Timedelta(days=365)  # 12.1.D allows one year per request
DEFAULT_PUBLICATION_TIMEZONE = "Europe/Brussels"  # CET/CEST, the SDAC delivery day
UNIT = "MWh"
PUBLICATION_NS = "urn:iec62325.351:tc57wg16:451-3:publicationdocument:"  # versions 7:0, 7:3 ...
ACKNOWLEDGEMENT_NS = "urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:"
NO_DATA_CODE = "999"
NO_DATA_TEXT = "No matching data found"
RESOLUTIONS = {"PT15M": pd.Timedelta(minutes=15), "PT30M": pd.Timedelta(minutes=30), "PT60M": pd.Timedelta(minutes=60)}
SDAC_SEQUENCE = "1"  # DE-LU/AT publish SDAC as sequence 1 next to EXAA (sequence 2)

# Exogenous inputs: GL_MarketDocuments (IEC 62325-451-6), quantities in MW ("MAW").
GENERATION_LOAD_NS = "urn:iec62325.351:tc57wg16:451-6:generationloaddocument:"  # version 3:0
DAY_AHEAD_PROCESS = "A01"
LOAD_DOCUMENT = "A65"  # system total load; with process A01 the day-ahead total load forecast [6.1.B]
WIND_SOLAR_DOCUMENT = "A69"  # wind and solar forecast [14.1.D]
# document -> (what it is, the TimeSeries element naming the zone); the request parameter differs
EXOGENOUS_DOCUMENTS = {
    LOAD_DOCUMENT: ("day-ahead total load forecast", "outBiddingZone_Domain.mRID"),
    WIND_SOLAR_DOCUMENT: ("day-ahead wind and solar forecast", "inBiddingZone_Domain.mRID"),
}
EXOGENOUS_ZONE_PARAMETER = {LOAD_DOCUMENT: "outBiddingZone_Domain", WIND_SOLAR_DOCUMENT: "in_Domain"}
WIND_SOLAR_TYPES = {"B16": "solar", "B18": "wind offshore", "B19": "wind onshore"}
QUANTITY_UNIT = "MAW"
# The stored names (``market_exogenous.variable``): the load under the name the bundled markets
# already use for a system load forecast, and wind + solar as one series.
LOAD_VARIABLE = "system_load_forecast"
WIND_SOLAR_VARIABLE = "wind_solar_forecast"
MAX_EXOGENOUS_SPAN = pd.Timedelta(days=365)  # one year per request, as for the prices

_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?Z$")
_POSITION = re.compile(r"^\d+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


# -- parsing (pure) ------------------------------------------------------------------------------


def parse_a44(body: bytes | str, region: str, eic: str | None = None) -> pd.DataFrame:
    """Rows (``SOURCE_COLUMNS``) of one A44 answer, sorted by ``ts``; the whole answer or nothing.

    ``eic``, when given, must be the zone of every ``TimeSeries`` (an answer for another zone is
    refused). Raises ``NoData`` for ENTSO-E's "No matching data found" acknowledgement and
    ``PayloadError`` for any other acknowledgement and for any shape this parser does not know.
    """
    root = _xml_root(body, region)
    namespace, name = _split_tag(root.tag)
    if name == "Acknowledgement_MarketDocument" and namespace.startswith(ACKNOWLEDGEMENT_NS):
        _raise_acknowledgement(root, region)
    if name != "Publication_MarketDocument" or not namespace.startswith(PUBLICATION_NS):
        raise PayloadError(
            SOURCE,
            f"region {region}: unexpected root element <{name}> in namespace {namespace or '(none)'}; expected a "
            f"Publication_MarketDocument ({PUBLICATION_NS}*) or an Acknowledgement_MarketDocument",
        )
    doc_type = _text(root, "type")
    if doc_type != DOCUMENT_TYPE:
        raise PayloadError(
            SOURCE, f"region {region}: document type is {doc_type!r}, expected {DOCUMENT_TYPE} (day-ahead prices)"
        )
    series = _children(root, "TimeSeries")
    if not series:
        raise PayloadError(SOURCE, f"region {region}: Publication_MarketDocument without any TimeSeries")
    parsed = [_parse_timeseries(ts, index, region, eic) for index, ts in enumerate(series, start=1)]
    parsed = _select_sequence(parsed, region)
    currencies = {p.currency for p in parsed}
    if len(currencies) > 1:
        raise PayloadError(
            SOURCE, f"region {region}: TimeSeries in different currencies ({', '.join(sorted(currencies))})"
        )
    frame = pd.DataFrame(
        {
            "region": region,
            "source": SOURCE,
            "ts": pd.DatetimeIndex([t for p in parsed for t in p.ts], tz="UTC").as_unit("us"),
            "price": np.array([v for p in parsed for v in p.values], dtype=float),
            "currency": currencies.pop(),
            "unit": UNIT,
            "resolution": [r for p in parsed for r in p.resolutions],
        }
    )
    return consolidate(frame, f"region {region}")


def consolidate(
    frame: pd.DataFrame,
    where: str,
    value: str = "price",
    columns: tuple[str, ...] = SOURCE_COLUMNS,
    key: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Sort by ``ts``, drop exact repeats, refuse conflicting or overlapping points.

    Several Periods, TimeSeries or requests may carry the same instant; when they agree it is one
    row, when they disagree nobody can tell which is right, so the answer is refused. Points of
    different resolutions over the same time (an hourly and a quarter-hourly price) are refused
    too rather than guessed between. ``value`` names the value column (``price``, or ``value`` of an
    exogenous series), ``key`` the columns that keep series apart (``variable``).
    """
    if frame.empty:
        return frame.loc[:, list(columns)].reset_index(drop=True)
    parts = [part for _, part in frame.groupby(list(key), sort=True)] if key else [frame]
    return pd.concat([_consolidate_one(part, where, value, columns) for part in parts], ignore_index=True)


def _consolidate_one(frame: pd.DataFrame, where: str, value: str, columns: tuple[str, ...]) -> pd.DataFrame:
    frame = frame.sort_values(["ts", "resolution", value], kind="stable")
    frame = frame.drop_duplicates(["ts", "resolution", value]).reset_index(drop=True)
    clash = frame.duplicated(["ts", "resolution"], keep=False)
    if clash.any():
        at = frame.loc[clash, "ts"].iloc[0]
        values = frame.loc[clash & (frame["ts"] == at), [value, "resolution"]]
        shown = ", ".join(f"{p:g} ({r})" for p, r in values.itertuples(index=False))
        noun = "prices" if value == "price" else "values"
        raise PayloadError(SOURCE, f"{where}: conflicting {noun} for {at:%Y-%m-%dT%H:%MZ}: {shown}")
    ends = frame["ts"] + frame["resolution"].map(RESOLUTIONS)
    overlap = (frame["ts"].shift(-1) < ends).to_numpy()
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0])
        raise PayloadError(
            SOURCE,
            f"{where}: overlapping points: {frame['ts'].iloc[i]:%Y-%m-%dT%H:%MZ} ({frame['resolution'].iloc[i]}) "
            f"runs into {frame['ts'].iloc[i + 1]:%Y-%m-%dT%H:%MZ} ({frame['resolution'].iloc[i + 1]})",
        )
    return frame.loc[:, list(columns)]


@dataclass
class _Series:
    sequence: str | None
    currency: str
    ts: list[pd.Timestamp]
    values: list[float]  # prices (A44) or quantities in MW (A65, A69)
    resolutions: list[str]


def _xml_root(body: bytes | str, region: str, document: str = DOCUMENT_TYPE) -> ET.Element:
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if not raw.strip():
        raise PayloadError(SOURCE, f"region {region}: empty body where an {document} XML document was expected")
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        # ENTSO-E documents never carry a DTD; one here is an HTML page or a hostile document.
        raise PayloadError(
            SOURCE, f"region {region}: body has a DOCTYPE/ENTITY declaration (HTML page?), not an {document} document"
        )
    try:
        return ET.fromstring(raw)  # noqa: S314 - DOCTYPE/ENTITY refused above, so no entity expansion
    except ET.ParseError as exc:
        raise PayloadError(
            SOURCE, f"region {region}: body is not well-formed XML ({exc}); truncated or not an ENTSO-E answer"
        ) from None


def _split_tag(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _split_tag(child.tag)[1] == name]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    found = _children(element, name)
    return found[0] if found else None


def _text(element: ET.Element, name: str) -> str | None:
    child = _child(element, name)
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _required(element: ET.Element, name: str, where: str) -> str:
    value = _text(element, name)
    if not value:
        raise PayloadError(SOURCE, f"{where}: missing <{name}>")
    return value


def _raise_acknowledgement(root: ET.Element, region: str, what: str = "day-ahead prices") -> None:
    reasons = [(_text(r, "code") or "?", " ".join((_text(r, "text") or "").split())) for r in _children(root, "Reason")]
    if not reasons:
        raise PayloadError(SOURCE, f"region {region}: Acknowledgement_MarketDocument without a Reason")
    for code, text in reasons:
        if code == NO_DATA_CODE and text.startswith(NO_DATA_TEXT):
            raise NoData(f"{SOURCE}: no {what} for region {region}: {text}")
    shown = "; ".join(f"Reason {code}: {text or '(no text)'}" for code, text in reasons)
    raise PayloadError(
        SOURCE, f"region {region}: ENTSO-E refused the request ({shown}); check the zone code and the period"
    )


def _parse_timeseries(element: ET.Element, index: int, region: str, eic: str | None) -> _Series:
    where = f"region {region}, TimeSeries #{index}"
    for domain in ("in_Domain.mRID", "out_Domain.mRID"):
        zone = _text(element, domain)
        if eic is not None and zone is not None and zone != eic:
            raise PayloadError(SOURCE, f"{where}: {domain} is {zone}, but {eic} was requested")
    currency = _required(element, "currency_Unit.name", where)
    if not _CURRENCY.match(currency):
        raise PayloadError(SOURCE, f"{where}: currency_Unit.name {currency!r} is not an ISO 4217 code")
    unit = _required(element, "price_Measure_Unit.name", where)
    if unit.upper() != "MWH":
        raise PayloadError(SOURCE, f"{where}: price_Measure_Unit.name {unit!r}; only MWH is known")
    curve = _curve_type(element, where)
    periods = _children(element, "Period")
    if not periods:
        raise PayloadError(SOURCE, f"{where}: TimeSeries without a Period")
    series = _Series(_text(element, "classificationSequence_AttributeInstanceComponent.position"), currency, [], [], [])
    for number, period in enumerate(periods, start=1):
        _parse_period(period, curve, f"{where}, Period #{number}", series)
    return series


def _curve_type(element: ET.Element, where: str) -> str:
    curve = _text(element, "curveType") or "A01"  # documents from before A03 existed say A01 or nothing
    if curve not in ("A01", "A03"):
        raise PayloadError(
            SOURCE, f"{where}: curveType {curve!r}; only A01 (complete) and A03 (repeats left out) are known"
        )
    return curve


def _instant(value: str, where: str) -> pd.Timestamp:
    if not _INSTANT.match(value):
        raise PayloadError(SOURCE, f"{where}: time {value!r} is not a UTC instant like 2025-09-16T22:00Z")
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        raise PayloadError(SOURCE, f"{where}: time {value!r} is not a valid date") from None
    if not EARLIEST_TIME <= stamp < LATEST_TIME:
        raise PayloadError(
            SOURCE, f"{where}: time {value!r} is not a delivery time (outside {EARLIEST_TIME.year}-{LATEST_TIME.year})"
        )
    return stamp


def _parse_period(period: ET.Element, curve: str, where: str, out: _Series, value_tag: str = "price.amount") -> None:
    interval = _child(period, "timeInterval")
    if interval is None:
        raise PayloadError(SOURCE, f"{where}: missing <timeInterval>")
    start = _instant(_required(interval, "start", where), where)
    end = _instant(_required(interval, "end", where), where)
    resolution = _required(period, "resolution", where)
    step = RESOLUTIONS.get(resolution)
    if step is None:
        raise PayloadError(SOURCE, f"{where}: resolution {resolution!r}; known: {', '.join(RESOLUTIONS)}")
    count, remainder = divmod(end - start, step)
    if count <= 0 or remainder:
        raise PayloadError(SOURCE, f"{where}: interval {start}..{end} is not a whole number of {resolution} steps")
    points: dict[int, float] = {}
    for point in _children(period, "Point"):
        position_text = _text(point, "position")
        amount_text = _text(point, value_tag)
        if position_text is None or amount_text is None:
            missing = "position" if position_text is None else value_tag
            raise PayloadError(SOURCE, f"{where}: a Point without <{missing}>")
        if not _POSITION.match(position_text) or not 1 <= int(position_text) <= count:
            raise PayloadError(SOURCE, f"{where}: position {position_text!r} outside 1..{count}")
        try:
            amount = float(amount_text)
        except ValueError:
            amount = math.nan
        if not math.isfinite(amount):
            raise PayloadError(
                SOURCE, f"{where}, position {position_text}: {value_tag} {amount_text!r} is not a number"
            )
        position = int(position_text)
        if position in points and points[position] != amount:
            raise PayloadError(
                SOURCE,
                f"{where}: position {position} given twice with different "
                f"{'prices' if value_tag == 'price.amount' else 'values'} ({points[position]:g} and {amount:g})",
            )
        points[position] = amount
    if 1 not in points:
        raise PayloadError(SOURCE, f"{where}: no Point at position 1, so the {curve} curve cannot be read")
    if curve == "A01" and len(points) != count:
        first_gap = next(p for p in range(1, count + 1) if p not in points)
        raise PayloadError(
            SOURCE, f"{where}: curveType A01 must list all {count} positions; position {first_gap} is missing"
        )
    last = math.nan
    for position in range(1, count + 1):
        last = points.get(position, last)  # A03: a left-out position repeats the previous value
        out.ts.append(start + (position - 1) * step)
        out.values.append(last)
        out.resolutions.append(resolution)


def _select_sequence(parsed: list[_Series], region: str) -> list[_Series]:
    """Keep the SDAC sequence where a zone publishes several auctions (DE-LU/AT: SDAC and EXAA)."""
    sequences = {p.sequence for p in parsed if p.sequence is not None}
    if len(sequences) <= 1:
        return parsed
    if SDAC_SEQUENCE not in sequences:
        raise PayloadError(
            SOURCE,
            f"region {region}: several classification sequences ({', '.join(sorted(sequences))}) "
            f"and none is the SDAC sequence {SDAC_SEQUENCE}",
        )
    return [p for p in parsed if p.sequence in (None, SDAC_SEQUENCE)]


# -- exogenous inputs: day-ahead total load (A65) and wind and solar (A69) forecasts ----------------


def parse_a65(body: bytes | str, region: str, eic: str | None = None) -> pd.DataFrame:
    """The day-ahead total load forecast [6.1.B] of one A65 answer as ``EXOGENOUS_SOURCE_COLUMNS``
    rows (``variable`` ``LOAD_VARIABLE``, MW at the document's resolution), sorted by ``ts``."""
    parsed = _generation_load_series(body, region, eic, LOAD_DOCUMENT)
    rows = _exogenous_rows(region, LOAD_VARIABLE, [series for _, series in parsed])
    return consolidate(rows, f"region {region}, {LOAD_DOCUMENT}", "value", EXOGENOUS_SOURCE_COLUMNS)


def parse_a69(body: bytes | str, region: str, eic: str | None = None) -> pd.DataFrame:
    """The day-ahead wind and solar forecast [14.1.D] of one A69 answer: the sum of its solar (B16),
    wind offshore (B18) and wind onshore (B19) series per instant (``variable`` ``WIND_SOLAR_VARIABLE``).

    A zone publishes the types it has (FI has no offshore wind); the sum is of those the answer
    holds, and they must share one time grid, or the answer is refused rather than summed in part.
    """
    parsed = _generation_load_series(body, region, eic, WIND_SOLAR_DOCUMENT)
    by_type: dict[str, list[_Series]] = {}
    for psr, series in parsed:
        by_type.setdefault(str(psr), []).append(series)
    where = f"region {region}, {WIND_SOLAR_DOCUMENT}"
    parts = {
        psr: consolidate(
            _exogenous_rows(region, WIND_SOLAR_VARIABLE, group), f"{where} {psr}", "value", EXOGENOUS_SOURCE_COLUMNS
        )
        for psr, group in sorted(by_type.items())
    }
    first_type, first = next(iter(parts.items()))
    grid = list(zip(first["ts"], first["resolution"], strict=True))
    for psr, part in parts.items():
        other = list(zip(part["ts"], part["resolution"], strict=True))
        if other != grid:
            at = min(set(grid) ^ set(other))
            raise PayloadError(
                SOURCE,
                f"{where}: the {psr} ({WIND_SOLAR_TYPES[psr]}) series and the {first_type} "
                f"({WIND_SOLAR_TYPES[first_type]}) series are not on one time grid (first difference at "
                f"{at[0]:%Y-%m-%dT%H:%MZ} {at[1]}); their sum cannot be formed",
            )
    total = np.sum([part["value"].to_numpy(dtype=float) for part in parts.values()], axis=0)
    return first.assign(value=total).loc[:, list(EXOGENOUS_SOURCE_COLUMNS)]


def _exogenous_rows(region: str, variable: str, parsed: list[_Series]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": region,
            "source": SOURCE,
            "ts": pd.DatetimeIndex([t for p in parsed for t in p.ts], tz="UTC").as_unit("us"),
            "variable": variable,
            "value": np.array([v for p in parsed for v in p.values], dtype=float),
            "resolution": [r for p in parsed for r in p.resolutions],
        }
    )


def _generation_load_series(
    body: bytes | str, region: str, eic: str | None, document: str
) -> list[tuple[str | None, _Series]]:
    """Each TimeSeries of a ``GL_MarketDocument`` (A65 or A69) with its psrType (A69 only).

    Both layouts ENTSO-E has used are read: one TimeSeries per delivery day (curveType A01) and
    one TimeSeries whose single Period spans the whole requested interval (A03, repeats left out).
    """
    what, domain = EXOGENOUS_DOCUMENTS[document]
    root = _xml_root(body, region, document)
    namespace, name = _split_tag(root.tag)
    if name == "Acknowledgement_MarketDocument" and namespace.startswith(ACKNOWLEDGEMENT_NS):
        _raise_acknowledgement(root, region, what)
    if name != "GL_MarketDocument" or not namespace.startswith(GENERATION_LOAD_NS):
        raise PayloadError(
            SOURCE,
            f"region {region}: unexpected root element <{name}> in namespace {namespace or '(none)'}; expected a "
            f"GL_MarketDocument ({GENERATION_LOAD_NS}*) with the {what} ({document}) or an Acknowledgement_MarketDocument",
        )
    doc_type = _text(root, "type")
    if doc_type != document:
        raise PayloadError(SOURCE, f"region {region}: document type is {doc_type!r}, expected {document} ({what})")
    process = _text(root, "process.processType")
    if process != DAY_AHEAD_PROCESS:
        raise PayloadError(
            SOURCE,
            f"region {region}: {document} process type is {process!r}, expected {DAY_AHEAD_PROCESS} (day-ahead); "
            "an intraday (A40) or realised (A16) document is not the day-ahead forecast the models read",
        )
    elements = _children(root, "TimeSeries")
    if not elements:
        raise PayloadError(SOURCE, f"region {region}: {document} GL_MarketDocument without any TimeSeries")
    out: list[tuple[str | None, _Series]] = []
    for index, element in enumerate(elements, start=1):
        where = f"region {region}, {document} TimeSeries #{index}"
        zone = _required(element, domain, where)
        if eic is not None and zone != eic:
            raise PayloadError(SOURCE, f"{where}: {domain} is {zone}, but {eic} was requested")
        unit = _required(element, "quantity_Measure_Unit.name", where)
        if unit != QUANTITY_UNIT:
            raise PayloadError(
                SOURCE, f"{where}: quantity_Measure_Unit.name {unit!r}; only {QUANTITY_UNIT} (MW) is known"
            )
        curve = _curve_type(element, where)
        psr = None
        if document == WIND_SOLAR_DOCUMENT:
            psr_type = _child(element, "MktPSRType")
            psr = _text(psr_type, "psrType") if psr_type is not None else None
            if psr not in WIND_SOLAR_TYPES:
                known = ", ".join(f"{code} ({name})" for code, name in WIND_SOLAR_TYPES.items())
                raise PayloadError(SOURCE, f"{where}: psrType {psr!r}; an A69 answer holds {known}")
        periods = _children(element, "Period")
        if not periods:
            raise PayloadError(SOURCE, f"{where}: TimeSeries without a Period")
        series = _Series(None, "", [], [], [])
        for number, period in enumerate(periods, start=1):
            _parse_period(period, curve, f"{where}, Period #{number}", series, "quantity")
        out.append((psr, series))
    return out


# -- delivery days and request windows ------------------------------------------------------------


def request_windows(
    start: pd.Timestamp,
    end: pd.Timestamp,
    timezone: str = DEFAULT_PUBLICATION_TIMEZONE,
    max_days: int = MAX_DAYS_PER_REQUEST,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """UTC windows of whole delivery days (local midnight to midnight) covering ``[start, end)``.

    The API returns every delivery day a request touches, so windows aligned to delivery days
    of at most ``max_days`` days never ask for more than ``max_days`` documents, and never more
    than a year.
    """
    if not 1 <= max_days <= MAX_REQUEST_SPAN.days:
        raise ValueError(
            f"{SOURCE}: max_days must be 1..{MAX_REQUEST_SPAN.days} (one year per request), got {max_days}"
        )
    if not start < end:
        return []
    first = start.tz_convert(timezone).date()
    last_local = end.tz_convert(timezone)
    last = last_local.date()
    if last_local != _midnight(last, timezone):
        last += timedelta(days=1)
    days = (last - first).days
    windows = []
    for offset in range(0, days, max_days):
        windows.append(
            (
                _midnight(first + timedelta(days=offset), timezone),
                _midnight(first + timedelta(days=min(offset + max_days, days)), timezone),
            )
        )
    return windows


def _midnight(day: date, timezone: str) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize(timezone).tz_convert("UTC")


def _period_param(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y%m%d%H%M")


# -- client ---------------------------------------------------------------------------------------


class Client(ProviderClient):
    """Day-ahead prices of the configured bidding zones, as ENTSO-E publishes them."""

    source = SOURCE

    def _eic(self, region: str) -> str:
        self.locator(region)  # refuses a region this provider is not configured for
        eic = self.config.regions[region]
        if not isinstance(eic, str) or len(eic) != 16:
            raise ValueError(
                f"{SOURCE}: region {region!r} needs a 16-character bidding-zone EIC code like "
                f"'10YBE----------2', got {eic!r}"
            )
        return eic

    def fetch_prices(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Prices (EUR/MWh, PT60M or PT15M) with ``start <= ts < end``; empty when ENTSO-E has none."""
        eic = self._eic(region)
        start, end = utc_bound(start, "start", SOURCE), utc_bound(end, "end", SOURCE)
        windows = request_windows(start, end, self._timezone(region))
        if not windows:
            return empty_prices()
        token = self._token(region)

        frames = []
        for window_start, window_end in windows:

            def parse(
                response: requests.Response, lo: pd.Timestamp = window_start, hi: pd.Timestamp = window_end
            ) -> pd.DataFrame:
                rows = parse_a44(response.content, region, eic)
                check_window(rows["ts"], lo, hi, SOURCE, f"region {region}")
                return rows

            params = {
                "securityToken": token,
                "documentType": DOCUMENT_TYPE,
                "in_Domain": eic,
                "out_Domain": eic,
                "periodStart": _period_param(window_start),
                "periodEnd": _period_param(window_end),
                "contract_MarketAgreement.type": DAY_AHEAD_CONTRACT,
            }
            frame = self.transport.fetch(
                "GET", PATH, parse, count=len, no_data=empty_prices, endpoint=PATH, params=params
            )
            if frame.empty:
                log.info("%s: no day-ahead prices for %s in [%s, %s)", SOURCE, region, window_start, window_end)
            frames.append(frame)
        rows = consolidate(_concat(frames), f"region {region} (across {len(windows)} request(s))")
        rows = rows[(rows["ts"] >= start) & (rows["ts"] < end)].reset_index(drop=True)
        return rows if not rows.empty else empty_prices()

    def _token(self, region: str) -> str:
        token = self.config.api_key
        if not token:
            raise AuthError(
                SOURCE,
                f"no security token configured for {region}; set the password of the Airflow "
                f"connection '{self.config.connection_id}' (or EOPT_ENTSOE_TOKEN)",
            )
        return token

    def exogenous_series(self) -> dict[str, ExogenousFetch]:
        return {
            f"{LOAD_DOCUMENT} {EXOGENOUS_DOCUMENTS[LOAD_DOCUMENT][0]}": self.fetch_load_forecast,
            f"{WIND_SOLAR_DOCUMENT} {EXOGENOUS_DOCUMENTS[WIND_SOLAR_DOCUMENT][0]}": self.fetch_wind_solar_forecast,
        }

    def fetch_load_forecast(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The day-ahead total load forecast (A65, process A01) with ``start <= ts < end``, in MW."""
        return self._fetch_exogenous(region, start, end, LOAD_DOCUMENT, parse_a65)

    def fetch_wind_solar_forecast(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The day-ahead wind + solar forecast (A69, process A01, every psrType) with ``start <= ts < end``, in MW."""
        return self._fetch_exogenous(region, start, end, WIND_SOLAR_DOCUMENT, parse_a69)

    def _fetch_exogenous(
        self,
        region: str,
        start: pd.Timestamp,
        end: pd.Timestamp,
        document: str,
        parser: Callable[[bytes, str, str], pd.DataFrame],
    ) -> pd.DataFrame:
        """A65/A69 answers cover the requested UTC interval (not whole delivery days), so the client
        asks for ``[start, end)`` widened to whole hours, in requests of at most a year."""
        eic = self._eic(region)
        start, end = utc_bound(start, "start", SOURCE), utc_bound(end, "end", SOURCE)
        first, last = start.floor("h"), end.ceil("h")
        if not first < last:
            return empty_exogenous()
        token = self._token(region)
        edges = [*pd.date_range(first, last, freq=MAX_EXOGENOUS_SPAN, inclusive="left"), last]
        frames = []
        for window_start, window_end in itertools.pairwise(edges):

            def parse(
                response: requests.Response, lo: pd.Timestamp = window_start, hi: pd.Timestamp = window_end
            ) -> pd.DataFrame:
                rows = parser(response.content, region, eic)
                check_window(rows["ts"], lo, hi, SOURCE, f"region {region}, {document}")
                return rows

            params = {
                "securityToken": token,
                "documentType": document,
                "processType": DAY_AHEAD_PROCESS,
                EXOGENOUS_ZONE_PARAMETER[document]: eic,
                "periodStart": _period_param(window_start),
                "periodEnd": _period_param(window_end),
            }
            frame = self.transport.fetch(
                "GET", PATH, parse, count=len, no_data=empty_exogenous, endpoint=f"{PATH} {document}", params=params
            )
            if frame.empty:
                log.info("%s: no %s for %s in [%s, %s)", SOURCE, document, region, window_start, window_end)
            frames.append(frame)
        present = [f for f in frames if not f.empty]
        if not present:
            return empty_exogenous()
        rows = consolidate(
            pd.concat(present, ignore_index=True),
            f"region {region}, {document} (across {len(frames)} request(s))",
            "value",
            EXOGENOUS_SOURCE_COLUMNS,
        )
        rows = rows[(rows["ts"] >= start) & (rows["ts"] < end)].reset_index(drop=True)
        return rows if not rows.empty else empty_exogenous()

    def _timezone(self, region: str) -> str:
        """The zone of the region's delivery days: the settings' catalogue's (``config.timezones``); a
        config built without it (a test's) looks the region up in this process's catalogue."""
        if region in self.config.timezones:
            return self.config.timezones[region]
        try:
            return get_market(region).timezone
        except MarketDataError:
            return DEFAULT_PUBLICATION_TIMEZONE


def _concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    present = [f for f in frames if not f.empty]
    if not present:
        return empty_prices()
    return pd.concat(present, ignore_index=True)
