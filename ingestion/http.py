"""One HTTP path for every pricing-API client: timeouts, retries, rate limit, health rows, archives.

``HttpTransport.fetch`` makes a request and parses the answer with the client's parse
function, and for every HTTP attempt it records one ``ApiCall`` (the ``api_health`` row):

- connection errors, timeouts and 5xx are retried with exponential backoff and full jitter;
- 429 honours ``Retry-After`` (seconds or an HTTP date) and otherwise backs off the same way;
- 401/403 fail at once with an ``AuthError`` naming the Airflow connection to fix;
- a body that does not parse is archived (raw bytes under ``<EOPT_HOME>/raw/<source>/``) and
  raised as ``PayloadError`` carrying that path, so the ingestion can quarantine it; nothing of
  it is half-used;
- a client-side limiter keeps to the provider's documented rate (calls per 60-second window).
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import requests

from storage.payload_archive import archive_payload

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return rng.uniform(0, ceiling)


@dataclass(frozen=True)
class ProviderConfig:
    """Everything a client needs to reach one provider; built from settings or an Airflow connection."""

    source: str  # flatpeak | nrel | openei | iea | entsoe
    base_url: str
    connection_id: str  # the Airflow connection that configures it, named in auth errors
    api_key: str | None = None  # never logged
    login: str | None = None  # e.g. Flatpeak account id
    regions: dict[str, Any] = field(default_factory=dict)  # region -> provider-specific locator
    requests_per_minute: float = 60.0
    retry: RetryPolicy = RetryPolicy()
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"ProviderConfig(source={self.source!r}, base_url={self.base_url!r}, regions={sorted(self.regions)})"


@dataclass(frozen=True)
class ApiCall:
    """One HTTP call to a provider: a row of ``api_health``."""

    source: str
    endpoint: str
    status: str  # ok | error | no_data
    http_status: int | None
    latency_ms: float
    records: int
    error: str | None
    called_at: datetime


class ProviderError(RuntimeError):
    def __init__(self, source: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.http_status = http_status


class AuthError(ProviderError):
    """Credentials refused (401/403): retrying cannot help; the connection must be fixed."""


class RateLimited(ProviderError):
    """Still rate-limited (429) after every retry."""


class PayloadError(ProviderError):
    """The provider answered with a body the client does not recognise; archived at ``payload_ref``."""

    def __init__(self, source: str, message: str, *, payload_ref: str | None = None, http_status: int | None = None):
        super().__init__(source, message, http_status=http_status)
        self.payload_ref = payload_ref


class NoData(Exception):
    """Raised by a parse function when the provider says, in its own format, that there is no data."""


class SlidingWindow:
    """At most ``capacity`` events in any ``window_s`` seconds (the providers' rate-limit terms)."""

    def __init__(self, capacity: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.window_s = window_s
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock

    def try_acquire(self) -> float:
        """Count one event if the window has room and return 0; otherwise the seconds until it has."""
        with self._lock:
            now = self._clock()
            while self._starts and now - self._starts[0] >= self.window_s:
                self._starts.popleft()
            if len(self._starts) < self.capacity:
                self._starts.append(now)
                return 0.0
            return self.window_s - (now - self._starts[0])

    @property
    def remaining(self) -> int:
        with self._lock:
            return self.capacity - len(self._starts)


class RateLimiter:
    """At most ``per_minute`` calls start in any 60-second window (the providers' own terms).

    Calls within the limit go at once; the next one waits until the oldest leaves the window.
    It limits one transport (one task); Airflow's ``pricing_api_pool`` bounds the tasks.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic, sleep=time.sleep) -> None:
        self.window = SlidingWindow(max(1, int(per_minute)), 60.0, clock) if per_minute > 0 else None
        self._sleep = sleep

    def wait(self) -> None:
        if self.window is None:
            return
        while (delay := self.window.try_acquire()) > 0:
            self._sleep(delay)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HttpTransport:
    def __init__(
        self,
        config: ProviderConfig,
        *,
        archive_dir: Path,
        record: Callable[[ApiCall], object] | None = None,  # its result, if any, is ignored
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.archive_dir = Path(archive_dir)
        self.calls: list[ApiCall] = []
        self._record = record
        self.session = session or requests.Session()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not a secret
        self.limiter = RateLimiter(config.requests_per_minute, sleep=sleep)

    # -- recording -------------------------------------------------------------------------
    def _note(
        self, endpoint: str, status: str, http_status: int | None, started: float, records: int, error: str | None
    ) -> None:
        call = ApiCall(
            source=self.config.source,
            endpoint=endpoint,
            status=status,
            http_status=http_status,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            records=records,
            error=error,
            called_at=datetime.now(UTC),
        )
        self.calls.append(call)
        if self._record is not None:
            try:
                self._record(call)
            except Exception as exc:  # health bookkeeping must never break ingestion
                log.warning("could not record API health for %s: %s", self.config.source, exc)

    def archive(self, body: bytes, endpoint: str) -> str:
        """One file per distinct body (named by its SHA-256): a repeated payload adds no file."""
        return archive_payload(self.archive_dir, self.config.source, body, endpoint)

    # -- the one request path -------------------------------------------------------------
    def fetch(
        self,
        method: str,
        path: str,
        parse: Callable[[requests.Response], T],
        *,
        count: Callable[[T], int] = len,  # type: ignore[assignment]
        no_data: Callable[[], T] | None = None,
        endpoint: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Request ``base_url + path`` and return ``parse(response)``; see the module docstring.

        ``endpoint`` is the name recorded in ``api_health`` (the path without ids by default).
        ``parse`` raises ``NoData`` when the provider says there is no data; then ``no_data()``
        is returned and the call is recorded as ``no_data``.
        """
        source = self.config.source
        url = self.config.base_url.rstrip("/") + "/" + path.lstrip("/")
        endpoint = endpoint or path
        policy = self.config.retry
        kwargs.setdefault("timeout", (policy.connect_timeout_s, policy.read_timeout_s))
        last_problem = "no attempt made"
        for attempt in range(1, policy.max_attempts + 1):
            self.limiter.wait()
            started = time.perf_counter()
            try:
                response = self.session.request(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                last_problem = f"{kind}: {type(exc).__name__}"
                self._note(endpoint, "error", None, started, 0, last_problem)
                self._retry_wait(attempt, None, last_problem)
                continue
            status = response.status_code
            if status in (401, 403):
                detail = _short(response.text)
                self._note(endpoint, "error", status, started, 0, f"HTTP {status}: {detail}")
                raise AuthError(
                    source,
                    f"credentials refused (HTTP {status}: {detail}); fix the Airflow connection "
                    f"'{self.config.connection_id}' (or the matching EOPT_* setting) and rerun",
                    http_status=status,
                )
            if status == 429:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                last_problem = f"HTTP 429 rate limited (Retry-After: {response.headers.get('Retry-After') or 'none'})"
                self._note(endpoint, "error", status, started, 0, last_problem)
                self._retry_wait(attempt, wait, last_problem)
                continue
            if status >= 500:
                last_problem = f"HTTP {status}: {_short(response.text)}"
                self._note(endpoint, "error", status, started, 0, last_problem)
                self._retry_wait(attempt, None, last_problem)
                continue
            try:
                parsed = parse(response)
            except NoData as exc:
                self._note(endpoint, "no_data", status, started, 0, str(exc) or None)
                if no_data is None:
                    raise
                return no_data()
            except PayloadError as exc:
                ref = self.archive(response.content, endpoint)
                self._note(endpoint, "error", status, started, 0, f"unparseable payload: {exc}")
                raise PayloadError(
                    source,
                    f"{_strip_source(exc, source)} (raw body archived at {ref})",
                    payload_ref=ref,
                    http_status=status,
                ) from exc
            except ProviderError as exc:
                self._note(endpoint, "error", status, started, 0, str(exc))
                raise
            records = count(parsed)
            self._note(endpoint, "ok" if records else "no_data", status, started, records, None)
            return parsed
        if last_problem.startswith("HTTP 429"):
            raise RateLimited(
                source, f"still rate limited after {policy.max_attempts} attempts ({last_problem})", http_status=429
            )
        raise ProviderError(source, f"gave up after {policy.max_attempts} attempts: {last_problem}")

    def _retry_wait(self, attempt: int, retry_after: float | None, problem: str) -> None:
        policy = self.config.retry
        if attempt >= policy.max_attempts:
            return
        wait = (
            min(retry_after, policy.max_retry_after_s)
            if retry_after is not None
            else policy.backoff_s(attempt, self._rng)
        )
        log.warning("%s: %s; retry %d/%d in %.2fs", self.config.source, problem, attempt, policy.max_attempts - 1, wait)
        self._sleep(wait)


def _short(text: str, limit: int = 200) -> str:
    """A one-line excerpt of an error body; HTML pages are reduced to their visible text."""
    if re.search(r"<(html|body|!DOCTYPE)", text, re.I):
        text = re.sub(r"<head.*?</head>|<[^>]+>", " ", text, flags=re.I | re.S)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _strip_source(exc: ProviderError, source: str) -> str:
    message = str(exc)
    prefix = f"{source}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
