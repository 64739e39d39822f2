"""Rows of the product's store past retention: quarantine rows, thinned forecasts; then ``VACUUM``.

Each deletion is one transaction per statement: an interrupted run leaves the rows of that
statement in place, and the next run deletes them. Bytes of rows are estimates (the text the
rows hold, plus ``ROW_OVERHEAD`` each); the store's files shrink only after ``vacuum_stores``.

Never touched here: ``electricity_prices``, ``market_exogenous``, ``model_promotions``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from retention.removals import StepReport
from storage.schema import forecasts, price_quarantine

# Per-row bytes beyond the text columns (timestamps, numbers, keys, the database's row header):
# an estimate for reports, not a measurement of the file.
ROW_OVERHEAD = 64
FORECAST_ROW_BYTES = 128

# Tables whose rows retention deletes: ``vacuum_stores`` reclaims their space.
TRIMMED_TABLES = ("price_quarantine", "forecasts")


def _stamp(value: pd.Timestamp) -> object:
    return pd.Timestamp(value).to_pydatetime()


def kept_payload_refs(engine: sa.Engine, cutoff: pd.Timestamp) -> list[str]:
    """``payload_ref`` of every quarantine row that retention keeps (last seen at or after ``cutoff``)."""
    t = price_quarantine
    query = sa.select(t.c.payload_ref).where(t.c.payload_ref.is_not(None), t.c.last_seen_at >= _stamp(cutoff))
    with engine.connect() as conn:
        return [str(ref) for ref in conn.execute(query).scalars()]


def remove_quarantine_rows(engine: sa.Engine, cutoff: pd.Timestamp, *, dry_run: bool) -> StepReport:
    """Quarantine rows last seen before ``cutoff``."""
    report = StepReport("remove_quarantine_rows", dry_run)
    t = price_quarantine
    old = t.c.last_seen_at < _stamp(cutoff)
    raw_value, reason, payload_ref = (
        sa.func.coalesce(sa.func.length(c), 0) for c in (t.c.raw_value, t.c.reason, t.c.payload_ref)
    )
    text_bytes = raw_value + reason + payload_ref
    query = sa.select(t.c.id, t.c.source, t.c.region, t.c.last_seen_at, text_bytes).where(old).order_by(t.c.id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    for row_id, source, region, last_seen, size in rows:
        seen = pd.Timestamp(last_seen)
        report.add(
            f"quarantine row {row_id} ({source} {region or '-'}, last seen {seen:%Y-%m-%d %H:%M})",
            int(size) + ROW_OVERHEAD,
            rows=1,
        )
    if not dry_run and rows:  # the listed rows: a row seen again meanwhile is no longer old, and stays
        with engine.begin() as conn:
            conn.execute(sa.delete(t).where(old))
    return report.logged()


def remove_hourly_forecasts(engine: sa.Engine, cutoff: pd.Timestamp, *, dry_run: bool) -> StepReport:
    """For target hours before ``cutoff``, every forecast issue but the day-ahead one: the issue
    made furthest ahead of that hour (the earliest ``issued_at``), kept one per region and hour."""
    report = StepReport("remove_hourly_forecasts", dry_run)
    f = forecasts
    earlier = forecasts.alias("earlier")
    superseded = sa.and_(
        f.c.target_ts < _stamp(cutoff),
        sa.exists().where(
            earlier.c.region == f.c.region,
            earlier.c.target_ts == f.c.target_ts,
            earlier.c.issued_at < f.c.issued_at,
        ),
    )
    query = (
        sa.select(f.c.region, f.c.issued_at, sa.func.count())
        .where(superseded)
        .group_by(f.c.region, f.c.issued_at)
        .order_by(f.c.region, f.c.issued_at)
    )
    with engine.connect() as conn:
        groups = conn.execute(query).all()
    for region, issued_at, hours in groups:
        report.add(
            f"forecast {region} issued {pd.Timestamp(issued_at):%Y-%m-%d %H:%M}: {hours} hour(s) superseded by "
            "an earlier issue",
            int(hours) * FORECAST_ROW_BYTES,
            rows=int(hours),
        )
    if not dry_run and groups:
        for region in sorted({g[0] for g in groups}):
            with engine.begin() as conn:
                conn.execute(sa.delete(f).where(f.c.region == region, superseded))
    return report.logged()


def database_bytes(engine: sa.Engine, tables: tuple[str, ...] = TRIMMED_TABLES) -> int:
    """The store's size on disk: the SQLite file, or the PostgreSQL tables' total relation size."""
    if engine.dialect.name == "sqlite":  # the database file and its write-ahead log
        database = engine.url.database
        if not database:
            return 0
        return sum(p.stat().st_size for p in (Path(database), Path(f"{database}-wal")) if p.is_file())
    with engine.connect() as conn:
        return int(
            sum(conn.execute(sa.text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar_one() or 0 for t in tables)
        )


def checkpoint(engine: sa.Engine) -> None:
    """SQLite: write the write-ahead log into the database file and empty it (PostgreSQL: nothing to do)."""
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def vacuum(engine: sa.Engine, tables: tuple[str, ...] = TRIMMED_TABLES) -> None:
    """``VACUUM`` (SQLite: the whole file) or ``VACUUM ANALYZE`` of ``tables`` (PostgreSQL), outside a transaction."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # in WAL mode the file shrinks at the checkpoint
        else:
            preparer = engine.dialect.identifier_preparer
            for table in tables:
                conn.exec_driver_sql(f"VACUUM ANALYZE {preparer.quote(table)}")


def vacuum_stores(engines: dict[str, sa.Engine], *, dry_run: bool) -> StepReport:
    """``vacuum`` of each store (name -> engine: the product's store, an embedded MLflow database);
    each appears with the bytes the vacuum gave back."""
    report = StepReport("vacuum_stores", dry_run)
    for name, engine in engines.items():
        if dry_run:
            report.notes.append(f"would vacuum {name} ({database_bytes(engine)} bytes now)")
            continue
        checkpoint(engine)  # pages still in SQLite's write-ahead log are not free space: count them in the file
        before = database_bytes(engine)
        vacuum(engine)
        after = database_bytes(engine)
        report.notes.append(f"vacuumed {name}: {before} -> {after} bytes")
        if before > after:
            report.add(f"free space in {name}", before - after)
    return report.logged()
