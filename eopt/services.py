"""``make up`` / ``make down``: the platform's servers on one machine, and exactly those stopped again.

``up`` bootstraps the Airflow home (``eopt.airflow_home.bootstrap``), writes a known admin
password for Airflow's SimpleAuthManager before the start (``$AIRFLOW_HOME/admin-password``, mode
600; printed once), then starts, each in its own process group with its pid in
``$EOPT_HOME/run/<name>.pid`` and its output in ``$EOPT_HOME/run/<name>.log``:

| name | command | port |
|---|---|---|
| ``airflow`` | ``airflow standalone`` (scheduler, dag-processor, triggerer, api-server) | 8080 |
| ``mlflow`` | ``mlflow server`` on the product's tracking store and artifacts (no job runners) | 5000 |
| ``sandbox`` | ``eopt sandbox`` (the pricing providers' APIs over the bundled history) | 8765 |

With ``executor="celery"`` (``eopt up --executor celery``, ``make up EXECUTOR=celery``) Airflow runs
as separate processes instead of ``airflow standalone``: ``airflow-scheduler``,
``airflow-dag-processor``, ``airflow-api-server`` and ``workers`` ``airflow celery worker`` processes
(``celery-worker-<n>``, Celery hostname ``worker<n>@<host>``, no log server: they share the log
folder). The CeleryExecutor needs a PostgreSQL metadata database
(``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``) and a broker (``AIRFLOW__CELERY__BROKER_URL``, e.g. Redis);
the result backend defaults to the metadata database. Each worker's tasks record
``<worker>@<host>`` as their ``task_instance.hostname`` (``worker_hostname``), so which worker ran
which task can be read back. The processes share one JWT secret (``$AIRFLOW_HOME/jwt-secret``).

``down`` stops the process groups named in those pid files (SIGTERM, then SIGKILL after a grace
period) and nothing else; a pid file whose process is gone is just removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from eopt.airflow_home import bootstrap

BIN = Path(sys.executable).parent
ADMIN_USER = "admin"
EXECUTORS = ("local", "celery")
WORKER_HOSTNAME = "EOPT_WORKER_HOSTNAME"


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the Celery workers ``up`` starts: the worker's own name
    (``worker<n>@<host>``) where several workers share one machine, else the machine's name."""
    return Settings.from_env().airflow.worker_hostname or socket.getfqdn()


@dataclass(frozen=True)
class Ports:
    airflow: int = 8080
    mlflow: int = 5000
    sandbox: int = 8765


class ServiceError(RuntimeError):
    """A server did not come up, or a port is taken."""


def run_dir(settings: Settings) -> Path:
    return settings.service_dir


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def admin_password(settings: Settings) -> str:
    """The Airflow admin password of this home: created once, kept across restarts."""
    home = settings.airflow.home
    home.mkdir(parents=True, exist_ok=True)
    path = home / "admin-password"
    if not path.is_file():
        path.write_text(secrets.token_urlsafe(18) + "\n")
        path.chmod(0o600)
    password = path.read_text().strip()
    # SimpleAuthManager reads (and otherwise generates) its users' passwords from this file
    generated = home / "simple_auth_manager_passwords.json.generated"
    generated.write_text(json.dumps({ADMIN_USER: password}))
    generated.chmod(0o600)
    return password


def _secret(settings: Settings, name: str) -> str:
    """A random secret kept in the Airflow home (mode 600): the same for every process and restart."""
    path = settings.airflow.home / name
    if not path.is_file():
        settings.airflow.home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _celery_environment(settings: Settings) -> dict[str, str]:
    """The CeleryExecutor's settings, refusing what it cannot run on."""
    env = settings.airflow_environment()
    metadata = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if not metadata.startswith("postgresql"):
        raise ServiceError(
            f"the CeleryExecutor needs a PostgreSQL metadata database, not {metadata.split(':')[0]}; set "
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://user:password@host:5432/airflow"
        )
    broker = env.get("AIRFLOW__CELERY__BROKER_URL")
    if not broker:
        raise ServiceError(
            "the CeleryExecutor needs a broker: set AIRFLOW__CELERY__BROKER_URL, e.g. redis://127.0.0.1:6379/1"
        )
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": env.get("AIRFLOW__CELERY__RESULT_BACKEND") or "db+" + metadata,
    }


