"""Idempotent batch upserts that stay fast for multi-year history loads.

A batch is written in one transaction:

1. the rows go into a temporary staging table: ``COPY ... FROM STDIN`` on PostgreSQL,
   one ``executemany`` on SQLite (never row-by-row statements from Python);
2. one ``INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE ... WHERE <values differ>`` merges
   them, so a row already stored with the same values is not touched at all (its
   ``ingested_at`` stays) and re-running an interval changes nothing;
3. the counts of new and changed rows come back from the same statement (PostgreSQL) or from
   one anti-join on the staging table (SQLite).

Any error rolls the whole batch back: the target table is exactly as it was.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DateTime on SQLite


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    updated: int
    unchanged: int

    @property
    def written(self) -> int:
        return self.inserted + self.updated

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            self.inserted + other.inserted, self.updated + other.updated, self.unchanged + other.unchanged
        )


EMPTY = UpsertResult(0, 0, 0)


def upsert_frame(
    conn: sa.Connection,
    table: sa.Table,
    frame: pd.DataFrame,
    key: tuple[str, ...],
    compare: tuple[str, ...],
) -> UpsertResult:
    """Upsert ``frame`` (columns named as the table's) into ``table`` inside ``conn``'s transaction.

    ``key`` is the conflict key; ``compare`` the value columns whose change makes an update.
    Columns of ``frame`` that are neither are written on insert and refreshed on update.
    """
    if frame.empty:
        return EMPTY
    columns = tuple(frame.columns)
    stage = f"stage_{table.name}_{uuid.uuid4().hex[:8]}"
    if conn.dialect.name == "postgresql":
        return _upsert_postgresql(conn, table, frame, columns, key, compare, stage)
    return _upsert_sqlite(conn, table, frame, columns, key, compare, stage)


def _quoted(conn: sa.Connection, names: tuple[str, ...], prefix: str = "") -> str:
    q = conn.dialect.identifier_preparer.quote
    return ", ".join(f"{prefix}{q(n)}" for n in names)


def _merge_sql(
    conn: sa.Connection,
    table: sa.Table,
    stage: str,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    compare: tuple[str, ...],
) -> str:
    q = conn.dialect.identifier_preparer.quote
    target = q(table.name)
    refreshed = [c for c in columns if c not in key]
    distinct = " OR ".join(f"{target}.{q(c)} IS DISTINCT FROM excluded.{q(c)}" for c in compare)
    if conn.dialect.name == "sqlite":
        distinct = distinct.replace("IS DISTINCT FROM", "IS NOT")
    return (
        f"INSERT INTO {target} ({_quoted(conn, columns)}) "
        f"SELECT {_quoted(conn, columns)} FROM {stage} WHERE true "
        f"ON CONFLICT ({_quoted(conn, key)}) DO UPDATE SET "
        + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in refreshed)
        + f" WHERE {distinct}"
    )


def _upsert_postgresql(conn, table, frame, columns, key, compare, stage) -> UpsertResult:
    q = conn.dialect.identifier_preparer.quote
    conn.execute(sa.text(f"CREATE TEMP TABLE {stage} (LIKE {q(table.name)} INCLUDING DEFAULTS) ON COMMIT DROP"))
    copy_frame(conn, stage, frame)
    merge = _merge_sql(conn, table, stage, columns, key, compare)
    counts = conn.execute(
        sa.text(
            f"WITH merged AS ({merge} RETURNING (xmax = 0) AS inserted) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged"
        )
    ).one()
    inserted, updated = int(counts[0]), int(counts[1])
    conn.execute(sa.text(f"DROP TABLE {stage}"))
    return UpsertResult(inserted, updated, len(frame) - inserted - updated)


def copy_frame(conn: sa.Connection, table_name: str, frame: pd.DataFrame) -> None:
    """``COPY`` a frame into a PostgreSQL table through the connection's own transaction."""
    buffer = io.StringIO()
    _to_csv(frame).to_csv(buffer, index=False, header=False, quoting=csv.QUOTE_MINIMAL, na_rep="\\N")
    buffer.seek(0)
    q = conn.dialect.identifier_preparer.quote
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is None:  # only after the connection was invalidated or closed
        raise RuntimeError("copy_frame needs an open connection; this one was invalidated or closed")
    cursor = dbapi_connection.cursor()
    try:
        cursor.copy_expert(
            f"COPY {q(table_name)} ({_quoted(conn, tuple(frame.columns))}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
            buffer,
        )
    finally:
        cursor.close()


def _to_csv(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name, dtype in out.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
    return out


def _upsert_sqlite(conn, table, frame, columns, key, compare, stage) -> UpsertResult:
    q = conn.dialect.identifier_preparer.quote
    target = q(table.name)
    conn.execute(sa.text(f"CREATE TEMP TABLE {stage} AS SELECT {_quoted(conn, columns)} FROM {target} WHERE 0"))
    try:
        placeholders = ", ".join("?" for _ in columns)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.executemany(
                f"INSERT INTO {stage} ({_quoted(conn, columns)}) VALUES ({placeholders})", _sqlite_rows(frame)
            )
        finally:
            cursor.close()
        join = " AND ".join(f"t.{q(c)} = s.{q(c)}" for c in key)
        changed = " OR ".join(f"t.{q(c)} IS NOT s.{q(c)}" for c in compare)
        counts = conn.execute(
            sa.text(
                f"SELECT coalesce(sum(t.{q(key[0])} IS NULL), 0), "
                f"coalesce(sum(t.{q(key[0])} IS NOT NULL AND ({changed})), 0) "
                f"FROM {stage} s LEFT JOIN {target} t ON {join}"
            )
        ).one()
        conn.execute(sa.text(_merge_sql(conn, table, stage, columns, key, compare)))
    finally:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {stage}"))
    inserted, updated = int(counts[0]), int(counts[1])
    return UpsertResult(inserted, updated, len(frame) - inserted - updated)


def _sqlite_rows(frame: pd.DataFrame) -> list[tuple]:
    out = frame.copy()
    for name, dtype in out.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.strftime(SQLITE_TS_FORMAT)
        elif pd.api.types.is_bool_dtype(dtype):
            out[name] = out[name].astype(int)
    out = out.astype(object).where(pd.notna(out), None)
    return [tuple(_plain(v) for v in row) for row in out.itertuples(index=False, name=None)]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value
