"""Sandbox ENTSO-E Transparency Platform: ``GET /api`` day-ahead prices (``documentType=A44``), and
the day-ahead total load forecast (``A65``, ``processType=A01``) and wind and solar forecast (``A69``).

It answers like the real ``https://web-api.tp.entsoe.eu/api`` as far as the public record shows
(the ENTSO-E API guide, entsoe-py, and the real answers under ``tests/fixtures/pricing_apis/entsoe``):

- ``securityToken`` must be the configured token, else **401** with the legacy HTML body
  ("Unauthorized. Missing or invalid security token");
- the answer is a ``Publication_MarketDocument`` (namespace ``...publicationdocument:7:3``) with one
  ``TimeSeries`` per **whole delivery day** (Europe/Brussels) touched by ``[periodStart, periodEnd)``,
  prices from the bundled history (``ReplayHistory``) in EUR/MWh; ``PT60M`` for delivery days before
  2025-10-01 and ``PT15M`` from then on (each hourly price over its four quarters), ``curveType``
  A03 with every point that repeats the previous price **left out**, as the real API does;
- no data (an unknown zone, a contract type other than day-ahead): HTTP 200 with an
  ``Acknowledgement_MarketDocument``, Reason 999 "No matching data found ...";
- bad or missing parameters, more than 100 delivery days or more than a year: **400** with an
  Acknowledgement whose Reason (also code 999, as the real API uses it) says what is wrong.

The exogenous forecasts are ``GL_MarketDocument`` answers (namespace ``...generationloaddocument:3:0``)
shaped like the real ones under ``tests/fixtures/pricing_apis/entsoe`` (``a65_*``, ``a69_*``):

- A65: ``documentType=A65&processType=A01&outBiddingZone_Domain=EIC&periodStart&periodEnd``; A69:
  ``documentType=A69&processType=A01&in_Domain=EIC`` and an optional ``psrType`` (B16 solar, B18 wind
  offshore, B19 wind onshore); the answer names the zone in ``outBiddingZone_Domain.mRID`` (A65) or
  ``inBiddingZone_Domain.mRID`` (A69) and gives MW (``MAW``);
- the document covers **the requested UTC interval** (widened to whole hours), not delivery days: one
  ``TimeSeries`` per series with one ``Period`` over the interval (two where it crosses 2025-10-01,
  ``PT60M`` before and ``PT15M`` from then, each hour's value over its four quarters), ``curveType``
  A03 with repeated values left out;
- values: the zone's market's bundled ``system_load_forecast`` for A65; for A69 the bundle has no solar
  or offshore history, so the answer holds one B19 (wind onshore) series replaying the only real wind
  forecast the bundle has (Nord Pool's ``wind_power_forecast``), and B16 or B18 asked alone is "no data";
- any other ``processType`` (A16 realised, A40 intraday) is "no data" (the sandbox has day-ahead only).

UNVERIFIED and chosen here: the HTTP status of the error acknowledgements, the exact text of the
one-year error, the content types, and the 429/500 bodies (the 429 text is the one the old API
guide quotes). POST requests and the ``offset`` parameter are not served.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from ingestion.sandbox.server import SandboxRequest, SandboxResponse

# Bidding zone EIC -> region: the catalogue's ``ids.entsoe`` of the regions the replay serves
# (a bundled history, or ``sandbox.replays``); any other zone is "no data".
PUBLICATION_TIMEZONE = "Europe/Brussels"
QUARTER_HOUR_FROM = date(2025, 10, 1)  # SDAC 15-minute MTU, first delivery day
MAX_DOCUMENTS = 100
PUBLICATION_NS = "urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3"
ACKNOWLEDGEMENT_NS = "urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0"
PLATFORM = "10X1001A1001A450"  # ENTSO-E's own participant code, sender of every document
XML = "text/xml"

# Verbatim legacy body (krose/entsoeapi#14; tests/fixtures/pricing_apis/entsoe/error_401_unauthorized_legacy.html).
UNAUTHORIZED_HTML = """<!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN" "http://www.w3.org/TR/REC-html40/loose.dtd">
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<title>Error</title>
</head>
<body>Unauthorized. Missing or invalid security token</body>
</html>
"""
# Quoted from the old API guide (entsoe-py#70); the R3 wording is unverified.
RATE_LIMIT_TEXT = "Max allowed requests per minute from each unique IP is max up to 400 only"

_PERIOD = re.compile(r"^\d{12}$")

GENERATION_LOAD_NS = "urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0"
LOAD_SERIES = "system_load_forecast"  # A65: each zone's own market's load forecast
WIND_SERIES = ("NP", "wind_power_forecast")  # A69 wind onshore: the bundle's only real wind forecast
PSR_TYPES = {"B16": "A94", "B18": "A93", "B19": "A93"}  # psrType -> businessType (solar A94, wind A93)
DAY_AHEAD_PROCESS = "A01"


class App:
    name = "entsoe"

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.history = sandbox.history

    # -- requests ---------------------------------------------------------------------------
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if request.path.rstrip("/") != "/api":
            return self.error(404, f"Not Found: {request.path}; the Transparency Platform API is GET /api")
        if request.method != "GET":
            return self.error(
                400, "The sandbox serves GET /api only (POST with a StatusRequest_MarketDocument is not served)"
            )
        query = request.query
        token = self.sandbox.config.credentials.get(self.name, {}).get("token")
        if not token or query.get("securityToken") != token:
            return self.error(401, "Unauthorized. Missing or invalid security token")
        document_type = query.get("documentType")
        if document_type in ("A65", "A69"):
            return self._forecast(document_type, query)
        if document_type != "A44":
            return self.error(
                400,
                f"Unsupported or missing documentType {document_type!r}; the sandbox serves A44 (day-ahead prices), "
                "A65 (total load forecast) and A69 (wind and solar forecast)",
            )
        in_domain, out_domain = query.get("in_Domain"), query.get("out_Domain")
        if not in_domain or not out_domain:
            return self.error(400, "Mandatory parameters in_Domain and out_Domain are missing")
        if in_domain != out_domain:
            return self.error(
                400,
                f"For day-ahead prices in_Domain ({in_domain}) and out_Domain ({out_domain}) must be the same bidding zone",
            )
        period = self._period(query)
        if isinstance(period, SandboxResponse):
            return period
        start, end = period
        days = _delivery_days(start, end)
        if end > start + pd.DateOffset(years=1):
            return self.error(
                400,
                f"The requested period {query['periodStart']}-{query['periodEnd']} exceeds the allowed maximum of 1 year "
                "for data item ENERGY_PRICES",
            )
        if len(days) > MAX_DOCUMENTS:
            return self.error(
                400,
                f"The number of instances ({len(days)}) exceeds the allowed maximum ({MAX_DOCUMENTS}) "
                "for data item ENERGY_PRICES.",
            )
        region = self.history.regions_by_id("entsoe").get(in_domain)
        contract = query.get("contract_MarketAgreement.type", "A01")
        if region is None or contract != "A01":
            return self.no_data(start, end)
        return SandboxResponse(200, self._publication(region, in_domain, days).encode("utf-8"), XML)

    def _forecast(self, document_type: str, query: dict[str, str]) -> SandboxResponse:
        """An A65 or A69 answer over the requested UTC interval (see the module docstring)."""
        zone_parameter = "outBiddingZone_Domain" if document_type == "A65" else "in_Domain"
        process = query.get("processType")
        zone = query.get(zone_parameter)
        missing = [name for name, value in (("processType", process), (zone_parameter, zone)) if not value]
        if missing:
            return self.error(
                400, f"Mandatory parameter(s) {', '.join(missing)} missing for documentType {document_type}"
            )
        psr_type = query.get("psrType")
        if document_type == "A69" and psr_type is not None and psr_type not in PSR_TYPES:
            return self.error(
                400, f"psrType {psr_type!r} is not valid for documentType A69; use one of {', '.join(PSR_TYPES)}"
            )
        period = self._period(query)
        if isinstance(period, SandboxResponse):
            return period
        start, end = period[0].floor("h"), period[1].ceil("h")
        if end > start + pd.DateOffset(years=1):
            return self.error(
                400,
                f"The requested period {query['periodStart']}-{query['periodEnd']} exceeds the allowed maximum of 1 year",
            )
        item = "SYSTEM_TOTAL_LOAD [6.1.B]" if document_type == "A65" else "WIND_AND_SOLAR_FORECAST [14.1.D]"
        region = self.history.regions_by_id("entsoe").get(str(zone))
        if region is None or process != DAY_AHEAD_PROCESS or psr_type in ("B16", "B18"):
            return SandboxResponse(200, _acknowledgement("999", _no_data_text(start, end, item)).encode("utf-8"), XML)
        if document_type == "A65":
            values = self.history.exogenous(region, LOAD_SERIES, start, end)
        else:
            values = self.history.exogenous(WIND_SERIES[0], WIND_SERIES[1], start, end)
        if len(values) == 0 or not np.isfinite(values.to_numpy(dtype=float)).all():
            return SandboxResponse(200, _acknowledgement("999", _no_data_text(start, end, item)).encode("utf-8"), XML)
        psr = None if document_type == "A65" else "B19"
        body = _generation_load_document(document_type, str(zone), psr, start, end, values)
        return SandboxResponse(200, body.encode("utf-8"), XML)

    def _period(self, query: dict[str, str]) -> tuple[pd.Timestamp, pd.Timestamp] | SandboxResponse:
        raw = {name: query.get(name, "") for name in ("periodStart", "periodEnd")}
        missing = [name for name, value in raw.items() if not value]
        if missing:
            return self.error(400, f"Mandatory parameter(s) {', '.join(missing)} missing; use yyyyMMddHHmm in UTC")
        stamps = {}
        for name, value in raw.items():
            try:
                if not _PERIOD.match(value):
                    raise ValueError(value)
                stamps[name] = pd.Timestamp(datetime.strptime(value, "%Y%m%d%H%M"), tz="UTC")
            except ValueError:
                return self.error(400, f"{name}={value!r} is not a valid date and time; use yyyyMMddHHmm in UTC")
        if not stamps["periodStart"] < stamps["periodEnd"]:
            return self.error(400, "periodStart must be before periodEnd")
        return stamps["periodStart"], stamps["periodEnd"]

    # -- documents --------------------------------------------------------------------------
    def _publication(self, region: str, eic: str, days: list[date]) -> str:
        bounds = [_midnight(d) for d in days] + [_midnight(days[-1] + timedelta(days=1))]
        hourly = self.history.hourly(region, bounds[0], bounds[-1])
        currency = self.history.currency(region)
        series = []
        for number, day in enumerate(days, start=1):
            day_start, day_end = bounds[number - 1], bounds[number]
            values = hourly[(hourly.index >= day_start) & (hourly.index < day_end)].to_numpy(dtype=float)
            if len(values) == 0 or not np.isfinite(values).all():
                continue  # a day the history cannot fill is left out, as the real API leaves out unpublished days
            quarters = day >= QUARTER_HOUR_FROM
            amounts = np.repeat(values, 4) if quarters else values
            series.append(
                _timeseries(number, eic, currency, day_start, day_end, "PT15M" if quarters else "PT60M", amounts)
            )
        if not series:
            return _acknowledgement("999", _no_data_text(bounds[0], bounds[-1]))
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            f'<Publication_MarketDocument xmlns="{PUBLICATION_NS}">\n'
            f"    <mRID>{uuid.uuid4().hex}</mRID>\n"
            "    <revisionNumber>1</revisionNumber>\n"
            "    <type>A44</type>\n"
            f'    <sender_MarketParticipant.mRID codingScheme="A01">{PLATFORM}</sender_MarketParticipant.mRID>\n'
            "    <sender_MarketParticipant.marketRole.type>A32</sender_MarketParticipant.marketRole.type>\n"
            f'    <receiver_MarketParticipant.mRID codingScheme="A01">{PLATFORM}</receiver_MarketParticipant.mRID>\n'
            "    <receiver_MarketParticipant.marketRole.type>A33</receiver_MarketParticipant.marketRole.type>\n"
            f"    <createdDateTime>{_now()}</createdDateTime>\n"
            "    <period.timeInterval>\n"
            f"    <start>{_instant(bounds[0])}</start>\n"
            f"    <end>{_instant(bounds[-1])}</end>\n"
            "    </period.timeInterval>\n" + "".join(series) + "</Publication_MarketDocument>\n"
        )

    def no_data(self, start: pd.Timestamp, end: pd.Timestamp) -> SandboxResponse:
        """The real "no data" answer: HTTP 200 with an Acknowledgement, Reason 999."""
        return SandboxResponse(200, _acknowledgement("999", _no_data_text(start, end)).encode("utf-8"), XML)

    def error(self, status: int, message: str) -> SandboxResponse:
        if status == 401:
            return SandboxResponse(401, UNAUTHORIZED_HTML.encode("utf-8"), "text/html;charset=UTF-8")
        if status == 429:
            return SandboxResponse(429, RATE_LIMIT_TEXT.encode("utf-8"), "text/plain;charset=UTF-8")
        if status == 400:
            return SandboxResponse(400, _acknowledgement("999", message).encode("utf-8"), XML)
        title = {404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
        page = (
            '<!doctype html>\n<html lang="en">\n<head><title>HTTP Status '
            f"{status} – {escape(title)}</title></head>\n<body><h1>HTTP Status {status} – {escape(title)}</h1>"  # noqa: RUF001 - the real page's en dash
            f"<p>{escape(message)}</p></body>\n</html>\n"
        )
        return SandboxResponse(status, page.encode("utf-8"), "text/html;charset=UTF-8")


def _a03_points(values: np.ndarray, element: str, indent: str) -> list[str]:
    """The ``<Point>`` elements of a curveType A03 series: a value equal to the previous one is left out."""
    points = []
    previous = None
    for position, value in enumerate(values, start=1):
        text = _amount(value)
        if text == previous:
            continue
        previous = text
        points.append(
            "            <Point>\n"
            f"{indent}<position>{position}</position>\n"
            f"{indent}<{element}>{text}</{element}>\n"
            "            </Point>\n"
        )
    return points


def _timeseries(
    number: int, eic: str, currency: str, start: pd.Timestamp, end: pd.Timestamp, resolution: str, amounts: np.ndarray
) -> str:
    points = _a03_points(amounts, "price.amount", " " * 16)
    return (
        "    <TimeSeries>\n"
        f"        <mRID>{number}</mRID>\n"
        "        <auction.type>A01</auction.type>\n"
        "        <businessType>A62</businessType>\n"
        f'        <in_Domain.mRID codingScheme="A01">{escape(eic)}</in_Domain.mRID>\n'
        f'        <out_Domain.mRID codingScheme="A01">{escape(eic)}</out_Domain.mRID>\n'
        "        <contract_MarketAgreement.type>A01</contract_MarketAgreement.type>\n"
        f"        <currency_Unit.name>{escape(currency)}</currency_Unit.name>\n"
        "        <price_Measure_Unit.name>MWH</price_Measure_Unit.name>\n"
        "        <curveType>A03</curveType>\n"
        "        <Period>\n"
        "            <timeInterval>\n"
        f"            <start>{_instant(start)}</start>\n"
        f"            <end>{_instant(end)}</end>\n"
        "            </timeInterval>\n"
        f"            <resolution>{resolution}</resolution>\n" + "".join(points) + "        </Period>\n"
        "    </TimeSeries>\n"
    )


def _acknowledgement(code: str, text: str) -> str:
    now = _now()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Acknowledgement_MarketDocument xmlns="{ACKNOWLEDGEMENT_NS}">\n'
        f"    <mRID>{uuid.uuid4().hex[:16]}</mRID>\n"
        f"    <createdDateTime>{now}</createdDateTime>\n"
        f'    <sender_MarketParticipant.mRID codingScheme="A01">{PLATFORM}</sender_MarketParticipant.mRID>\n'
        "    <sender_MarketParticipant.marketRole.type>A32</sender_MarketParticipant.marketRole.type>\n"
        f'    <receiver_MarketParticipant.mRID codingScheme="A01">{PLATFORM}</receiver_MarketParticipant.mRID>\n'
        "    <receiver_MarketParticipant.marketRole.type>A39</receiver_MarketParticipant.marketRole.type>\n"
        f"    <received_MarketDocument.createdDateTime>{now}</received_MarketDocument.createdDateTime>\n"
        "    <Reason>\n"
        f"        <code>{escape(code)}</code>\n"
        f"        <text>{escape(text)}</text>\n"
        "    </Reason>\n"
        "</Acknowledgement_MarketDocument>\n"
    )


def _generation_load_document(
    document_type: str, eic: str, psr_type: str | None, start: pd.Timestamp, end: pd.Timestamp, hourly: pd.Series
) -> str:
    """A GL_MarketDocument like the real A65/A69 answers: one TimeSeries, a Period per resolution."""
    switch = _midnight(QUARTER_HOUR_FROM)
    periods = []
    for lo, hi, quarters in ((start, min(end, switch), False), (max(start, switch), end, True)):
        if lo >= hi:
            continue
        values = hourly[(hourly.index >= lo) & (hourly.index < hi)].to_numpy(dtype=float)
        periods.append(
            _quantity_period(lo, hi, "PT15M" if quarters else "PT60M", np.repeat(values, 4) if quarters else values)
        )
    if document_type == "A65":
        head = (
            "      <businessType>A04</businessType>\n"
            "      <objectAggregation>A01</objectAggregation>\n"
            f'      <outBiddingZone_Domain.mRID codingScheme="A01">{escape(eic)}</outBiddingZone_Domain.mRID>\n'
            "      <quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name>\n"
            "      <curveType>A03</curveType>\n"
        )
    else:
        head = (
            f"      <businessType>{PSR_TYPES[str(psr_type)]}</businessType>\n"
            "      <objectAggregation>A08</objectAggregation>\n"
            f'      <inBiddingZone_Domain.mRID codingScheme="A01">{escape(eic)}</inBiddingZone_Domain.mRID>\n'
            "      <quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name>\n"
            "      <curveType>A03</curveType>\n"
            f"      <MktPSRType>\n        <psrType>{psr_type}</psrType>\n      </MktPSRType>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<GL_MarketDocument xmlns="{GENERATION_LOAD_NS}">\n'
        f"  <mRID>{uuid.uuid4().hex}</mRID>\n"
        "  <revisionNumber>1</revisionNumber>\n"
        f"  <type>{document_type}</type>\n"
        f"  <process.processType>{DAY_AHEAD_PROCESS}</process.processType>\n"
        f'  <sender_MarketParticipant.mRID codingScheme="A01">{PLATFORM}</sender_MarketParticipant.mRID>\n'
        "  <sender_MarketParticipant.marketRole.type>A32</sender_MarketParticipant.marketRole.type>\n"
        f'  <receiver_MarketParticipant.mRID codingScheme="A01">{PLATFORM}</receiver_MarketParticipant.mRID>\n'
        "  <receiver_MarketParticipant.marketRole.type>A33</receiver_MarketParticipant.marketRole.type>\n"
        f"  <createdDateTime>{_now()}</createdDateTime>\n"
        "  <time_Period.timeInterval>\n"
        f"    <start>{_instant(start)}</start>\n"
        f"    <end>{_instant(end)}</end>\n"
        "  </time_Period.timeInterval>\n"
        "    <TimeSeries>\n"
        "      <mRID>1</mRID>\n" + head + "".join(periods) + "    </TimeSeries>\n"
        "</GL_MarketDocument>\n"
    )


def _quantity_period(start: pd.Timestamp, end: pd.Timestamp, resolution: str, quantities: np.ndarray) -> str:
    points = _a03_points(quantities, "quantity", " " * 14)
    return (
        "        <Period>\n"
        "          <timeInterval>\n"
        f"            <start>{_instant(start)}</start>\n"
        f"            <end>{_instant(end)}</end>\n"
        "          </timeInterval>\n"
        f"          <resolution>{resolution}</resolution>\n" + "".join(points) + "        </Period>\n"
    )


def _no_data_text(start: pd.Timestamp, end: pd.Timestamp, item: str = "ENERGY_PRICES [12.1.D]") -> str:
    return (
        f"No matching data found for Data item {item} and interval "
        f"{start:%Y-%m-%dT%H:%M:%S.000Z}/{end:%Y-%m-%dT%H:%M:%S.000Z}"
    )


def _delivery_days(start: pd.Timestamp, end: pd.Timestamp) -> list[date]:
    """The Europe/Brussels delivery days that ``[start, end)`` touches, in order."""
    first = start.tz_convert(PUBLICATION_TIMEZONE).date()
    last = (end - pd.Timedelta(microseconds=1)).tz_convert(PUBLICATION_TIMEZONE).date()
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _midnight(day: date) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize(PUBLICATION_TIMEZONE).tz_convert("UTC")


def _instant(ts: pd.Timestamp) -> str:
    return f"{ts.tz_convert('UTC'):%Y-%m-%dT%H:%MZ}"


def _amount(value: float) -> str:
    """A price as ENTSO-E writes it: at most two decimals, no trailing zeros (53, 69.4, 74.78)."""
    text = f"{round(float(value), 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
