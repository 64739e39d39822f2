"""The sandbox HTTP server: one port, one path prefix per provider, faults on demand.

| prefix | provider | real host it stands in for |
|---|---|---|
| ``/flatpeak`` | Flatpeak | ``https://api.flatpeak.com`` |
| ``/nrel`` | NREL/NLR Utility Rates v3 | ``https://developer.nlr.gov`` |
| ``/openei`` | OpenEI URDB v7 | ``https://api.openei.org`` |
| ``/iea`` | IEA Real-Time Electricity Tracker backend | ``https://api.iea.org`` |
| ``/entsoe`` | ENTSO-E Transparency Platform | ``https://web-api.tp.entsoe.eu`` |

So a client pointed at ``http://127.0.0.1:PORT/entsoe`` instead of its real host speaks to the
sandbox unchanged. Each provider app checks its provider's real auth and answers in its real
formats (see ``ingestion/sandbox/<provider>.py``).

Faults, per provider, from the config (``--fault entsoe=500``), from ``POST /_sandbox/faults``
(``{"entsoe": {"kind": "500", "times": 3}}``; ``{}`` clears), or per request with the header
``X-Sandbox-Fault: KIND``. Kinds: ``429`` (with ``Retry-After: 1``), ``429-bare`` (no
``Retry-After``), ``500``, ``slow`` (answers after ``slow_s`` seconds), ``malformed`` (the real
answer cut in half). The per-provider rate limit answers 429 without ``Retry-After``, as the
real providers do. ``GET /_sandbox/stats`` counts requests per provider.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

from core.regions import Catalogue
from ingestion.http import SlidingWindow
from ingestion.sandbox.credentials import DEFAULT_CREDENTIALS
from ingestion.sandbox.replay import ReplayHistory

log = logging.getLogger(__name__)

FAULT_KINDS = ("429", "429-bare", "500", "slow", "malformed")


@dataclass
class Fault:
    kind: str
    times: int | None = None  # None: every request until cleared
    slow_s: float = 3.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown sandbox fault {self.kind!r}; use one of {', '.join(FAULT_KINDS)}")


@dataclass
class SandboxConfig:
    data_dir: Path
    catalogue: Catalogue | None = None  # the regions served (None: this process's region catalogue)
    credentials: dict[str, dict[str, str]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_CREDENTIALS.items()}
    )
    requests_per_minute: dict[str, int] = field(
        default_factory=lambda: {"flatpeak": 600, "nrel": 600, "openei": 600, "iea": 600, "entsoe": 400}
    )
    faults: dict[str, Fault] = field(default_factory=dict)
    token_ttl_s: int = 3600


@dataclass
class SandboxRequest:
    method: str
    path: str  # below the provider prefix, e.g. "/tariffs/rates/loc_NP"
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class SandboxResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document: object, **headers: str) -> SandboxResponse:
        return cls(status, json.dumps(document).encode(), "application/json", dict(headers))


class ProviderApp(Protocol):
    name: str

    def handle(self, request: SandboxRequest) -> SandboxResponse: ...

    def error(self, status: int, message: str) -> SandboxResponse:
        """An error answer in the provider's own format."""
        ...


