"""Sandbox ENTSO-E Transparency Platform: ``GET /api`` day-ahead prices (``documentType=A44``).

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

# Bidding zone EIC -> bundled market. Only zones with bundled history are served.
ZONES = {"10YBE----------2": "BE", "10YFR-RTE------C": "FR"}
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
        if document_type != "A44":
            return self.error(
                400, f"Unsupported or missing documentType {document_type!r}; the sandbox serves A44 (day-ahead prices)"
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
        region = ZONES.get(in_domain)
        contract = query.get("contract_MarketAgreement.type", "A01")
        if region is None or contract != "A01":
            return self.no_data(start, end)
        return SandboxResponse(200, self._publication(region, in_domain, days).encode("utf-8"), XML)

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


def _timeseries(
    number: int, eic: str, currency: str, start: pd.Timestamp, end: pd.Timestamp, resolution: str, amounts: np.ndarray
) -> str:
    points = []
    previous = None
    for position, value in enumerate(amounts, start=1):
        text = _amount(value)
        if text == previous:
            continue  # curveType A03: a price equal to the previous one is left out
        previous = text
        points.append(
            "            <Point>\n"
            f"                <position>{position}</position>\n"
            f"                <price.amount>{text}</price.amount>\n"
            "            </Point>\n"
        )
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


def _no_data_text(start: pd.Timestamp, end: pd.Timestamp) -> str:
    return (
        f"No matching data found for Data item ENERGY_PRICES [12.1.D] and interval "
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