def _commands(
    settings: Settings, ports: Ports, executor: str = "local", workers: int = 2, worker_concurrency: int | None = None
) -> dict[str, tuple[list[str], dict[str, str]]]:
    base = f"http://127.0.0.1:{ports.airflow}"
    extra = _celery_environment(settings) if executor == "celery" else {}
    airflow_env = settings.airflow_environment(
        AIRFLOW__API__PORT=str(ports.airflow),
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__BASE_URL=base,
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base}/execution/",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN_USER}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(
            settings.airflow.home / "simple_auth_manager_passwords.json.generated"
        ),
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{ports.mlflow}",
        **extra,
    )
    airflow_env["PATH"] = (
        f"{BIN}{os.pathsep}{airflow_env.get('PATH', '')}"  # standalone starts its parts as `airflow ...`
    )
    plain_env = settings.airflow_environment()  # the same settings for mlflow and the sandbox
    # MLflow's server-side jobs (GenAI judges, prompt optimisation) are not used by the product: without
    # this the server starts seven huey consumers of about 300 MB each next to it
    mlflow_env = {**plain_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    artifacts = settings.stores.mlflow_artifact_root or settings.stores.home / "mlartifacts"
    mlflow = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports.mlflow),
        "--backend-store-uri",
        settings.stores.mlflow_tracking_uri,
        "--default-artifact-root",
        artifacts.as_uri(),
        "--workers",
        "1",
    ]
    sandbox = [str(BIN / "eopt"), "sandbox", "--host", "127.0.0.1", "--port", str(ports.sandbox)]
    airflow = str(BIN / "airflow")
    if executor == "local":
        airflow_parts = {"airflow": ([airflow, "standalone"], airflow_env)}
    else:
        # separate processes share the tokens the scheduler signs and the API server checks
        airflow_env["AIRFLOW__API_AUTH__JWT_SECRET"] = _secret(settings, "jwt-secret")
        airflow_parts = {
            "airflow-api-server": (
                [airflow, "api-server", "--host", "127.0.0.1", "--port", str(ports.airflow)],
                airflow_env,
            ),
            "airflow-scheduler": ([airflow, "scheduler"], airflow_env),
            "airflow-dag-processor": ([airflow, "dag-processor"], airflow_env),
        }
        host = socket.gethostname()
        for number in range(1, workers + 1):
            name = f"worker{number}@{host}"
            worker_env = {
                **airflow_env,
                WORKER_HOSTNAME: name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "eopt.services.worker_hostname",
            }
            command = [airflow, "celery", "worker", "--celery-hostname", name, "--skip-serve-logs"]
            if worker_concurrency:
                command += ["--concurrency", str(worker_concurrency)]
            airflow_parts[f"celery-worker-{number}"] = (command, worker_env)
    return {**airflow_parts, "mlflow": (mlflow, mlflow_env), "sandbox": (sandbox, plain_env)}


def _health_urls(ports: Ports, executor: str = "local") -> dict[str, str]:
    return {
        "airflow"
        if executor == "local"
        else "airflow-api-server": f"http://127.0.0.1:{ports.airflow}/api/v2/monitor/health",
        "mlflow": f"http://127.0.0.1:{ports.mlflow}/health",
        "sandbox": f"http://127.0.0.1:{ports.sandbox}/iea/",
    }


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - our own services' http URLs
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def up(
    settings: Settings,
    ports: Ports = Ports(),
    echo: Callable[[str], None] = print,
    timeout_s: float = 300,
    executor: str = "local",
    workers: int = 2,
    worker_concurrency: int | None = None,
) -> dict[str, int]:
    """Start the platform (see the module docstring); returns each process's pid by name."""
    if executor not in EXECUTORS:
        raise ServiceError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    if executor == "celery":
        _celery_environment(settings)  # refuse a SQLite metadata database or no broker before starting anything
        if workers < 1:
            raise ServiceError(f"the CeleryExecutor needs at least one worker, not {workers}")
    folder = run_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    running = [p.stem for p in folder.glob("*.pid") if _alive(int(p.read_text()))]
    if running:
        raise ServiceError(f"already up ({', '.join(running)}); `make down` first")
    taken = [f"{name} {port}" for name, port in ports.__dict__.items() if not _port_free(port)]
    if taken:
        raise ServiceError(f"port(s) in use: {', '.join(taken)}; stop what listens there first")
    echo(f"Airflow home {settings.airflow.home}: migrate, pools, variables, connections")
    for line in bootstrap(settings):
        echo(f"  {line}")
    password = admin_password(settings)
    pids, processes = {}, {}
    for name, (command, env) in _commands(settings, ports, executor, workers, worker_concurrency).items():
        log = open(folder / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=settings.stores.home, start_new_session=True
        )
        (folder / f"{name}.pid").write_text(str(process.pid))
        pids[name] = process.pid
        processes[name] = process
        echo(f"started {name} (pid {process.pid}, log {folder / f'{name}.log'})")
    deadline = time.monotonic() + timeout_s
    waiting = dict(_health_urls(ports, executor))
    while waiting and time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:  # exited (a dead child stays a zombie, which `_alive` counts)
                down(settings, echo)
                raise ServiceError(f"{name} exited during start; see {folder / f'{name}.log'}")
        for name, url in list(waiting.items()):
            if _answers(url):
                echo(f"{name} is up: {url}")
                del waiting[name]
        time.sleep(2)
    if waiting:
        down(settings, echo)
        raise ServiceError(f"not up after {timeout_s:.0f} s: {', '.join(waiting)}; see the logs in {folder}")
    echo(
        f"Airflow UI  http://127.0.0.1:{ports.airflow}  user {ADMIN_USER}, password {password} "
        f"(kept in {settings.airflow.home / 'admin-password'})"
    )
    echo(f"MLflow UI   http://127.0.0.1:{ports.mlflow}")
    echo(f"sandbox     http://127.0.0.1:{ports.sandbox}")
    return pids


def down(settings: Settings, echo: Callable[[str], None] = print, grace_s: float = 20) -> list[str]:
    """Stop the process groups of the pid files in ``$EOPT_HOME/run``; returns the names stopped.

    Every group gets SIGTERM at once and ``grace_s`` seconds together to exit (not one after the
    other: a platform of seven groups would wait up to seven graces); what is left gets SIGKILL.
    """
    terminated: dict[Path, int] = {}
    for pid_file in sorted(run_dir(settings).glob("*.pid")):
        pid = int(pid_file.read_text())
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            terminated[pid_file] = pid
        else:
            pid_file.unlink()
    deadline = time.monotonic() + grace_s
    while any(_group_alive(pid) for pid in terminated.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid_file, pid in terminated.items():
        if _group_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        echo(f"stopped {pid_file.stem} (process group {pid})")
        pid_file.unlink()
    if not terminated:
        echo("nothing of the product was running")
    return [pid_file.stem for pid_file in terminated]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # a zombie leader of our own keeps the group "alive": reap it
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    return True
