"""Engines and migrations for the store, with errors that say which database and what to do."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class StorageError(RuntimeError):
    """The store cannot do what was asked; the message names the database and the fix."""


def safe_url(url: str | sa.URL) -> str:
    """The URL with its password masked, for logs and error messages."""
    return sa.make_url(url).render_as_string(hide_password=True)


def create_store_engine(url: str) -> sa.Engine:
    """An engine for the store; raises ``StorageError`` if the database cannot be reached."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StorageError(
            f"EOPT_DATABASE_URL {url!r} is not a database URL ({exc}); "
            "use e.g. sqlite:////abs/path/prices.db or postgresql+psycopg2://user@host:5432/db"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StorageError(f"unsupported store {safe_url(parsed)}: the store runs on SQLite or PostgreSQL/TimescaleDB")
    kwargs: dict = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg2")
        kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": 10})
    engine = sa.create_engine(parsed, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StorageError(
            f"cannot reach the store at {safe_url(parsed)}: {reason}. "
            "Check EOPT_DATABASE_URL (or the timescaledb_default connection in Airflow) "
            "and that the database server is running."
        ) from None
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _alembic_config(conn: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> str:
    """Migrate the store to ``revision``; returns the revision it is at afterwards."""
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)
    reached = current_revision(engine)
    if reached is None:  # alembic leaves no revision only when there are no migrations to apply
        raise StorageError(
            f"upgrade to {revision!r} left the store without a schema revision; are the migrations there?"
        )
    return reached


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration head in {MIGRATIONS_DIR}: the package is incomplete; reinstall it")
    return head


def require_current_schema(engine: sa.Engine) -> None:
    """Fail with the fix spelled out when the store has not been migrated to the code's schema."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        raise StorageError(
            f"the store at {safe_url(engine.url)} is at schema revision {current or 'none'}, "
            f"the code needs {head}: run `eopt db upgrade`"
        )
