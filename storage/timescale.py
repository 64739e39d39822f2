"""TimescaleDB detection: hypertables when the extension can be had, plain tables otherwise."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa

from storage.schema import HYPERTABLES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimescaleStatus:
    available: bool  # the server offers the extension (pg_available_extensions)
    installed: bool  # CREATE EXTENSION has run in this database
    hypertables: tuple[str, ...]  # tables that are hypertables now


def timescale_status(conn: sa.Connection) -> TimescaleStatus:
    if conn.dialect.name != "postgresql":
        return TimescaleStatus(False, False, ())
    available = bool(conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar())
    installed = bool(conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar())
    hypertables: tuple[str, ...] = ()
    if installed:
        rows = conn.execute(sa.text("SELECT hypertable_name FROM timescaledb_information.hypertables")).scalars()
        hypertables = tuple(sorted(rows))
    return TimescaleStatus(available, installed, hypertables)


def enable_hypertables(conn: sa.Connection) -> TimescaleStatus:
    """Turn the time-series tables into hypertables if, and only if, TimescaleDB is offered."""
    status = timescale_status(conn)
    if not status.available:
        if conn.dialect.name == "postgresql":
            log.info("TimescaleDB extension not available on this server: time-series tables stay plain tables")
        return status
    conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    for table, time_column in HYPERTABLES:
        conn.execute(
            sa.text("SELECT create_hypertable(:table, :column, if_not_exists => TRUE, migrate_data => TRUE)"),
            {"table": table, "column": time_column},
        )
        log.info("%s is a TimescaleDB hypertable on %s", table, time_column)
    return timescale_status(conn)
