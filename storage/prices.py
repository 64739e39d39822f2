"""The price store: validated, idempotent writes and tz-aware UTC reads of prices and exogenous series."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from storage.database import StorageError, require_current_schema, safe_url, store_transaction
from storage.schema import electricity_prices, market_exogenous
from storage.upsert import EMPTY, UpsertResult, upsert_frame

PRICE_COLUMNS = ("region", "source", "ts", "price", "currency", "unit", "resolution")

# Which source's price stands for a region's hour when several have one: wholesale day-ahead
# sources first (ENTSO-E, IEA, the bundled market history), retail tariffs last (Flatpeak,
# OpenEI, NREL), since a retail price includes network charges and taxes.
SOURCE_PRIORITY = ("entsoe", "iea", "epf-history", "flatpeak", "openei", "nrel")
EXOGENOUS_COLUMNS = ("region", "source", "ts", "variable", "value")


class BatchRejected(StorageError):
    """A batch handed to the store breaks its contract; nothing of it was written."""


@dataclass(frozen=True)
class HistoryWriteResult:
    prices: UpsertResult
    exogenous: UpsertResult


def _check_utc(frame: pd.DataFrame, column: str, what: str) -> None:
    dtype = frame[column].dtype
    if not isinstance(dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(dtype):
            raise BatchRejected(
                f"{what}: column {column!r} holds naive timestamps (first: {frame[column].iloc[0]}); "
                "the store takes UTC only: localize with .dt.tz_localize(<market zone>).dt.tz_convert('UTC')"
            )
        raise BatchRejected(f"{what}: column {column!r} is {dtype}, not tz-aware UTC timestamps")
    if str(dtype.tz) not in ("UTC", "utc"):
        raise BatchRejected(
            f"{what}: column {column!r} is in time zone {dtype.tz}, not UTC; convert with .dt.tz_convert('UTC')"
        )


def _require_columns(frame: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise BatchRejected(f"{what}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}")


def _require_finite(frame: pd.DataFrame, column: str, what: str) -> None:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=float))
    if bad.any():
        first = frame.loc[bad].iloc[0]
        raise BatchRejected(
            f"{what}: {int(bad.sum())} row(s) have a missing or non-numeric {column} "
            f"(first: region={first.get('region')}, ts={first.get('ts')}, {column}={first[column]!r}); "
            "quarantine them before storing"
        )


def _require_unique(frame: pd.DataFrame, key: tuple[str, ...], what: str) -> None:
    dupes = frame.duplicated(list(key), keep=False)
    if dupes.any():
        first = frame.loc[dupes, list(key)].iloc[0].to_dict()
        raise BatchRejected(
            f"{what}: {int(dupes.sum())} rows share a key {key} (first: {first}); deduplicate before storing"
        )


def normalize_prices(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a price batch against the store's contract and return it in the table's shape."""
    what = "price batch"
    _require_columns(frame, PRICE_COLUMNS[:-1], what)
    out = frame.loc[:, [c for c in PRICE_COLUMNS if c in frame.columns]].copy()
    if "resolution" not in out.columns:
        out["resolution"] = "PT60M"
    _check_utc(out, "ts", what)
    _require_finite(out, "price", what)
    out["price"] = out["price"].astype(float)
    _require_unique(out, ("region", "source", "ts"), what)
    return out


def normalize_exogenous(frame: pd.DataFrame) -> pd.DataFrame:
    what = "exogenous batch"
    _require_columns(frame, EXOGENOUS_COLUMNS, what)
    out = frame.loc[:, list(EXOGENOUS_COLUMNS)].copy()
    _check_utc(out, "ts", what)
    _require_finite(out, "value", what)
    out["value"] = out["value"].astype(float)
    _require_unique(out, ("region", "source", "ts", "variable"), what)
    return out


def _stamp(frame: pd.DataFrame, now: datetime) -> pd.DataFrame:
    frame = frame.copy()
    frame["ingested_at"] = pd.Timestamp(now).tz_convert("UTC")
    frame["ingested_at"] = frame["ingested_at"].astype("datetime64[us, UTC]")
    return frame


