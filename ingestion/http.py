"""One HTTP path for every pricing-API client: budgets, retries, rate limit, health rows, archives.

``HttpTransport.fetch`` makes a request and parses the answer with the client's parse
function, and for every HTTP attempt it records one ``ApiCall`` (the ``api_health`` row):

- connection errors, timeouts and 5xx are retried with exponential backoff and full jitter;
- 429 honours ``Retry-After`` (seconds or an HTTP date) up to ``max_retry_after_s``; a longer
  one ends the attempts at once;
- 401/403 fail at once with an ``AuthError`` naming the Airflow connection to fix;
- budgets (``RetryPolicy``): connect and read timeouts, a total time per request (the body is
  streamed and cut at the deadline, so a trickling server cannot hold a task), a total time per
  provider and cycle that no retry may overrun, and size caps on the body as sent and after
  decompression (gzip and deflate are decoded here, under the cap; other encodings are refused);
- a body that is cut short, too large, too slow or does not parse, for whatever reason (the
  parser's own ``PayloadError`` or any exception it raises, recursion limit included), is
  archived (under ``<EOPT_HOME>/raw/<source>/``) and raised as ``PayloadError`` carrying that
  path, so the ingestion can quarantine it; nothing of it is half-used;
- a base URL that cannot be requested (a bad port, a ``file://`` scheme) and redirect loops are
  recorded failures, not retried; a provider with credentials is never followed to another
  origin (its key or token would go with the request);
- credentials are registered with ``core.redaction``: every error text, health row, archive and
  log line has them masked;
- a client-side limiter keeps to the provider's documented rate (calls per 60-second window).
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import HTTPError as TransferError
from urllib3.exceptions import ReadTimeoutError

from core.redaction import install_log_redaction, redact, redact_bytes, register_basic_credentials
from storage.payload_archive import archive_payload

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how much one provider may take: the budgets of its requests, retries and bodies.

    ``provider_budget_s`` bounds everything one provider does in a cycle (every region, request,
    retry and wait); ``request_timeout_s`` bounds one request from connecting to its last body
    byte; ``read_timeout_s`` bounds each wait for the next bytes. No retry starts that could not
    finish within the provider's budget, and a ``Retry-After`` beyond ``max_retry_after_s``
    ends the attempts at once rather than waiting.
    """

    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 60.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    request_timeout_s: float = 60.0
    provider_budget_s: float = 180.0
    max_body_bytes: int = 16 * 2**20  # as sent (compressed)
    max_decoded_bytes: int = 64 * 2**20  # after decompression
    max_redirects: int = 5

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
    # region -> IANA zone of its local delivery days, from the settings' region catalogue
    timezones: dict[str, str] = field(default_factory=dict)
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

    def wait(self, within: float | None = None) -> bool:
        """Wait for room in the window; False, without waiting, when that would take over ``within`` seconds."""
        if self.window is None:
            return True
        while (delay := self.window.try_acquire()) > 0:
            if within is not None and delay > within:
                return False
            self._sleep(delay)
        return True


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


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
READ_CHUNK = 64 * 1024
ACCEPT_ENCODING = "gzip, deflate"  # what ``decode_body`` reads; anything else is refused


