"""Shared fixtures: real PostgreSQL and Redis, a migrated store per test on each dialect.

PostgreSQL tests get a fresh database of their own (created from ``template0`` on the server at
``EOPT_TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``) that is
dropped afterwards. Redis tests use database 15 of ``EOPT_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/15``; under ``pytest -n N`` worker ``gwK`` uses database 15 - K), flushed
before and after. When a service is down these tests
are skipped with the reason, unless ``EOPT_REQUIRE_SERVICES=1`` (CI), which makes them fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from core.settings import Settings
from storage.database import create_store_engine, upgrade
from storage.prices import PriceStore

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Test-harness addresses; the product itself reads configuration only through core.settings.
POSTGRES_ADMIN_URL = os.environ.get("EOPT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("EOPT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... under `pytest -n N`
if _XDIST_WORKER:  # each worker flushes a database of its own: 15, 14, ...
    REDIS_TEST_URL = f"{REDIS_TEST_URL.rsplit('/', 1)[0]}/{15 - int(_XDIST_WORKER.removeprefix('gw'))}"


# The slowest modules, slowest first (seconds in one serial run on 2 cores: 185, 150, 120, 101, 99,
# 74, 47, 46, 45, 43, 43, 39). The Celery run is left in collection order, mid-suite: started first,
# beside the operations guide (both start Airflow processes), the two took 597 s and 239 s. (It took
# 330 s alone; one Optuna trial per member on an 84-day window, and no MLflow job runners, took it from
# 427 s to 244 s back to back on a busy machine, 702 s to 408 s on a busier one.) `make test` runs whole modules on two xdist workers
# in collection order (--dist loadfile --no-loadscope-reorder); starting these first keeps the run from
# ending with one worker alone on a long module.
SLOWEST_MODULES = (
    "test_operations_guide.py",
    "test_dag_quality.py",
    "test_dag_forecast.py",
    "test_dag_retraining.py",
    "test_dag_ingestion.py",
    "test_ui.py",
    "test_services.py",
    "test_serving_e2e.py",
    "test_airflow_bootstrap.py",
    "test_project.py",
    "test_backtest.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(SLOWEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def _service_missing(what: str, reason: str) -> None:
    message = f"{what} not reachable: {reason}"
    if Settings.from_env().require_services:
        pytest.fail(f"{message} (EOPT_REQUIRE_SERVICES=1 makes this a failure)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        _service_missing(
            f"PostgreSQL at {sa.make_url(POSTGRES_ADMIN_URL).render_as_string(True)}", str(exc.orig).strip()
        )
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """URL of a brand-new, empty PostgreSQL database, dropped after the test."""
    name = f"eopt_test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    url = sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each dialect the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'prices.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store_engine(store_url: str) -> Iterator[sa.Engine]:
    engine = create_store_engine(store_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(store_engine: sa.Engine) -> PriceStore:
    return PriceStore(store_engine)


@pytest.fixture
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _service_missing(f"Redis at {REDIS_TEST_URL}", str(exc))
    client.flushdb()
    yield REDIS_TEST_URL
    client.flushdb()
    client.close()


@pytest.fixture
def market_data_dir() -> Path:
    return PROJECT_ROOT / "data" / "markets"


# -- pricing sandbox ----------------------------------------------------------------------------

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "pricing_apis"


@pytest.fixture
def sandbox(market_data_dir):
    """The real sandbox server on a free loopback port, serving the bundled history."""
    from ingestion.sandbox.server import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(data_dir=market_data_dir)) as running:
        yield running


class RecordedSleeps(list):
    """A stand-in for time.sleep that records the waits instead of sleeping (retry tests)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> RecordedSleeps:
    return RecordedSleeps()