def _window(
    query: sa.Select, table: sa.Table, region: str, start: datetime | None, end: datetime | None, source: str | None
) -> sa.Select:
    """A region's rows with ``start <= ts < end`` (open where None), optionally of one source."""
    query = query.where(table.c.region == region)
    if source is not None:
        query = query.where(table.c.source == source)
    if start is not None:
        query = query.where(table.c.ts >= start)
    if end is not None:
        query = query.where(table.c.ts < end)
    return query


def _utc_stamp(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _between(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    return frame[(frame["ts"] >= pd.Timestamp(start)) & (frame["ts"] < pd.Timestamp(end))]


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """One price per hour: the highest-priority source's (``SOURCE_PRIORITY``)."""
    rank = frame["source"].map({s: i for i, s in enumerate(SOURCE_PRIORITY)}).fillna(len(SOURCE_PRIORITY))
    frame = frame.assign(rank=rank).sort_values(["ts", "rank"], kind="stable")
    return frame.drop_duplicates("ts", keep="first").drop(columns="rank").reset_index(drop=True)


def _wide(long: pd.DataFrame) -> pd.DataFrame:
    """Long exogenous rows (ts, variable, value, source) wide, one column per variable, the
    highest-priority source's value standing for each hour (``SOURCE_PRIORITY``)."""
    rank = long["source"].map({s: i for i, s in enumerate(SOURCE_PRIORITY)}).fillna(len(SOURCE_PRIORITY))
    long = long.assign(rank=rank).sort_values(["ts", "variable", "rank"], kind="stable")
    long = long.drop_duplicates(["ts", "variable"], keep="first")
    wide = long.pivot_table(index="ts", columns="variable", values="value", aggfunc="first").sort_index()
    wide.columns.name = None
    return wide


class PriceStore:
    """Prices and day-ahead exogenous forecasts per region, on SQLite or PostgreSQL."""

    def __init__(self, engine: sa.Engine, *, check_schema: bool = True) -> None:
        self.engine = engine
        if check_schema:
            require_current_schema(engine)

    def __repr__(self) -> str:
        return f"PriceStore({safe_url(self.engine.url)})"

    # -- writes ---------------------------------------------------------------------------
    def upsert_prices(self, frame: pd.DataFrame) -> UpsertResult:
        return self.upsert_history(frame, None).prices

    def upsert_history(self, prices: pd.DataFrame | None, exogenous: pd.DataFrame | None) -> HistoryWriteResult:
        """Write prices and their exogenous series in ONE transaction: both or neither."""
        now = datetime.now(UTC)
        price_rows = _stamp(normalize_prices(prices), now) if prices is not None and len(prices) else None
        exog_rows = _stamp(normalize_exogenous(exogenous), now) if exogenous is not None and len(exogenous) else None
        rows = [
            f"{len(frame)} {kind} rows"
            for frame, kind in ((price_rows, "price"), (exog_rows, "exogenous"))
            if frame is not None
        ]
        with store_transaction(self.engine, f"batch upsert of {' and '.join(rows) or 'no rows'}") as conn:
            price_result = (
                upsert_frame(
                    conn,
                    electricity_prices,
                    price_rows,
                    ("region", "source", "ts"),
                    ("price", "currency", "unit", "resolution"),
                )
                if price_rows is not None
                else EMPTY
            )
            exog_result = (
                upsert_frame(conn, market_exogenous, exog_rows, ("region", "source", "ts", "variable"), ("value",))
                if exog_rows is not None
                else EMPTY
            )
        return HistoryWriteResult(price_result, exog_result)

    # -- reads ----------------------------------------------------------------------------
    def read_prices(
        self,
        region: str,
        start: datetime | None = None,
        end: datetime | None = None,
        source: str | None = None,
    ) -> pd.DataFrame:
        """Prices of a region in ``[start, end)``, ts ascending, ``ts`` tz-aware UTC."""
        t = electricity_prices
        query = _window(
            sa.select(t.c.region, t.c.source, t.c.ts, t.c.price, t.c.currency, t.c.unit, t.c.resolution),
            t,
            region,
            start,
            end,
            source,
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.ts, t.c.source)).all()
        frame = pd.DataFrame(rows, columns=["region", "source", "ts", "price", "currency", "unit", "resolution"])
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return frame

    def read_canonical(self, region: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """One price per hour for a region: the highest-priority source's (``SOURCE_PRIORITY``)."""
        return _canonical(self.read_prices(region, start, end))

    def read_canonical_windows(self, windows: Mapping[str, tuple[datetime, datetime]]) -> dict[str, pd.DataFrame]:
        """``read_canonical`` of several regions, each over its own ``[start, end)``, in one query."""
        if not windows:
            return {}
        t = electricity_prices
        query = sa.select(t.c.region, t.c.source, t.c.ts, t.c.price, t.c.currency, t.c.unit, t.c.resolution).where(
            t.c.region.in_(list(windows)),
            t.c.ts >= min(start for start, _ in windows.values()),
            t.c.ts < max(end for _, end in windows.values()),
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.region, t.c.ts, t.c.source)).all()
        frame = pd.DataFrame(rows, columns=["region", "source", "ts", "price", "currency", "unit", "resolution"])
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return {
            region: _canonical(_between(frame[frame["region"] == region], start, end))
            for region, (start, end) in windows.items()
        }

    def read_exogenous_windows(self, windows: Mapping[str, tuple[datetime, datetime]]) -> dict[str, pd.DataFrame]:
        """``read_exogenous`` of several regions, each over its own ``[start, end)``, in one query."""
        if not windows:
            return {}
        t = market_exogenous
        query = sa.select(t.c.region, t.c.ts, t.c.variable, t.c.value, t.c.source).where(
            t.c.region.in_(list(windows)),
            t.c.ts >= min(start for start, _ in windows.values()),
            t.c.ts < max(end for _, end in windows.values()),
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        long = pd.DataFrame(rows, columns=["region", "ts", "variable", "value", "source"])
        long["ts"] = pd.to_datetime(long["ts"], utc=True)
        return {
            region: _wide(_between(long[long["region"] == region], start, end).drop(columns="region"))
            for region, (start, end) in windows.items()
        }

    def newest_prices(
        self, regions: Sequence[str], before: datetime
    ) -> dict[str, tuple[pd.Timestamp, pd.Timestamp | None]]:
        """Per region that has prices: its newest price's hour, and its newest before ``before`` (None
        when all lie after), in one query. A region without any price is absent."""
        if not regions:
            return {}
        t = electricity_prices
        query = (
            sa.select(t.c.region, sa.func.max(t.c.ts), sa.func.max(sa.case((t.c.ts < before, t.c.ts))))
            .where(t.c.region.in_(list(regions)))
            .group_by(t.c.region)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {
            region: (_utc_stamp(newest), None if earlier is None else _utc_stamp(earlier))
            for region, newest, earlier in rows
            if newest is not None
        }

    def read_exogenous(
        self, region: str, start: datetime | None = None, end: datetime | None = None, source: str | None = None
    ) -> pd.DataFrame:
        """Exogenous series of a region, wide: one column per variable, indexed by UTC ``ts``.

        Where several sources hold a variable's hour (the bundled history and ENTSO-E's forecasts),
        the highest-priority source's value stands for it (``SOURCE_PRIORITY``), as for prices."""
        t = market_exogenous
        query = _window(sa.select(t.c.ts, t.c.variable, t.c.value, t.c.source), t, region, start, end, source)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        long = pd.DataFrame(rows, columns=["ts", "variable", "value", "source"])
        long["ts"] = pd.to_datetime(long["ts"], utc=True)
        return _wide(long)

    def count_prices(self, region: str | None = None, source: str | None = None) -> int:
        t = electricity_prices
        query = sa.select(sa.func.count()).select_from(t)
        if region is not None:
            query = query.where(t.c.region == region)
        if source is not None:
            query = query.where(t.c.source == source)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def latest_ts(self, region: str, source: str | None = None) -> pd.Timestamp | None:
        t = electricity_prices
        query = sa.select(sa.func.max(t.c.ts)).where(t.c.region == region)
        if source is not None:
            query = query.where(t.c.source == source)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else pd.Timestamp(value).tz_convert("UTC")
