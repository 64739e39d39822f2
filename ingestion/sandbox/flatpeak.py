"""Flatpeak in the sandbox: ``GET /login`` and ``GET /tariffs/rates/{location_id}`` (spec 2024-08-24).

- ``/login`` checks HTTP Basic ``account_id:api_key`` against ``credentials["flatpeak"]`` and
  answers ``{"bearer_token", "expires_in", "live_mode"}``; wrong credentials get the spec's
  ``403 {"message": "Bad credentials"}``. Tokens expire after ``config.token_ttl_s`` seconds.
- ``/tariffs/rates/loc_<REGION>`` serves the region's replayed hourly history divided by 1000
  (the API's per-kWh large currency units), consecutive equal hours merged into one
  variable-length interval, in the body shape of the docs' ``TariffRate`` example. Times are
  written in the ``end_time``'s offset, as the docs say the real API does.

Sandbox choices where the docs are silent (unverified against the real API): an expired token
gets ``401 {"message": "Token expired"}`` (the spec documents no 401), an unknown one 403; the
422 codes for a missing ``end_time``, a bad time or a span over 90 days; ``EXPORT`` gets 422
``no_tariff_connected``; whole intervals overlapping the window are returned, not clipped.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from ingestion.sandbox.server import SandboxRequest, SandboxResponse

MAX_SPAN = timedelta(days=90)
RATES_PREFIX = "/tariffs/rates/"


class App:
    name = "flatpeak"

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.history = sandbox.history
        self.clock: Callable[[], float] = time.monotonic  # tests may replace it to expire tokens
        self._tokens: dict[str, float] = {}  # bearer token -> time issued (self.clock)

    # -- errors ---------------------------------------------------------------------------
    def error(
        self, status: int, message: str, code: str | None = None, context: str = "api.tariff_rates"
    ) -> SandboxResponse:
        """Flatpeak's error object (errors guide): 4xx invalid_request, 429 rate_limit, 5xx api_error."""
        if status == 429:
            kind, default_code = "rate_limit", "too_many_requests"
        elif status >= 500:
            kind, default_code = "api_error", "internal_error"
        else:
            kind, default_code = "invalid_request", "invalid_request"
        return SandboxResponse.json(
            status,
            {
                "object": "error",
                "live_mode": False,
                "context": context,
                "type": kind,
                "code": code or default_code,
                "message": message,
                "time_created": _utc_now(),
            },
        )

    @staticmethod
    def _message(status: int, message: str) -> SandboxResponse:
        """The spec's plain bodies for 401/403/404."""
        return SandboxResponse.json(status, {"message": message})

    # -- dispatch -------------------------------------------------------------------------
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if request.method != "GET":
            return self._message(404, "Not Found")
        if request.path == "/login":
            return self._login(request)
        if request.path.startswith(RATES_PREFIX):
            return self._rates(request, request.path[len(RATES_PREFIX) :])
        return self._message(404, "Not Found")

    def _login(self, request: SandboxRequest) -> SandboxResponse:
        expected = self.sandbox.config.credentials.get("flatpeak", {})
        given = _basic_credentials(request.headers.get("authorization", ""))
        if not expected or given != (expected.get("account_id"), expected.get("api_key")):
            return self._message(403, "Bad credentials")
        token = secrets.token_urlsafe(32)
        self._tokens[token] = self.clock()
        return SandboxResponse.json(
            200, {"bearer_token": token, "expires_in": int(self.sandbox.config.token_ttl_s), "live_mode": False}
        )

    def _check_token(self, request: SandboxRequest) -> SandboxResponse | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        issued = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if issued is None:
            return self._message(403, "Bad credentials")
        if self.clock() - issued >= self.sandbox.config.token_ttl_s:
            return self._message(401, "Token expired")
        return None

    def _rates(self, request: SandboxRequest, location_id: str) -> SandboxResponse:
        refused = self._check_token(request)
        if refused is not None:
            return refused
        region = self.history.regions_by_id("flatpeak").get(location_id, "")  # the catalogue's ids.flatpeak
        if not region:
            return self._message(404, "Not Found")
        if "end_time" not in request.query:
            return self.error(422, "end_time is required", code="end_time_missing")
        try:
            end = _parse_time(request.query["end_time"])
            start = _parse_time(request.query["start_time"]) if request.query.get("start_time") else datetime.now(UTC)
        except ValueError as exc:
            return self.error(422, str(exc), code="invalid_time_format")
        if end <= start:
            return self.error(422, "end_time must be after start_time", code="invalid_time_range")
        if end - start > MAX_SPAN:
            return self.error(
                422, "The maximum period between start_time and end_time is 90 days", code="invalid_time_range"
            )
        direction = request.query.get("direction", "IMPORT").upper()
        if direction == "EXPORT":
            return self.error(422, "No export tariff is connected to this location", code="no_tariff_connected")
        if direction != "IMPORT":
            return self.error(422, "direction must be IMPORT or EXPORT", code="invalid_direction")
        # write times in the end_time's offset, as the real API does ("end_time takes precedence")
        out_tz = end.tzinfo or UTC
        return SandboxResponse.json(
            200,
            {
                "id": "rts_" + secrets.token_hex(12),
                "object": "tariff_rate",
                "live_mode": False,
                "location_id": location_id,
                "location_timezone": self.history.timezone(region),
                "currency_code": self.history.currency(region),
                "direction": direction,
                "last_updated": _format(datetime.now(UTC).replace(microsecond=0, second=0, minute=0), out_tz),
                "next_update": _format(
                    datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(hours=1), out_tz
                ),
                "request": {
                    "include_tariff": request.query.get("include_tariff", "true").lower() != "false",
                    "include_carbon": request.query.get("include_carbon", "false").lower() == "true",
                    "direction": direction,
                    "start_time": request.query.get("start_time") or _format(start, out_tz),
                    "end_time": request.query["end_time"],
                },
                "data": self._intervals(region, start, end, out_tz),
                "time_created": _utc_now(),
                "account_id": self.sandbox.config.credentials.get("flatpeak", {}).get("account_id", "acc_sandbox"),
            },
        )

    def _intervals(self, region: str, start: datetime, end: datetime, out_tz: Any) -> list[dict[str, Any]]:
        """Whole hours overlapping [start, end), equal consecutive hours merged into one interval."""
        lo = pd.Timestamp(start).tz_convert("UTC").floor("h")
        hi = pd.Timestamp(end).tz_convert("UTC").ceil("h")
        hourly = self.history.hourly(region, lo, hi)
        intervals: list[dict[str, Any]] = []
        run: list[Any] | None = None  # [start, end, rate] of the interval being built
        for ts, per_mwh in hourly.items():
            if not math.isfinite(float(per_mwh)):  # a gap in the history ends the interval
                run = None
                continue
            rate = float(per_mwh) / 1000.0  # per MWh -> per kWh, large currency units
            if run is not None and run[1] == ts and run[2] == rate:
                run[1] = ts + pd.Timedelta(hours=1)
                intervals[-1] = _interval(run[0], run[1], run[2], out_tz)
                continue
            run = [ts, ts + pd.Timedelta(hours=1), rate]
            intervals.append(_interval(run[0], run[1], run[2], out_tz))
        return intervals


def _interval(start: pd.Timestamp, end: pd.Timestamp, rate: float, out_tz: Any) -> dict[str, Any]:
    return {
        "valid_from": _format(start.to_pydatetime(), out_tz),
        "valid_to": _format(end.to_pydatetime(), out_tz),
        "tariff": {"rate": rate, "confidence": 1},
    }


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time, e.g. 2023-06-15T09:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time offset; use Z or e.g. +01:00")
    return moment


def _format(moment: datetime, tz: Any) -> str:
    local = moment.astimezone(tz)
    text = local.replace(tzinfo=None).isoformat(timespec="seconds")
    offset = local.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return text + "Z"
    sign = "+" if offset >= timedelta(0) else "-"
    minutes = int(abs(offset).total_seconds() // 60)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
