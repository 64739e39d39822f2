"""`mlflow models serve` on loopback: start it on a free port, wait for ``/ping``, stop its whole
process group.

The scoring server is MLflow's own (``mlflow models serve -m <uri> --env-manager local``); this
module only owns its life cycle, for the end-to-end serving tests and ``benchmarks.serving``.
MLflow runs uvicorn as a child of the ``mlflow`` process, so the server is started in a new
session and stopped by signalling the group: SIGTERM first (uvicorn shuts down gracefully and can
outlive its parent), SIGKILL after the grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from core.settings import Settings, child_environment

MLFLOW = Path(sys.executable).parent / "mlflow"


class ModelServerError(RuntimeError):
    """The scoring server exited during start or did not answer ``/ping`` in time."""


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ModelServer:
    """A running ``mlflow models serve`` process: its base URL, process and log file."""

    model_uri: str
    url: str
    process: subprocess.Popen
    log: Path
    start_s: float

    def invoke(self, payload: dict | str, session: requests.Session | None = None) -> requests.Response:
        """``POST /invocations`` with a JSON body (a dict, or an already serialised string)."""
        post = (session or requests).post
        if isinstance(payload, str):
            return post(
                f"{self.url}/invocations", data=payload, timeout=60, headers={"Content-Type": "application/json"}
            )
        return post(f"{self.url}/invocations", json=payload, timeout=60)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, grace_s: float = 15) -> None:
        """SIGTERM to the server's process group, then wait until the whole group is gone (not only
        the parent); SIGKILL after ``grace_s``."""
        group = self.process.pid
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                self.process.poll()  # reap the parent, or it stays in the group as a zombie
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)


def start_model_server(
    model_uri: str, settings: Settings, log: Path, timeout_s: float = 120, cwd: Path | None = None
) -> ModelServer:
    """Start ``mlflow models serve -m model_uri`` on a free loopback port against ``settings``'
    tracking and registry stores, and return once ``/ping`` answers 200. Raises
    :class:`ModelServerError` with the end of the server's log if it exits or stays silent."""
    port = free_loopback_port()
    env = child_environment(
        MLFLOW.parent,
        MLFLOW_TRACKING_URI=settings.stores.mlflow_tracking_uri,
        MLFLOW_REGISTRY_URI=settings.stores.mlflow_registry_uri,
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own mlflow binary, arguments as a list
            [
                str(MLFLOW),
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )
    server = ModelServer(model_uri, f"http://127.0.0.1:{port}", process, log, 0.0)
    while True:
        if process.poll() is not None:
            server.stop()
            raise ModelServerError(
                f"mlflow models serve -m {model_uri} exited with {process.returncode}; its log {log} ends:\n"
                f"{server.log_tail()}"
            )
        try:
            if requests.get(f"{server.url}/ping", timeout=2).status_code == 200:
                server.start_s = time.perf_counter() - started
                return server
        except requests.ConnectionError:
            pass
        if time.perf_counter() - started > timeout_s:
            server.stop()
            raise ModelServerError(
                f"mlflow models serve -m {model_uri} did not answer /ping within {timeout_s:.0f} s; "
                f"its log {log} ends:\n{server.log_tail()}"
            )
        time.sleep(0.1)


@contextmanager
def served_model(model_uri: str, settings: Settings, log: Path, cwd: Path | None = None) -> Iterator[ModelServer]:
    """:func:`start_model_server` for the length of a ``with`` block; stopped on the way out."""
    server = start_model_server(model_uri, settings, log, cwd=cwd)
    try:
        yield server
    finally:
        server.stop()
