"""The production stack's files: docker-compose.yml, .env.example, the Dockerfile, .dockerignore.

No Docker engine runs these tests, so the compose file is checked by construction: it is parsed
as YAML and its `${VAR}` references are interpolated the way Compose does (``interpolate``),
then every service, dependency, variable, mount, port and URL is checked against the others,
against the monitoring configs it mounts and against the product code it runs. The checker
functions below are plain functions of a compose dict or text, so that the negative tests can
show that they catch what they are meant to. Where a Compose v2 CLI is on PATH, ``docker
compose config`` checks the file against the Compose schema as well.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
ENV_EXAMPLE_TEXT = (ROOT / ".env.example").read_text()
DOCKERFILE_TEXT = (ROOT / "Dockerfile").read_text()

SERVICES = {
    "timescaledb",
    "redis",
    "postgres-airflow",
    "postgres-mlflow",
    "eopt-migrate",
    "mlflow",
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "statsd-exporter",
    "eopt-metrics",
    "prometheus",
    "grafana",
}
ONE_SHOTS = {"eopt-migrate", "airflow-init"}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
PRODUCT_IMAGE_SERVICES = AIRFLOW_SERVICES | {"eopt-migrate", "eopt-metrics", "mlflow"}
# service -> the folder its state lives in
STATEFUL = {
    "timescaledb": "/var/lib/postgresql/data",
    "postgres-airflow": "/var/lib/postgresql/data",
    "postgres-mlflow": "/var/lib/postgresql/data",
    "redis": "/data",
    "mlflow": "/mlflow",
    "prometheus": "/prometheus",
    "grafana": "/var/lib/grafana",
}
SECRETS = {
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "AIRFLOW_DB_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_ADMIN_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "EOPT_FLATPEAK_ACCOUNT_ID",
    "EOPT_FLATPEAK_API_KEY",
    "EOPT_NREL_API_KEY",
    "EOPT_ENTSOE_TOKEN",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|FERNET|ACCOUNT_ID")
# packages the compose commands import that the lock must therefore pin
LOCK_NEEDS = {
    "prometheus-flask-exporter": "`mlflow server --expose-prometheus` imports prometheus_flask_exporter",
    "apache-airflow-providers-celery": "the celery profile: CeleryExecutor and `airflow celery worker`",
}


# -- Compose's interpolation ---------------------------------------------------------------------

# `$$` (a literal `$`), `${NAME}`, `${NAME<op><arg>}` with op one of :- - :? ? :+ +, or `$NAME`
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(ValueError):
    """A `${NAME:?message}` (or `?`) reference whose variable is missing: Compose refuses to start."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name = name


def variable_uses(text: str) -> list[tuple[str, str, str]]:
    """Every variable reference in compose text as (name, operator, argument); `$$` is no reference."""
    uses = []
    for match in _REFERENCE.finditer(text):
        if match["escaped"]:
            continue
        if match["bare"]:
            uses.append((match["bare"], "", ""))
        else:
            if "$" in (match["arg"] or ""):
                raise ValueError(f"nested interpolation in {match[0]!r} is not supported by these checks")
            uses.append((match["braced"], match["op"] or "", match["arg"] or ""))
    return uses


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of every string in a parsed compose file, with `env` as the .env."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["bare"] or match["braced"]
        op, arg = match["op"] or "", match["arg"] or ""
        current = env.get(name)
        present = current is not None
        filled = bool(current)
        if op in (":?", "?") and not (filled if op == ":?" else present):
            raise MissingVariable(name, arg)
        if op in (":-", "-"):
            return current if (filled if op == ":-" else present) else arg
        if op in (":+", "+"):
            return arg if (filled if op == ":+" else present) else ""
        return current or ""

    return _REFERENCE.sub(substitute, value)


