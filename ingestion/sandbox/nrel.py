"""Sandbox NREL/NLR Utility Rates v3 (``GET /api/utility_rates/v3.json`` and ``.xml``).

Real behaviour kept: the key is accepted from the ``X-Api-Key`` header, the ``api_key`` query
parameter or the Basic-auth username; a missing or wrong key is a 403 with API Umbrella's body
(``API_KEY_MISSING`` verbatim from the NLR errors page, ``API_KEY_INVALID`` from API Umbrella's
default template); validation failures are 422 with the v3 ``errors`` array; every answer carries
``X-RateLimit-Limit``/``X-RateLimit-Remaining`` for the documented 1,000 requests per hour; the
JSON and XML bodies have the fields and tags of the official examples.

Sandbox-only choices (there is no 2012 survey to replay):

- The point must lie within one degree of latitude and longitude of Chicago (41.8781, -87.6298),
  a stand-in for Commonwealth Edison's territory, which the PJM COMED history prices. The
  utility is "Commonwealth Edison Co" (EIA id 4110).
- The rates come from the bundled PJM history: ``industrial`` is the mean of the trailing 364
  days (52 weeks, ending at today's 00:00 UTC, replayed by ``ReplayHistory``) in USD/MWh divided
  by 1000, so USD/kWh of wholesale energy; ``commercial = industrial * 1.15`` and
  ``residential = industrial * 1.45`` are made-up retail markups, not NLR data. All are rounded
  to 4 decimals, as in the real examples.
- A point outside that box gets HTTP 200 with every output field set to ``"no data"`` (empty
  ``utility_info``). The real body for a point no utility serves is UNVERIFIED; ``"no data"`` is
  the string public clients of this API test for.
"""

from __future__ import annotations

import base64
import threading
import xml.etree.ElementTree as ET
from functools import lru_cache
from typing import Any

import pandas as pd

from ingestion.http import SlidingWindow
from ingestion.sandbox.server import SandboxRequest, SandboxResponse

CHICAGO = (41.8781, -87.6298)
BOX_DEGREES = 1.0
UTILITY = {"company_id": "4110", "utility_name": "Commonwealth Edison Co"}
COMMERCIAL_MARKUP = 1.15  # sandbox-only
RESIDENTIAL_MARKUP = 1.45  # sandbox-only
TRAILING = pd.Timedelta(days=364)
HOURLY_LIMIT = 1000  # documented per-key limit (rolling hour)
SIGNUP_URL = "https://developer.nlr.gov"
CONTACT_URL = "https://developer.nlr.gov/contact/"
ADDRESS_REMOVED = (
    "The 'address' parameter is no longer supported. Pass in the 'lat' and 'lon' parameters instead. "
    "Email notification about this change was sent to affected API users on 2025-02-25."
)

# API Umbrella's codes and default messages by HTTP status.
GATEWAY_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("HTTPS_REQUIRED", None),
    403: ("API_KEY_INVALID", f"An invalid api_key was supplied. Get one at {SIGNUP_URL}"),
    404: ("NOT_FOUND", None),
    429: (
        "OVER_RATE_LIMIT",
        f"You have exceeded your rate limit. Try again later or contact us at {CONTACT_URL} for assistance",
    ),
}


def gateway_error_json(status: int, message: str, code: str | None = None) -> SandboxResponse:
    """API Umbrella's JSON error body (shared by the NLR and OpenEI sandboxes)."""
    default_code, template = GATEWAY_ERRORS.get(
        status, ("INTERNAL_SERVER_ERROR" if status >= 500 else "BAD_REQUEST", None)
    )
    chosen = code or default_code
    text = message if code else (template or message)
    return SandboxResponse.json(status, {"error": {"code": chosen, "message": text}})


