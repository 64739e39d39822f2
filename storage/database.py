"""Engines and migrations for the store, with errors that say which database and what to do."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from core.settings import Stores
from storage.postgres_connection import ANSWER_GRACE_S, deadline_connection_class

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class StorageError(RuntimeError):
    """The store cannot do what was asked; the message names the database and the fix."""


def safe_url(url: str | sa.URL) -> str:
    """The URL with its password masked, for logs and error messages."""
    return sa.make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class StoreTimeouts:
    """How long a PostgreSQL store may take (``EOPT_DATABASE_*`` settings); SQLite waits on locks only."""

    connect_s: int
    statement_s: float
    idle_in_transaction_s: float
    keepalive_idle_s: int
    keepalive_interval_s: int
    keepalive_count: int

    @classmethod
    def from_settings(cls, stores: Stores) -> StoreTimeouts:
        return cls(
            connect_s=stores.database_connect_timeout_s,
            statement_s=stores.database_statement_timeout_s,
            idle_in_transaction_s=stores.database_idle_in_transaction_timeout_s,
            keepalive_idle_s=stores.database_keepalive_idle_s,
            keepalive_interval_s=stores.database_keepalive_interval_s,
            keepalive_count=stores.database_keepalive_count,
        )

    @property
    def answer_deadline_s(self) -> float:
        """How long the client waits for any answer: the server's own cancellation comes before."""
        return self.statement_s + ANSWER_GRACE_S

    def postgresql_connect_args(self, url_options: str | None) -> dict[str, Any]:
        """libpq parameters: the connect timeout, the server's timeouts (``options``, after any the URL
        sets), keepalives and ``tcp_user_timeout``; and the connection class with the answer deadline."""
        server = (
            f"-c statement_timeout={round(self.statement_s * 1000)} "
            f"-c idle_in_transaction_session_timeout={round(self.idle_in_transaction_s * 1000)}"
        )
        dead_peer_s = self.keepalive_idle_s + self.keepalive_interval_s * self.keepalive_count
        return {
            "connection_factory": deadline_connection_class(self.answer_deadline_s),
            "connect_timeout": self.connect_s,
            "options": f"{url_options} {server}" if url_options else server,
            "keepalives": 1,
            "keepalives_idle": self.keepalive_idle_s,
            "keepalives_interval": self.keepalive_interval_s,
            "keepalives_count": self.keepalive_count,
            "tcp_user_timeout": dead_peer_s * 1000,
        }


def store_engine(stores: Stores) -> sa.Engine:
    """The engine of the configured store (``EOPT_DATABASE_URL``) with its configured PostgreSQL budgets."""
    return create_store_engine(stores.database_url, StoreTimeouts.from_settings(stores))


def create_store_engine(url: str, timeouts: StoreTimeouts | None = None) -> sa.Engine:
    """An engine for the store; raises ``StorageError`` if the database cannot be reached.

    ``timeouts``: the PostgreSQL budgets (``StoreTimeouts.from_settings(settings.stores)``);
    without them, the settings' defaults.
    """
    timeouts = timeouts or StoreTimeouts.from_settings(Stores())
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
        url_options = parsed.query.get("options")
        connect_args = timeouts.postgresql_connect_args(url_options if isinstance(url_options, str) else None)
        if parsed.get_driver_name() != "psycopg2":  # e.g. psycopg 3: the libpq budgets, not the answer deadline
            del connect_args["connection_factory"]
        kwargs.update(pool_pre_ping=True, connect_args=connect_args)
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
            "and that the database server is running"
            + (
                f" and answers within EOPT_DATABASE_CONNECT_TIMEOUT_S={timeouts.connect_s} s."
                if parsed.get_backend_name() == "postgresql"
                else "."
            )
        ) from None
    return engine


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__


@contextmanager
def store_transaction(engine: sa.Engine, what: str) -> Iterator[sa.Connection]:
    """One transaction on the store whose failure says what became of it.

    A failure before ``COMMIT`` rolls back: nothing was written. A connection lost while
    committing (the server may have committed and its answer been lost) is reported as an
    unknown outcome, with the rerun as the remedy: the store's writes are idempotent upserts.
    ``what`` names the write, e.g. ``"batch upsert of 48 price rows"``.
    """
    # Raw COPY/executemany raise the driver's own errors; statements raise SQLAlchemy's.
    database_errors = (sa.exc.DBAPIError, engine.dialect.loaded_dbapi.Error)
    where = safe_url(engine.url)
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            yield conn
        except database_errors as exc:
            _roll_back(transaction, database_errors)
            raise StorageError(
                f"{what} into {where} failed and was rolled back, nothing was written: {_first_line(exc)}"
            ) from exc
        except BaseException:
            _roll_back(transaction, database_errors)
            raise
        try:
            transaction.commit()
        except database_errors as exc:
            if isinstance(exc, sa.exc.DBAPIError) and not exc.connection_invalidated:
                raise StorageError(
                    f"{what} into {where} was refused at COMMIT and rolled back, nothing was written: "
                    f"{_first_line(exc)}"
                ) from exc
            raise StorageError(
                f"{what} into {where}: the connection was lost while committing ({_first_line(exc)}), so the "
                "outcome is unknown: the server may have committed every row or none. A rerun is safe: the "
                "upsert is idempotent, so rerunning the step stores each row exactly once"
            ) from exc


def _roll_back(transaction: sa.RootTransaction, database_errors: tuple[type[BaseException], ...]) -> None:
    """Roll back what can be; on a lost connection the server rolls back by itself."""
    try:
        transaction.rollback()
    except database_errors as exc:
        log.debug("rollback after a failed write did not reach the store: %s", _first_line(exc))


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


def downgrade(engine: sa.Engine, revision: str) -> str | None:
    """Migrate the store back to ``revision`` (each migration's ``downgrade``); returns the revision it is at."""
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), revision)
    return current_revision(engine)


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