class Sandbox:
    def __init__(self, config: SandboxConfig, apps: dict[str, ProviderApp] | None = None) -> None:
        self.config = config
        self.history = ReplayHistory(config.data_dir, config.catalogue)
        self.apps = apps if apps is not None else default_apps(self)
        self._lock = threading.Lock()
        self._windows: dict[str, SlidingWindow] = {}
        self.stats: dict[str, int] = defaultdict(int)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- faults ---------------------------------------------------------------------------
    def set_faults(self, faults: dict[str, Fault]) -> None:
        with self._lock:
            self.config.faults = dict(faults)

    def _take_fault(self, provider: str, header: str | None) -> Fault | None:
        if header:
            return Fault(header.strip())
        with self._lock:
            fault = self.config.faults.get(provider)
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.config.faults[provider]
            return fault

    def _over_rate_limit(self, provider: str) -> bool:
        limit = self.config.requests_per_minute.get(provider)
        if not limit:
            return False
        with self._lock:
            window = self._windows.setdefault(provider, SlidingWindow(limit, 60.0))
        return window.try_acquire() > 0

    # -- dispatch -------------------------------------------------------------------------
    def dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> SandboxResponse:
        parts = urlsplit(raw_path)
        segments = parts.path.split("/", 2)
        provider = segments[1] if len(segments) > 1 else ""
        rest = "/" + (segments[2] if len(segments) > 2 else "")
        if provider == "_sandbox":
            return self._admin(method, rest, body)
        app = self.apps.get(provider)
        if app is None:
            return SandboxResponse.json(404, {"message": f"no provider at /{provider}; try one of {sorted(self.apps)}"})
        with self._lock:
            self.stats[provider] += 1
        request = SandboxRequest(method, rest, dict(parse_qsl(parts.query, keep_blank_values=True)), headers, body)
        try:
            fault = self._take_fault(provider, headers.get("x-sandbox-fault"))
        except ValueError as exc:
            return SandboxResponse.json(400, {"message": str(exc)})
        if fault is not None and fault.kind in ("429", "429-bare"):
            response = app.error(429, "You have exceeded your rate limit. Try again later.")
            if fault.kind == "429":
                response.headers["Retry-After"] = "1"
            return response
        if fault is not None and fault.kind == "500":
            return app.error(500, "Internal Server Error")
        if self._over_rate_limit(provider):
            return app.error(429, "You have exceeded your rate limit. Try again later.")
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.slow_s)
        response = app.handle(request)
        if fault is not None and fault.kind == "malformed" and response.status == 200:
            response.body = response.body[: max(1, len(response.body) // 2)]
        return response

    def _admin(self, method: str, path: str, body: bytes) -> SandboxResponse:
        if path == "/stats" and method == "GET":
            with self._lock:
                return SandboxResponse.json(200, dict(self.stats))
        if path == "/faults" and method == "POST":
            try:
                spec = json.loads(body or b"{}")
                faults = {name: Fault(**value) for name, value in spec.items()}
            except (ValueError, TypeError) as exc:
                return SandboxResponse.json(400, {"message": f"bad fault spec: {exc}"})
            self.set_faults(faults)
            return SandboxResponse.json(200, {name: vars(f) for name, f in faults.items()})
        return SandboxResponse.json(404, {"message": "sandbox admin: GET /_sandbox/stats, POST /_sandbox/faults"})

    # -- serving --------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL (``http://host:port``)."""
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="eopt-sandbox", daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox not started: call start() first")
        host, port = self._server.server_address[:2]
        if not isinstance(host, str):  # typeshed allows bytes (AF_UNIX); a TCP server's host is a str
            host = host.decode()
        return f"http://{host}:{port}"

    def serve_forever(self, host: str, port: int) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        log.info("sandbox serving %s on %s", ", ".join(sorted(self.apps)), self.url)
        self._server.serve_forever()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                response = sandbox.dispatch(self.command, self.path, headers, body)
            except Exception as exc:  # a sandbox bug must show up as a 500, not a dropped socket
                log.exception("sandbox error on %s %s", self.command, self.path)
                response = SandboxResponse.json(500, {"message": f"sandbox error: {exc}"})
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                log.info("sandbox: the client of %s %s left before the answer (its timeout)", self.command, self.path)

        do_GET = do_POST = _serve

        def log_message(self, fmt: str, *args: object) -> None:
            log.debug("sandbox: " + fmt, *args)

    return Handler


def default_apps(sandbox: Sandbox) -> dict[str, ProviderApp]:
    """The provider apps that exist; each module adds itself here."""
    from ingestion.sandbox import registry

    return {name: factory(sandbox) for name, factory in registry.APP_FACTORIES.items()}