class BodyRefused(Exception):
    """A body that cannot be taken as sent: cut short, too large, too slow or in an unreadable encoding.

    ``received`` holds the bytes as they came over the wire (at most the size cap), for the archive.
    """

    def __init__(self, reason: str, received: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.received = received


class Unreachable(Exception):
    """No answer to take: the request could not be sent, or its redirects lead nowhere usable."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class GiveUp(Exception):
    """No further attempt fits (budget spent, Retry-After beyond the cap)."""


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or ""), port


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """The body under its ``Content-Encoding`` (identity, gzip, deflate), refused past ``limit`` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        # RFC 9110 deflate is zlib-wrapped; some servers send a bare deflate stream
        decoder = zlib.decompressobj() if raw[:1] == b"\x78" else zlib.decompressobj(-zlib.MAX_WBITS)
    else:
        raise BodyRefused(f"unreadable content encoding {encoding!r} (asked for {ACCEPT_ENCODING})", raw)
    out = bytearray()
    data = raw
    try:
        while data:
            out += decoder.decompress(data, limit - len(out) + 1)
            if len(out) > limit:
                raise BodyRefused(
                    f"body inflates past the {limit} byte cap on decoded answers ({len(raw)} bytes as sent, "
                    f"{encoding}); refused",
                    raw,
                )
            data = decoder.unconsumed_tail
        out += decoder.flush()
    except zlib.error as exc:
        raise BodyRefused(f"corrupt {encoding} body ({exc}); {len(raw)} bytes as sent", raw) from None
    if not decoder.eof:
        raise BodyRefused(f"{encoding} body ends before its stream does (cut short); {len(raw)} bytes as sent", raw)
    if len(out) > limit:
        raise BodyRefused(f"body inflates past the {limit} byte cap on decoded answers; refused", raw)
    return bytes(out)


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.archive_dir = Path(archive_dir)
        self.calls: list[ApiCall] = []
        self._record = record
        self.session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not a secret
        self.limiter = RateLimiter(config.requests_per_minute, sleep=sleep)
        self.deadline = clock() + config.retry.provider_budget_s
        self.credentialed = bool(config.api_key or config.login)
        register_basic_credentials(config.login, config.api_key)
        install_log_redaction()

    def budget_left(self) -> float:
        return self.deadline - self._clock()

    # -- recording -------------------------------------------------------------------------
    def _note(
        self, endpoint: str, status: str, http_status: int | None, started: float, records: int, error: str | None
    ) -> None:
        call = ApiCall(
            source=self.config.source,
            endpoint=redact(endpoint),
            status=status,
            http_status=http_status,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            records=records,
            error=None if error is None else redact(error),
            called_at=datetime.now(UTC),
        )
        self.calls.append(call)
        if self._record is not None:
            try:
                self._record(call)
            except Exception as exc:  # health bookkeeping must never break ingestion
                log.warning("could not record API health for %s: %s", self.config.source, exc)

    def record_failure(self, endpoint: str, reason: str) -> None:
        """An ``api_health`` error row for a failure that happened outside an HTTP call."""
        self._note(endpoint, "error", None, time.perf_counter(), 0, reason)

    def archive(self, body: bytes, endpoint: str, note: str = "") -> str:
        """Keep a payload (credentials masked) under ``<archive_dir>/<source>/``, one file per distinct
        body (named by its SHA-256): a repeated payload adds no file. Returns its path."""
        return archive_payload(self.archive_dir, self.config.source, redact_bytes(body), redact(endpoint), redact(note))

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
        is returned and the call is recorded as ``no_data``. Whatever else goes wrong ends in a
        ``ProviderError`` (``PayloadError`` with the archived body when there was one) and an
        ``api_health`` error row; every text of it has the credentials masked.
        """
        source = self.config.source
        url = self.config.base_url.rstrip("/") + "/" + path.lstrip("/")
        endpoint = endpoint or path
        headers = {"Accept-Encoding": ACCEPT_ENCODING, **(kwargs.pop("headers", None) or {})}
        last_problem = "no attempt made"
        attempt = 0
        try:
            while True:
                attempt += 1
                self._check_budget(attempt, last_problem)
                if not self.limiter.wait(within=self.budget_left()):
                    raise GiveUp(
                        f"the provider's rate limit ({self.config.requests_per_minute:g} calls a minute) would hold "
                        f"the next call past the provider's time budget of {self.config.retry.provider_budget_s:g}s "
                        f"(EOPT_PROVIDER_BUDGET_S)"
                    )
                started = time.perf_counter()
                try:
                    response, body = self._exchange(method, url, headers, kwargs)
                except Unreachable as exc:
                    last_problem = exc.reason
                    self._note(endpoint, "error", None, started, 0, last_problem)
                    if not exc.retry:
                        raise ProviderError(source, redact(last_problem)) from None
                    self._retry_wait(attempt, None, last_problem)
                    continue
                except BodyRefused as exc:
                    self._note(endpoint, "error", None, started, 0, f"body refused: {exc.reason}")
                    if not exc.received:  # refused before a byte of it was read: nothing to keep
                        raise PayloadError(source, redact(f"body refused: {exc.reason}")) from None
                    ref = self.archive(exc.received, endpoint, exc.reason)
                    raise PayloadError(
                        source,
                        redact(f"body refused: {exc.reason} (what arrived is archived at {ref})"),
                        payload_ref=ref,
                    ) from None
                status = response.status_code
                if status in (401, 403):
                    detail = _short(response.text)
                    self._note(endpoint, "error", status, started, 0, f"HTTP {status}: {detail}")
                    raise AuthError(
                        source,
                        redact(
                            f"credentials refused (HTTP {status}: {detail}); fix the Airflow connection "
                            f"'{self.config.connection_id}' (or the matching EOPT_* setting) and rerun"
                        ),
                        http_status=status,
                    )
                if status == 429:
                    header = response.headers.get("Retry-After")
                    last_problem = f"HTTP 429 rate limited (Retry-After: {header or 'none'})"
                    self._note(endpoint, "error", status, started, 0, last_problem)
                    self._retry_wait(attempt, parse_retry_after(header), last_problem)
                    continue
                if status >= 500:
                    last_problem = f"HTTP {status}: {_short(response.text)}"
                    self._note(endpoint, "error", status, started, 0, last_problem)
                    self._retry_wait(attempt, None, last_problem)
                    continue
                return self._parse(response, body, parse, count, no_data, endpoint, started)
        except GiveUp as exc:
            message = redact(str(exc))
            if last_problem == "no attempt made":  # no call was recorded for this request: say why
                self._note(endpoint, "error", None, time.perf_counter(), 0, message)
            if last_problem.startswith("HTTP 429"):
                raise RateLimited(source, message, http_status=429) from None
            raise ProviderError(source, message) from None

    def _parse(
        self,
        response: requests.Response,
        body: bytes,
        parse: Callable[[requests.Response], T],
        count: Callable[[T], int],
        no_data: Callable[[], T] | None,
        endpoint: str,
        started: float,
    ) -> T:
        source, status = self.config.source, response.status_code
        try:
            parsed = parse(response)
            records = count(parsed)
        except NoData as exc:
            self._note(endpoint, "no_data", status, started, 0, str(exc) or None)
            if no_data is None:
                raise
            return no_data()
        except PayloadError as exc:
            problem = _strip_source(exc, source)
        except ProviderError as exc:
            self._note(endpoint, "error", status, started, 0, str(exc))
            if redact(str(exc)) == str(exc):
                raise
            raise type(exc)(source, redact(_strip_source(exc, source)), http_status=exc.http_status) from None
        except RecursionError:
            problem = "the document nests deeper than the parser's recursion limit; not a provider answer"
        except Exception as exc:  # the boundary: a surprise in a parser is still this payload's fault
            problem = f"{type(exc).__name__} while reading the answer: {_short(str(exc))}"
        else:
            self._note(endpoint, "ok" if records else "no_data", status, started, records, None)
            return parsed
        ref = self.archive(body, endpoint, problem)
        self._note(endpoint, "error", status, started, 0, f"unparseable payload: {problem}")
        raise PayloadError(
            source, redact(f"{problem} (raw body archived at {ref})"), payload_ref=ref, http_status=status
        )

    # -- one exchange: the request, its redirects, its body -------------------------------
    def _exchange(
        self, method: str, url: str, headers: dict[str, str], kwargs: dict[str, Any]
    ) -> tuple[requests.Response, bytes]:
        """One request and its whole body within the request's time budget; redirects followed
        by hand (a credentialed provider is never followed to another origin)."""
        policy = self.config.retry
        deadline = min(self._clock() + policy.request_timeout_s, self.deadline)
        first_origin = origin(url)
        params = kwargs.get("params")
        extra = {k: v for k, v in kwargs.items() if k != "params"}
        for _hop in range(policy.max_redirects + 1):
            left = deadline - self._clock()
            if left <= 0:
                raise Unreachable(
                    f"timed out: no answer within the request budget of {policy.request_timeout_s:g}s", retry=True
                )
            timeout = (min(policy.connect_timeout_s, left), min(policy.read_timeout_s, left))
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                    **extra,
                )
            except (
                requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema,
            ) as exc:
                raise Unreachable(
                    f"base URL {self.config.base_url!r} cannot be requested ({type(exc).__name__}: {exc}); fix the "
                    f"Airflow connection '{self.config.connection_id}' or EOPT_{self.config.source.upper()}_URL",
                    retry=False,
                ) from None
            except requests.Timeout as exc:
                raise Unreachable(f"timed out: {type(exc).__name__}", retry=True) from None
            except requests.ConnectionError as exc:
                raise Unreachable(f"connection failed: {type(exc).__name__}", retry=True) from None
            except (requests.RequestException, ValueError, OSError) as exc:
                raise Unreachable(f"request failed: {type(exc).__name__}: {_short(str(exc))}", retry=False) from None
            if response.status_code in REDIRECT_STATUSES and response.headers.get("Location"):
                target = urljoin(response.url, response.headers["Location"])
                _close(response)
                if origin(target) != first_origin and self.credentialed:
                    raise Unreachable(
                        f"HTTP {response.status_code} redirect to another origin ({_origin_text(target)}) refused: "
                        f"credentials are never sent to another origin; if the provider moved, point the Airflow "
                        f"connection '{self.config.connection_id}' or EOPT_{self.config.source.upper()}_URL at it",
                        retry=False,
                    )
                url, params = target, None  # the Location is the whole next URL
                if response.status_code == 303:
                    method = "GET"
                continue
            try:
                return response, self._read_body(response, deadline)
            finally:
                _close(response)
        raise Unreachable(
            f"redirect loop: more than {policy.max_redirects} redirects (last to {_origin_text(url)}); check the base URL",
            retry=False,
        )

    def _read_body(self, response: requests.Response, deadline: float) -> bytes:
        """The body, streamed: refused past the size caps or the request's deadline, and when cut short."""
        policy = self.config.retry
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > policy.max_body_bytes:
            raise BodyRefused(f"Content-Length {declared} is over the {policy.max_body_bytes} byte cap on answers")
        raw = response.raw
        if raw is None:  # an adapter that answered with its body already in hand
            return response.content
        received = bytearray()
        while True:
            left = deadline - self._clock()
            if left <= 0:
                raise BodyRefused(
                    f"body still arriving after the request budget of {policy.request_timeout_s:g}s; cut at "
                    f"{len(received)} bytes",
                    bytes(received),
                )
            sock = getattr(getattr(raw, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(min(policy.read_timeout_s, left))
            try:
                chunk = raw.read1(READ_CHUNK, decode_content=False)
            except (ReadTimeoutError, TimeoutError, requests.Timeout):
                if deadline - self._clock() <= 0:
                    continue  # reported as over the request budget above
                raise BodyRefused(
                    f"body stalled: nothing for {policy.read_timeout_s:g}s after {len(received)} bytes", bytes(received)
                ) from None
            except (TransferError, OSError) as exc:
                expected = f" of the {declared} announced" if declared else ""
                raise BodyRefused(
                    f"body cut short: {len(received)} bytes{expected} arrived before the connection broke "
                    f"({type(exc).__name__})",
                    bytes(received),
                ) from None
            if not chunk:
                break
            received += chunk
            if len(received) > policy.max_body_bytes:
                raise BodyRefused(
                    f"body passed the {policy.max_body_bytes} byte cap on answers; cut there",
                    bytes(received[: policy.max_body_bytes]),
                )
        body = decode_body(bytes(received), response.headers.get("Content-Encoding", ""), policy.max_decoded_bytes)
        # the parsers read ``response.content`` / ``.text``: hand them the decoded body
        response._content = body
        response._content_consumed = True
        return body

    # -- retries within the budget ----------------------------------------------------------
    def _check_budget(self, attempt: int, last_problem: str) -> None:
        if attempt > self.config.retry.max_attempts:
            raise GiveUp(f"gave up after {self.config.retry.max_attempts} attempts: {last_problem}")
        if self.budget_left() <= 0:
            done = f"after {attempt - 1} attempt(s): {last_problem}" if attempt > 1 else "before any attempt"
            raise GiveUp(
                f"the provider's time budget of {self.config.retry.provider_budget_s:g}s "
                f"(EOPT_PROVIDER_BUDGET_S) is spent; gave up {done}"
            )

    def _retry_wait(self, attempt: int, retry_after: float | None, problem: str) -> None:
        """Sleep before the next attempt, or raise ``GiveUp`` when none should or could follow."""
        policy = self.config.retry
        if attempt >= policy.max_attempts:
            if problem.startswith("HTTP 429"):
                raise GiveUp(f"still rate limited after {policy.max_attempts} attempts ({problem})")
            raise GiveUp(f"gave up after {policy.max_attempts} attempts: {problem}")
        if retry_after is not None and retry_after > policy.max_retry_after_s:
            raise GiveUp(
                f"gave up after {attempt} attempt(s): {problem}; Retry-After {retry_after:g}s is beyond the "
                f"{policy.max_retry_after_s:g}s the ingestion waits (EOPT_PROVIDER_MAX_RETRY_AFTER_S)"
            )
        wait = retry_after if retry_after is not None else policy.backoff_s(attempt, self._rng)
        if wait + policy.connect_timeout_s > self.budget_left():
            raise GiveUp(
                f"gave up after {attempt} attempt(s): {problem}; a retry in {wait:.1f}s would not finish within the "
                f"provider's time budget of {policy.provider_budget_s:g}s (EOPT_PROVIDER_BUDGET_S)"
            )
        log.warning("%s: %s; retry %d/%d in %.2fs", self.config.source, problem, attempt, policy.max_attempts - 1, wait)
        self._sleep(wait)


def _close(response: requests.Response) -> None:
    """Release the connection (a body left unread closes it rather than reusing it)."""
    if response.raw is not None:
        response.close()


def _origin_text(url: str) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{host}" + (f":{port}" if port else "")


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
