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


# Compression of the hypertables' chunks older than this: after the daily maintenance has thinned
# old forecasts to their day-ahead issue (EOPT_RETENTION_FORECAST_HOURLY_DAYS, 14 by default), so
# its deletes meet uncompressed chunks. No retention (drop_chunks) policy: stored prices and the
# day-ahead forecasts are never dropped.
COMPRESS_AFTER = "30 days"
COMPRESS_SEGMENT_BY = {"electricity_prices": "region, source", "forecasts": "region"}


def compression_statements() -> list[str]:
    """The SQL that turns on compression of each hypertable and adds its compression policy."""
    statements = []
    for table, _ in HYPERTABLES:
        statements.append(
            f"ALTER TABLE {table} SET (timescaledb.compress, "
            f"timescaledb.compress_segmentby = '{COMPRESS_SEGMENT_BY[table]}')"
        )
        statements.append(
            f"SELECT add_compression_policy('{table}', INTERVAL '{COMPRESS_AFTER}', if_not_exists => TRUE)"
        )
    return statements


def enable_compression(conn: sa.Connection) -> list[str]:
    """``compression_statements`` run when the hypertables exist (TimescaleDB installed); returns what
    ran, nothing without the extension (plain PostgreSQL, SQLite)."""
    status = timescale_status(conn)
    missing = [table for table, _ in HYPERTABLES if table not in status.hypertables]
    if not status.installed or missing:
        if conn.dialect.name == "postgresql":
            log.info("TimescaleDB not installed (or %s not hypertables): no compression policies", ", ".join(missing))
        return []
    ran = compression_statements()
    for statement in ran:
        conn.execute(sa.text(statement))
    log.info("TimescaleDB compression policies added: chunks older than %s", COMPRESS_AFTER)
    return ran


def disable_compression(conn: sa.Connection) -> None:
    """The compression policies removed again (the downgrade of ``enable_compression``); compressed
    chunks stay compressed until decompressed by hand."""
    status = timescale_status(conn)
    if not status.installed:
        return
    for table, _ in HYPERTABLES:
        if table in status.hypertables:
            conn.execute(sa.text(f"SELECT remove_compression_policy('{table}', if_exists => TRUE)"))
