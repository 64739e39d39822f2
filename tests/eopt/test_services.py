"""`eopt up` / `eopt down`: real airflow standalone, mlflow server and sandbox on free loopback ports."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from core.settings import Settings
from eopt.services import ADMIN_USER, Ports, ServiceError, down, run_dir, up

pytestmark = pytest.mark.e2e

DAGS = {
    "electricity_price_ingestion",
    "model_retraining",
    "forecast_generation",
    "data_quality",
    "maintenance",
    "maintenance_weekly",
    "maintenance_monthly",
}


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def group_commands(pgid: int) -> list[str]:
    """The command lines of the processes in process group ``pgid``."""
    commands = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
                if os.getpgid(int(entry.name)) == pgid:
                    commands.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
    return commands


def request(url: str, data: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = None if data is None else json.dumps(data).encode()
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=20) as response:
        return json.loads(response.read())


def test_up_then_down__serves_airflow_with_the_printed_password_and_mlflow_then_leaves_nothing_running(tmp_path):
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    ports = Ports(*free_ports(3))
    lines: list[str] = []
    try:
        pids = up(settings, ports, lines.append, timeout_s=240)
        password = (settings.airflow.home / "admin-password").read_text().strip()
        assert any(f"password {password}" in line for line in lines)  # printed once, for the person at the terminal
        assert oct((settings.airflow.home / "admin-password").stat().st_mode)[-3:] == "600"

        health = request(f"http://127.0.0.1:{ports.airflow}/api/v2/monitor/health")
        assert health["metadatabase"]["status"] == "healthy"
        token = request(f"http://127.0.0.1:{ports.airflow}/auth/token", {"username": ADMIN_USER, "password": password})[
            "access_token"
        ]
        # the product's DAGs, parsed by the dag-processor: up returns when the API answers, and the
        # processor's first pass over the five files may still be under way
        deadline, parsed = time.monotonic() + 120, set()
        while not parsed >= DAGS and time.monotonic() < deadline:
            dags = request(f"http://127.0.0.1:{ports.airflow}/api/v2/dags?limit=50", token=token)
            parsed = {d["dag_id"] for d in dags["dags"]}
            time.sleep(0 if parsed >= DAGS else 2)
        assert parsed >= DAGS
        with pytest.raises(urllib.error.HTTPError):
            request(f"http://127.0.0.1:{ports.airflow}/auth/token", {"username": ADMIN_USER, "password": "wrong"})
        models = request(f"http://127.0.0.1:{ports.mlflow}/api/2.0/mlflow/registered-models/search")
        assert isinstance(models, dict)
        # the MLflow server runs without job runners (huey consumers): the product uses no MLflow jobs
        mlflow_group = group_commands(pids["mlflow"])
        assert any(" server " in c for c in mlflow_group), mlflow_group
        assert not any("huey" in c for c in mlflow_group), mlflow_group

        with pytest.raises(ServiceError, match="already up"):
            up(settings, ports, lines.append)
    finally:
        stopped = down(settings, lines.append)
    assert sorted(stopped) == ["airflow", "mlflow", "sandbox"]
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # every process of each group is gone, children included
    assert not any(port_open(p) for p in (ports.airflow, ports.mlflow, ports.sandbox))
    assert list(run_dir(settings).glob("*.pid")) == []
    assert down(settings, lines.append) == []  # a second down stops nothing and says so
    assert lines[-1] == "nothing of the product was running"


def test_up__refuses_a_taken_port_naming_it(tmp_path):
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        airflow, mlflow = free_ports(2)
        with pytest.raises(ServiceError, match=f"port\\(s\\) in use: sandbox {taken}"):
            up(settings, Ports(airflow, mlflow, taken))
    assert not Path(run_dir(settings)).exists() or list(run_dir(settings).glob("*.pid")) == []


def test_down__terminates_every_group_at_once_then_kills_the_ones_that_ignore_it(tmp_path):
    """Two groups that ignore SIGTERM: both get it together, both are killed after one grace."""
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    folder = run_dir(settings)
    folder.mkdir(parents=True)
    processes = {}
    for name in ("stubborn-a", "stubborn-b"):
        marks = tmp_path / f"{name}.term"
        processes[name] = subprocess.Popen(
            ["bash", "-c", f"trap 'date +%s.%N >> {marks}' TERM; touch {marks}.ready; while true; do sleep 0.1; done"],
            start_new_session=True,
        )
        (folder / f"{name}.pid").write_text(str(processes[name].pid))
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"{name}.term.ready").exists() for name in processes) and time.monotonic() < deadline:
        time.sleep(0.05)  # each trap is installed before its ready file is written
    lines: list[str] = []
    assert down(settings, lines.append, grace_s=2) == ["stubborn-a", "stubborn-b"]
    for process in processes.values():
        assert process.wait(timeout=10) == -9  # SIGKILL after the grace: the trap ignored SIGTERM
    first, second = (float((tmp_path / f"{name}.term").read_text().split()[0]) for name in processes)
    assert abs(first - second) < 1.0  # terminated together, not one grace after the other
    assert lines == [f"stopped {name} (process group {p.pid})" for name, p in processes.items()]
    assert list(folder.glob("*.pid")) == []