class App:
    name = "nrel"

    def __init__(self, sandbox) -> None:
        self.history = sandbox.history
        self.credentials = sandbox.config.credentials.get("nrel", {})
        self._lock = threading.Lock()
        self._windows: dict[str, SlidingWindow] = {}

    # -- errors ---------------------------------------------------------------------------
    def error(self, status: int, message: str) -> SandboxResponse:
        return gateway_error_json(status, message)

    def _gateway_error(self, status: int, code: str, message: str, fmt: str) -> SandboxResponse:
        if fmt == "xml":
            root = ET.Element("response")
            error = ET.SubElement(root, "error")
            ET.SubElement(error, "code").text = code
            ET.SubElement(error, "message").text = message
            return SandboxResponse(status, ET.tostring(root, encoding="utf-8"), "application/xml")
        return SandboxResponse.json(status, {"error": {"code": code, "message": message}})

    # -- requests -------------------------------------------------------------------------
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        fmt = {"/api/utility_rates/v3.json": "json", "/api/utility_rates/v3.xml": "xml"}.get(request.path)
        if fmt is None:
            return self._gateway_error(404, "NOT_FOUND", f"No data was found for the path {request.path}", "json")
        if request.method != "GET":
            return self._gateway_error(404, "NOT_FOUND", f"{request.method} is not supported here", fmt)
        key = _api_key(request)
        if not key:
            return self._gateway_error(403, "API_KEY_MISSING", f"No api_key was supplied. Get one at {SIGNUP_URL}", fmt)
        if key != self.credentials.get("api_key"):
            return self._gateway_error(
                403, "API_KEY_INVALID", f"An invalid api_key was supplied. Get one at {SIGNUP_URL}", fmt
            )
        remaining = self._count(key)
        code, message = GATEWAY_ERRORS[429]
        response = self._gateway_error(429, code, message or "", fmt) if remaining < 0 else self._answer(request, fmt)
        response.headers.update(
            {"X-RateLimit-Limit": str(HOURLY_LIMIT), "X-RateLimit-Remaining": str(max(remaining, 0))}
        )
        return response

    def _count(self, key: str) -> int:
        """Requests left this rolling hour for the key, after this one (negative: over)."""
        with self._lock:
            window = self._windows.setdefault(key, SlidingWindow(HOURLY_LIMIT, 3600.0))
        return -1 if window.try_acquire() > 0 else window.remaining

    def _answer(self, request: SandboxRequest, fmt: str) -> SandboxResponse:
        inputs = {k: v for k, v in request.query.items() if k in ("lat", "lon", "radius", "limit", "address")}
        errors = []
        if "address" in request.query:
            errors.append(ADDRESS_REMOVED)
        lat, lon = _number(request.query.get("lat")), _number(request.query.get("lon"))
        if lat is None or not -90 <= lat <= 90:
            errors.append("lat must be a number between -90 and 90")
        if lon is None or not -180 <= lon <= 180:
            errors.append("lon must be a number between -180 and 180")
        if errors:
            return self._document(422, inputs, errors, None, fmt)
        if lat is None or lon is None:  # _inputs reported a missing coordinate as an error above
            raise RuntimeError("sandbox NREL: coordinates missing after validation")
        if abs(lat - CHICAGO[0]) > BOX_DEGREES or abs(lon - CHICAGO[1]) > BOX_DEGREES:
            outputs: dict[str, Any] = {
                "company_id": "no data",
                "utility_name": "no data",
                "utility_info": [],
                "commercial": "no data",
                "industrial": "no data",
                "residential": "no data",
            }
        else:
            rates = sandbox_rates(self.history, pd.Timestamp.now(tz="UTC").floor("D"))
            outputs = {**UTILITY, "utility_info": [dict(UTILITY)], **rates}
        return self._document(200, inputs, [], outputs, fmt)

    def _document(
        self, status: int, inputs: dict, errors: list[str], outputs: dict | None, fmt: str
    ) -> SandboxResponse:
        doc = {
            "inputs": inputs,
            "errors": errors,
            "warnings": [],
            "version": "3.1.0",
            "metadata": {"sources": ["Ventyx Research (2012)"]},
            "outputs": outputs if outputs is not None else {},
        }
        if fmt == "json":
            return SandboxResponse.json(status, doc)
        return SandboxResponse(status, _to_xml(doc), "application/xml")


@lru_cache(maxsize=4)
def _trailing_mean(history, at: pd.Timestamp) -> float:
    return float(history.hourly("PJM", at - TRAILING, at).mean())


def sandbox_rates(history, at: pd.Timestamp) -> dict[str, float]:
    """The sandbox's sector rates (USD/kWh) for a request at ``at`` (see the module docstring)."""
    industrial = _trailing_mean(history, at) / 1000
    return {
        "commercial": round(industrial * COMMERCIAL_MARKUP, 4),
        "industrial": round(industrial, 4),
        "residential": round(industrial * RESIDENTIAL_MARKUP, 4),
    }


def _api_key(request: SandboxRequest) -> str | None:
    if request.headers.get("x-api-key"):
        return request.headers["x-api-key"]
    if request.query.get("api_key"):
        return request.query["api_key"]
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user = base64.b64decode(auth[6:].strip()).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None
    return None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _to_xml(doc: dict) -> bytes:
    """The v3 XML form: hyphenated tags, ``type="array"``/``type="float"`` attributes."""
    root = ET.Element("response")
    inputs = ET.SubElement(root, "inputs")
    for key, value in doc["inputs"].items():
        ET.SubElement(inputs, key).text = str(value)
    for name, item in (("errors", "error"), ("warnings", "warning")):
        node = ET.SubElement(root, name, type="array")
        for text in doc[name]:
            ET.SubElement(node, item).text = text
    ET.SubElement(root, "version").text = doc["version"]
    sources = ET.SubElement(ET.SubElement(root, "metadata"), "sources", type="array")
    for text in doc["metadata"]["sources"]:
        ET.SubElement(sources, "source").text = text
    outputs = ET.SubElement(root, "outputs")
    for key, value in doc["outputs"].items():
        tag = key.replace("_", "-")
        if key == "utility_info":
            info = ET.SubElement(outputs, tag, type="array")
            for utility in value:
                entry = ET.SubElement(info, tag)
                for k, v in utility.items():
                    ET.SubElement(entry, k.replace("_", "-")).text = str(v)
        elif isinstance(value, float):
            ET.SubElement(outputs, tag, type="float").text = repr(value)
        else:
            ET.SubElement(outputs, tag).text = str(value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")