def env_file_values(text: str) -> dict[str, str]:
    """KEY=VALUE lines of an env file (the plain form .env.example uses)."""
    return dict(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", text, re.M))


# -- checkers ------------------------------------------------------------------------------------


def undocumented_variables(compose_text: str, env_example_text: str) -> set[str]:
    """Variables the compose file reads that .env.example does not list."""
    return {name for name, _, _ in variable_uses(compose_text)} - set(env_file_values(env_example_text))


def secrets_with_fallback(compose_text: str) -> list[str]:
    """References to a secret-looking variable that do not refuse to start without it (`:?`)."""
    return sorted(
        {
            f"${{{name}{op}{arg}}}"
            for name, op, arg in variable_uses(compose_text)
            if SECRET_NAME.search(name) and op != ":?"
        }
    )


def _dependencies(service: dict) -> dict[str, Any]:
    depends = service.get("depends_on") or {}
    return dict.fromkeys(depends) if isinstance(depends, list) else depends


def dependency_problems(compose: dict) -> list[str]:
    """What is wrong with the services' depends_on: a dependency without a condition, on a service
    that does not exist, waiting for health that is never reported, waiting for a long-running
    service to exit, on a profile-only service from a service outside that profile, or a cycle."""
    services = compose["services"]
    problems = []
    for name, service in services.items():
        for dependency, spec in _dependencies(service).items():
            where = f"{name} -> {dependency}"
            if dependency not in services:
                problems.append(f"{where}: no such service")
                continue
            condition = spec.get("condition") if isinstance(spec, dict) else None
            if condition is None:
                problems.append(f"{where}: no condition (use service_healthy or service_completed_successfully)")
            elif condition == "service_healthy" and "healthcheck" not in services[dependency]:
                problems.append(f"{where}: waits for health but {dependency} has no healthcheck")
            elif condition == "service_completed_successfully" and services[dependency].get("restart") != "no":
                problems.append(f"{where}: waits for {dependency} to exit but it is restarted (not a one-shot)")
            elif condition not in ("service_healthy", "service_completed_successfully"):
                problems.append(f"{where}: condition {condition!r} does not wait for readiness")
            if services[dependency].get("profiles") and not set(service.get("profiles") or ()) & set(
                services[dependency]["profiles"]
            ):
                problems.append(f"{where}: {dependency} runs only in profiles {services[dependency]['profiles']}")

    def visit(name: str, path: tuple[str, ...]) -> None:
        for dependency in _dependencies(services.get(name, {})):
            if dependency in path:
                problems.append("dependency cycle: " + " -> ".join((*path, dependency)))
            elif dependency in services:
                visit(dependency, (*path, dependency))

    for name in services:
        visit(name, (name,))
    return problems


def healthcheck_problems(compose: dict, one_shots: set[str] = ONE_SHOTS) -> list[str]:
    """Long-running services without a healthcheck or restart policy; one-shots that restart."""
    problems = []
    for name, service in compose["services"].items():
        if name in one_shots:
            if service.get("restart") != "no":
                problems.append(f'{name}: a one-shot must not restart (restart: "no")')
            continue
        test = (service.get("healthcheck") or {}).get("test")
        if not test or test == ["NONE"] or service["healthcheck"].get("disable"):
            problems.append(f"{name}: long-running without a healthcheck")
        if service.get("restart") not in ("unless-stopped", "always", "on-failure"):
            problems.append(f"{name}: long-running without a restart policy")
    return problems


# -- fixtures and helpers ------------------------------------------------------------------------


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def complete_env() -> dict[str, str]:
    """.env.example with every secret set, as an operator's .env (alphanumeric values, as advised)."""
    env = env_file_values(ENV_EXAMPLE_TEXT)
    env.update({name: f"t3st{name.title().replace('_', '')}" for name in SECRETS})
    env["AIRFLOW_FERNET_KEY"] = _fernet_key()
    return env


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_TEXT)


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return complete_env()


@pytest.fixture(scope="module")
def rendered(compose: dict, env: dict[str, str]) -> dict:
    return interpolate(compose, env)


def _environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def _mounts(service: dict) -> dict[str, str]:
    """target -> source of a service's volumes (short syntax); a named volume's source has no '/'."""
    mounts = {}
    for entry in service.get("volumes") or []:
        source, target = entry.split(":")[:2]
        mounts[target] = source
    return mounts


def _container_ports(service: dict) -> set[tuple[int, str]]:
    """(port, protocol) the service's containers listen on, from `expose` and `ports`."""
    ports = set()
    for entry in service.get("expose") or []:
        port, _, protocol = str(entry).partition("/")
        ports.add((int(port), protocol or "tcp"))
    for entry in service.get("ports") or []:
        mapping, _, protocol = str(entry).partition("/")
        ports.add((int(mapping.split(":")[-1]), protocol or "tcp"))
    return ports


def _command(service: dict) -> str:
    command = service.get("command") or []
    return command if isinstance(command, str) else " ".join(str(part) for part in command)


def _flag(command: list[str], flag: str) -> str:
    """The value of `--flag VALUE` or `--flag=VALUE` in a command list."""
    for index, part in enumerate(command):
        if part == flag:
            return command[index + 1]
        if part.startswith(flag + "="):
            return part.split("=", 1)[1]
    raise AssertionError(f"{flag} is not in {command}")


def _dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE_TEXT)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _dockerfile_env() -> dict[str, str]:
    env = {}
    for instruction, argument in _dockerfile_instructions():
        if instruction == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", argument))
    return env


# -- the services --------------------------------------------------------------------------------


def test_compose__runs_the_production_services(compose):
    assert set(compose["services"]) == SERVICES
    assert compose["services"]["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert compose["services"]["statsd-exporter"]["image"].startswith("prom/statsd-exporter:v0.")
    for name in PRODUCT_IMAGE_SERVICES:  # one image, built from the Dockerfile
        assert compose["services"][name]["image"] == "electricity-optimizer:latest", name
        assert compose["services"][name]["build"] == ".", name


def test_compose__long_running_services_have_healthchecks_and_one_shots_run_once(compose):
    assert healthcheck_problems(compose) == []
    for name in ONE_SHOTS:
        assert "healthcheck" not in compose["services"][name], name


def test_compose__every_dependency_waits_on_a_condition_of_a_service_that_exists(compose):
    assert dependency_problems(compose) == []
    services = compose["services"]
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert depends["eopt-migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["statsd-exporter"] == {"condition": "service_healthy"}, name  # StatsD host resolved at start
    for name in ("airflow-scheduler", "airflow-worker"):  # the executors' tasks talk to MLflow
        assert services[name]["depends_on"]["mlflow"] == {"condition": "service_healthy"}, name
    assert services["eopt-metrics"]["depends_on"]["eopt-migrate"] == {"condition": "service_completed_successfully"}
    assert services["mlflow"]["depends_on"] == {"postgres-mlflow": {"condition": "service_healthy"}}


def test_compose__stateful_services_keep_their_data_in_declared_named_volumes(compose):
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for source in _mounts(service).values():
            if "/" not in source:
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    for name, folder in STATEFUL.items():
        source = _mounts(compose["services"][name]).get(folder)
        assert source and "/" not in source, f"{name} keeps {folder} outside a named volume"


def test_compose__publishes_the_uis_on_the_configured_address_only(compose, env):
    published = {name: service["ports"] for name, service in compose["services"].items() if service.get("ports")}
    assert set(published) == {"airflow-api-server", "mlflow", "prometheus", "grafana"}
    for name, ports in published.items():
        for entry in ports:
            assert entry.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), (name, entry)
            assert interpolate(entry, env).startswith("127.0.0.1:"), (name, entry)
            assert interpolate(entry, {**env, "PUBLISH_ADDRESS": "0.0.0.0"}).startswith("0.0.0.0:")


# -- variables and secrets -----------------------------------------------------------------------


def test_compose__every_variable_is_documented_in_env_example_with_a_comment():
    assert undocumented_variables(COMPOSE_TEXT, ENV_EXAMPLE_TEXT) == set()
    used = {name for name, _, _ in variable_uses(COMPOSE_TEXT)}
    documented = env_file_values(ENV_EXAMPLE_TEXT)
    stale = {name for name in documented if name not in used and not name.startswith("COMPOSE_")}
    assert stale == set(), f".env.example documents variables compose does not read: {stale}"
    lines = ENV_EXAMPLE_TEXT.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"[A-Z_0-9]+=", line):
            assert lines[index - 1].startswith("# "), f".env.example: {line.split('=')[0]} has no comment above it"


def test_compose__secrets_have_no_default_and_the_stack_refuses_to_start_without_them(compose, env):
    assert secrets_with_fallback(COMPOSE_TEXT) == []
    used = {name for name, _, _ in variable_uses(COMPOSE_TEXT)}
    assert {name for name in used if SECRET_NAME.search(name)} == SECRETS
    example = env_file_values(ENV_EXAMPLE_TEXT)
    assert {name: example[name] for name in SECRETS} == dict.fromkeys(SECRETS, ""), ".env.example holds a secret"
    with pytest.raises(MissingVariable):
        interpolate(compose, example)  # .env copied from the example, nothing set: refused
    for secret in sorted(SECRETS):
        with pytest.raises(MissingVariable) as refused:
            interpolate(compose, {**env, secret: ""})
        assert refused.value.name == secret
        assert f"set {secret} in .env" in str(refused.value)


def test_compose__renders_with_a_complete_env_and_every_url_names_its_service(rendered, env):
    services = rendered["services"]
    # `$$` stays a `$` for the container's shell, which reads the container's own variables
    assert services["timescaledb"]["healthcheck"]["test"][1] == "pg_isready -U ${POSTGRES_USER} -d ${POSTGRES_DB}"
    airflow = _environment(services["airflow-scheduler"])

    store = sa.make_url(airflow["EOPT_DATABASE_URL"])
    timescale = _environment(services["timescaledb"])
    assert (store.host, store.port) == ("timescaledb", 5432)
    assert (store.username, store.password, store.database) == (
        timescale["POSTGRES_USER"],
        timescale["POSTGRES_PASSWORD"],
        timescale["POSTGRES_DB"],
    )
    metadata = sa.make_url(airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    airflow_db = _environment(services["postgres-airflow"])
    assert (metadata.host, metadata.username, metadata.password, metadata.database) == (
        "postgres-airflow",
        airflow_db["POSTGRES_USER"],
        airflow_db["POSTGRES_PASSWORD"],
        airflow_db["POSTGRES_DB"],
    )
    assert sa.make_url(airflow["AIRFLOW__CELERY__RESULT_BACKEND"].removeprefix("db+")).host == "postgres-airflow"
    backend = sa.make_url(_environment(services["mlflow"])["MLFLOW_BACKEND_STORE_URI"])
    mlflow_db = _environment(services["postgres-mlflow"])
    assert (backend.host, backend.username, backend.password, backend.database) == (
        "postgres-mlflow",
        mlflow_db["POSTGRES_USER"],
        mlflow_db["POSTGRES_PASSWORD"],
        mlflow_db["POSTGRES_DB"],
    )

    redis_password = env["REDIS_PASSWORD"]
    assert redis_password in services["redis"]["command"]  # --requirepass
    assert airflow["REDIS_URL"] == f"redis://:{redis_password}@redis:6379/0"
    assert airflow["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{redis_password}@redis:6379/1"  # not the cache's db

    assert airflow["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert (5000, "tcp") in _container_ports(services["mlflow"])
    assert airflow["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
    assert (8080, "tcp") in _container_ports(services["airflow-api-server"])

    from core.settings import Settings

    settings = Settings.from_env(airflow)  # the product accepts the environment it is given
    assert settings.stores.database_url == airflow["EOPT_DATABASE_URL"]
    assert settings.stores.redis_url == airflow["REDIS_URL"]
    assert settings.regions == ("NP", "PJM", "BE", "FR")  # empty pass-through values: the defaults
    assert settings.providers.sources == ("flatpeak", "nrel", "openei", "iea", "entsoe")
    assert settings.training.budget == "default" and settings.log_level == "INFO"
    assert settings.providers.sandbox_url is None


# -- Airflow -------------------------------------------------------------------------------------


def test_compose__airflow_services_share_one_configuration_with_statsd_and_no_examples(rendered, env):
    services = rendered["services"]
    assert (9125, "udp") in _container_ports(services["statsd-exporter"])
    dockerfile_env = _dockerfile_env()
    for name in AIRFLOW_SERVICES:
        environment = _environment(services[name])
        assert {
            key: environment.get(key)
            for key in (
                "AIRFLOW__METRICS__STATSD_ON",
                "AIRFLOW__METRICS__STATSD_HOST",
                "AIRFLOW__METRICS__STATSD_PORT",
                "AIRFLOW__METRICS__STATSD_PREFIX",
            )
        } == {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "statsd-exporter",
            "AIRFLOW__METRICS__STATSD_PORT": "9125",
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        }, name
        assert environment["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False", name
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert environment["AIRFLOW__CORE__FERNET_KEY"] == env["AIRFLOW_FERNET_KEY"], name
        assert environment["AIRFLOW__API__SECRET_KEY"] == env["AIRFLOW_API_SECRET_KEY"], name
        assert environment["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW_JWT_SECRET"], name
        assert environment["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/eopt/dags", name
        mounts = _mounts(services[name])
        assert mounts[f"{dockerfile_env['AIRFLOW_HOME']}/logs"] == "airflow-logs", name  # one log folder for all
        assert mounts[dockerfile_env["EOPT_HOME"]] == "eopt-data", name  # retraining hand-offs between tasks
    # the DAGs are baked into the image at WORKDIR /opt/eopt: the repo's dags/ is what runs
    assert ("WORKDIR", "/opt/eopt") in _dockerfile_instructions()
    dag_files = {path.name for path in (ROOT / "dags").glob("*.py")}
    assert {
        "electricity_price_ingestion.py",
        "model_retraining.py",
        "forecast_generation.py",
        "data_quality.py",
    } <= dag_files
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES - {"airflow-init", "airflow-worker"}}
    assert commands == {
        "airflow-api-server": ["airflow", "api-server"],
        "airflow-scheduler": ["airflow", "scheduler"],
        "airflow-dag-processor": ["airflow", "dag-processor"],
        "airflow-triggerer": ["airflow", "triggerer"],
    }
    assert _environment(services["airflow-scheduler"])["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert "8974/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    assert "/api/v2/monitor/health" in " ".join(services["airflow-api-server"]["healthcheck"]["test"])
    for name, job in (("airflow-dag-processor", "DagProcessorJob"), ("airflow-triggerer", "TriggererJob")):
        assert f"airflow jobs check --job-type {job} --hostname" in " ".join(services[name]["healthcheck"]["test"])


def test_compose__airflow_init_imports_pools_and_variables_but_not_the_sandbox_connections(rendered):
    services = rendered["services"]
    init = services["airflow-init"]
    script = init["command"][-1]
    assert init["command"][:2] == ["bash", "-c"] and script.startswith("set -euo pipefail")
    steps = [line for line in script.splitlines() if line.startswith("airflow ")]
    assert steps == [
        "airflow db migrate",
        "airflow pools import /opt/eopt/airflow/pools.json",
        "airflow variables import --action-on-existing-key skip /opt/eopt/airflow/variables.json",
        "airflow variables export /tmp/variables-now.json",  # then checked: import exits 0 on failures
    ]
    for path in re.findall(r"/opt/eopt/(\S+\.json)", script):
        assert (ROOT / path).is_file(), f"airflow-init reads {path}, which is not in the repo"
    assert "connections" not in script and "eopt airflow-init" not in script  # the sandbox's are for make demo
    sandbox = json.loads((ROOT / "airflow" / "connections.json").read_text())
    environment = _environment(init)
    for conn_id in sandbox:  # the providers' connections come from .env, with their real hosts
        assert f"AIRFLOW_CONN_{conn_id.upper()}" in environment, conn_id
    passwords = environment["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert Path(passwords).parent.as_posix() == "/opt/airflow/auth"
    for name in ("airflow-init", "airflow-api-server"):  # written by one, read by the other
        assert _mounts(services[name])["/opt/airflow/auth"] == "airflow-auth", name
    assert environment["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert "AIRFLOW_ADMIN_PASSWORD" not in _environment(services["airflow-api-server"])


def test_compose__provider_connections_are_json_that_the_pricing_hook_turns_into_the_real_hosts(
    rendered, env, tmp_path
):
    environment = _environment(rendered["services"]["airflow-scheduler"])
    connections = {key: value for key, value in environment.items() if key.startswith("AIRFLOW_CONN_") and value}
    assert set(connections) == {
        "AIRFLOW_CONN_FLATPEAK_DEFAULT",
        "AIRFLOW_CONN_NREL_DEFAULT",
        "AIRFLOW_CONN_IEA_DEFAULT",
        "AIRFLOW_CONN_ENTSOE_DEFAULT",
    }
    for key, value in connections.items():
        assert json.loads(value)["conn_type"] == "http", key
        assert "127.0.0.1" not in value and "8765" not in value, f"{key} points at the sandbox"
    probe = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from pricing_api_hook import PricingAPIHook\n"
        "configs = {s: PricingAPIHook(s).get_config() for s in sys.argv[2:]}\n"
        "print(json.dumps({s: [c.base_url, c.login, c.api_key] for s, c in configs.items()}))\n"
    )
    sources = ["flatpeak", "nrel", "openei", "iea", "entsoe"]
    result = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "dags"), *sources],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": str(Path(sys.executable).parent),
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "EOPT_HOME": str(tmp_path / "eopt"),
            **connections,
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    configs = json.loads(result.stdout.strip().splitlines()[-1])
    from ingestion.providers import source_module

    assert {source: configs[source][0] for source in sources} == {
        source: source_module(source).DEFAULT_BASE_URL for source in sources
    }
    assert configs["flatpeak"][1:] == [env["EOPT_FLATPEAK_ACCOUNT_ID"], env["EOPT_FLATPEAK_API_KEY"]]
    assert configs["nrel"][2] == configs["openei"][2] == env["EOPT_NREL_API_KEY"]
    assert configs["entsoe"][2] == env["EOPT_ENTSOE_TOKEN"]
    assert configs["iea"][2] is None


def test_compose__celery_profile_adds_scalable_workers_and_switches_the_executor(compose, env):
    profiled = {name: service["profiles"] for name, service in compose["services"].items() if "profiles" in service}
    assert profiled == {"airflow-worker": ["celery"]}
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale airflow-worker=3 needs both absent
    script = worker["command"][-1]
    assert 'if [ "$${AIRFLOW__CORE__EXECUTOR}" != CeleryExecutor ]' in script and "exit 1" in script
    assert script.rstrip().endswith("exec airflow celery worker")
    assert "celery_executor.app inspect ping" in " ".join(worker["healthcheck"]["test"])
    celery = interpolate(compose, {**env, "AIRFLOW_EXECUTOR": "CeleryExecutor"})
    for name in AIRFLOW_SERVICES:
        assert _environment(celery["services"][name])["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    assert "CeleryExecutor" in ENV_EXAMPLE_TEXT and "COMPOSE_PROFILES=celery" in ENV_EXAMPLE_TEXT


# -- MLflow and monitoring -----------------------------------------------------------------------


def test_compose__mlflow_serves_prometheus_metrics_to_the_host_prometheus_scrapes(rendered, env):
    mlflow = rendered["services"]["mlflow"]
    command = mlflow["command"]
    assert command[:2] == ["mlflow", "server"]
    assert _flag(command, "--host") == "0.0.0.0" and _flag(command, "--port") == "5000"
    allowed = _flag(command, "--allowed-hosts").split(",")
    assert {"mlflow:5000", "localhost:5000"} <= set(allowed) and "" not in allowed
    prometheus_dir = _flag(command, "--expose-prometheus")
    assert prometheus_dir in mlflow["tmpfs"]  # multiprocess files must not outlive the server
    assert _flag(command, "--artifacts-destination").startswith(
        next(target for target, source in _mounts(mlflow).items() if source == "mlflow-artifacts")
    )
    scraped = _scrape_targets()["mlflow"]
    assert scraped and set(scraped) <= set(allowed), "Prometheus' Host header would get a 403"
    extra = interpolate(yaml.safe_load(COMPOSE_TEXT), {**env, "MLFLOW_ALLOWED_HOSTS": "mlflow.example.com"})
    assert _flag(extra["services"]["mlflow"]["command"], "--allowed-hosts").split(",")[-1] == "mlflow.example.com"


def _scrape_targets() -> dict[str, list[str]]:
    config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    return {
        job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        for job in config["scrape_configs"]
    }


def test_prometheus__scrape_targets_are_compose_services_on_ports_they_listen_on(rendered):
    services = rendered["services"]
    targets = _scrape_targets()
    assert set(targets) == {"prometheus", "statsd-exporter", "electricity-optimizer", "mlflow"}
    for job, addresses in targets.items():
        for address in addresses:
            host, port = address.rsplit(":", 1)
            service = "prometheus" if host == "localhost" else host  # Prometheus scrapes itself
            assert service in services, f"job {job}: {host} is not a compose service"
            assert (int(port), "tcp") in _container_ports(services[service]), f"job {job}: {service} has no port {port}"
    metrics = services["eopt-metrics"]
    assert metrics["command"] == ["eopt", "metrics", "serve", "--host", "0.0.0.0"]
    assert _environment(metrics)["EOPT_METRICS_HOST"] == "0.0.0.0"
    assert (
        _environment(metrics)["EOPT_DATABASE_URL"] == _environment(services["airflow-scheduler"])["EOPT_DATABASE_URL"]
    )


def test_compose__monitoring_mounts_are_repo_files_where_their_configs_expect_them(rendered):
    services = rendered["services"]
    for name, service in services.items():
        for source in _mounts(service).values():
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"
    prometheus = services["prometheus"]
    mounts = _mounts(prometheus)
    config_target = _flag(prometheus["command"], "--config.file")
    assert mounts[config_target] == "./monitoring/prometheus.yml"
    rule_files = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())["rule_files"]
    for rule_file in rule_files:  # relative to the config file, in the container as in the repo
        target = (Path(config_target).parent / rule_file).as_posix()
        assert mounts.get(target) == f"./monitoring/{rule_file}", f"{rule_file} is not next to prometheus.yml"
    assert _flag(prometheus["command"], "--storage.tsdb.path") == "/prometheus"

    statsd = services["statsd-exporter"]
    assert _mounts(statsd)[_flag(statsd["command"], "--statsd.mapping-config")] == "./monitoring/statsd_mapping.yml"
    assert _flag(statsd["command"], "--statsd.listen-udp") == ":9125"
    assert _flag(statsd["command"], "--web.listen-address") == ":9102"

    grafana = _mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == "./monitoring/grafana/provisioning"
    for kind in ("datasources", "dashboards"):
        assert list((ROOT / "monitoring" / "grafana" / "provisioning" / kind).glob("*.yml")), kind
    provider = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/dashboards/dashboards.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert grafana[dashboards_path] == "./monitoring/grafana-dashboards"
    assert len(list((ROOT / "monitoring" / "grafana-dashboards").glob("*.json"))) == 4
    datasource = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())
    host, port = datasource["datasources"][0]["url"].removeprefix("http://").split(":")
    assert (int(port), "tcp") in _container_ports(services[host])
    grafana_env = _environment(services["grafana"])
    assert grafana_env["GF_SECURITY_ADMIN_PASSWORD"] and grafana_env["GF_USERS_ALLOW_SIGN_UP"] == "false"


# -- the image -----------------------------------------------------------------------------------


def test_dockerfile__installs_the_lock_and_the_project_and_runs_as_non_root():
    instructions = _dockerfile_instructions()
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11-slim")
    runs = [(index, argument) for index, (instruction, argument) in enumerate(instructions) if instruction == "RUN"]
    lock_install = next(index for index, run in runs if "pip install" in run and "-r requirements.lock" in run)
    project_install = next(index for index, run in runs if "pip install" in run and "--no-deps -e ." in run)
    copies = [
        index
        for index, (instruction, argument) in enumerate(instructions)
        if instruction == "COPY" and argument.split()[0] == "requirements.lock"
    ]
    assert copies and copies[0] < lock_install < project_install  # the dependency layer is cached
    users = [(index, argument) for index, (instruction, argument) in enumerate(instructions) if instruction == "USER"]
    assert users, "the image runs as root"
    index, user = users[-1]
    assert user not in ("root", "0") and index > max(i for i, _ in runs)
    assert any(re.search(rf"useradd [^&]*\b{user}\b", run) for _, run in runs), f"no useradd creates {user}"
    assert instructions[-1] == ("CMD", '["eopt", "--help"]')
    assert not any(instruction == "ENTRYPOINT" for instruction, _ in instructions)  # compose commands are whole


def test_dockerignore__keeps_secrets_and_local_state_out_of_the_image():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".git", ".venv", ".eopt"} <= ignored
    assert not ignored & {"dags", "data", "airflow", "eopt", "requirements.lock", "pyproject.toml"}


def test_lock__pins_the_packages_that_the_compose_commands_import():
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    missing = {package: why for package, why in LOCK_NEEDS.items() if package not in pins}
    assert missing == {}, (
        "requirements.lock lacks packages the compose file needs; add them to pyproject.toml and run "
        f"`make lock`: {missing}"
    )


# -- the checkers catch what they should ---------------------------------------------------------


def test_checkers__flag_an_undocumented_variable_and_a_secret_with_a_default():
    text = (
        "services:\n  app:\n    image: x\n    environment:\n      A: ${DOCUMENTED:?x}\n"
        "      B: ${UNDOCUMENTED:-y}\n      C: $${NOT_A_VARIABLE}\n      D: ${DB_PASSWORD:-changeme}\n"
    )
    assert undocumented_variables(text, "# doc\nDOCUMENTED=\n# doc\nDB_PASSWORD=\n") == {"UNDOCUMENTED"}
    assert secrets_with_fallback(text) == ["${DB_PASSWORD:-changeme}"]
    assert interpolate(yaml.safe_load(text), {"DOCUMENTED": "1"})["services"]["app"]["environment"] == {
        "A": "1",
        "B": "y",
        "C": "${NOT_A_VARIABLE}",
        "D": "changeme",
    }
    with pytest.raises(MissingVariable, match="DOCUMENTED"):
        interpolate(yaml.safe_load(text), {"DOCUMENTED": ""})


def test_checkers__flag_dependencies_without_condition_on_missing_or_unready_services():
    compose = {
        "services": {
            "db": {"image": "postgres", "restart": "always"},  # no healthcheck
            "job": {"image": "x", "restart": "always"},  # not a one-shot
            "worker": {"image": "x", "profiles": ["celery"], "healthcheck": {"test": ["CMD", "true"]}},
            "app": {
                "image": "x",
                "depends_on": {
                    "db": {"condition": "service_healthy"},
                    "ghost": {"condition": "service_healthy"},
                    "job": {"condition": "service_completed_successfully"},
                    "worker": {"condition": "service_healthy"},
                },
            },
            "listed": {"image": "x", "depends_on": ["db"]},
            "started": {"image": "x", "depends_on": {"job": {"condition": "service_started"}}},
            "a": {"image": "x", "depends_on": {"b": {"condition": "service_completed_successfully"}}, "restart": "no"},
            "b": {"image": "x", "depends_on": {"a": {"condition": "service_completed_successfully"}}, "restart": "no"},
        }
    }
    problems = dependency_problems(compose)
    assert "app -> db: waits for health but db has no healthcheck" in problems
    assert "app -> ghost: no such service" in problems
    assert "app -> job: waits for job to exit but it is restarted (not a one-shot)" in problems
    assert "app -> worker: worker runs only in profiles ['celery']" in problems
    assert "listed -> db: no condition (use service_healthy or service_completed_successfully)" in problems
    assert "started -> job: condition 'service_started' does not wait for readiness" in problems
    assert "dependency cycle: a -> b -> a" in problems
    health = healthcheck_problems(compose, one_shots={"a", "b"})
    assert "db: long-running without a healthcheck" in health and "app: long-running without a restart policy" in health


# -- Compose itself, where it is installed -------------------------------------------------------


TOOLS_BIN = ROOT / ".tools" / "bin"  # where scripts/ensure-services.sh (make test) installs Compose v2


def _compose_cli() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"], [str(TOOLS_BIN / "docker-compose")]):
        if shutil.which(command[0]) is None:
            continue
        version = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, timeout=30)
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2"):
            return command
    return None


def test_compose__docker_compose_config_accepts_the_file_and_refuses_an_env_without_secrets(env, tmp_path):
    cli = _compose_cli()
    if cli is None:
        message = (
            "no Compose v2 CLI (`docker compose`, `docker-compose` v2 or .tools/bin/docker-compose): "
            "make test installs one with scripts/ensure-services.sh"
        )
        if Settings.from_env().require_services:
            pytest.fail(f"{message} (EOPT_REQUIRE_SERVICES=1 makes this a failure)", pytrace=False)
        pytest.skip(message)
    complete = tmp_path / "complete.env"
    complete.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    base = [*cli, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml")]
    for profile in ([], ["--profile", "celery"]):
        result = subprocess.run(
            [*base, "--env-file", str(complete), *profile, "config", "-q"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
    refused = subprocess.run(
        [*base, "--env-file", str(ROOT / ".env.example"), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "in .env" in refused.stderr
