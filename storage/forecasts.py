"""The forecast store: each issued 24-hour forecast per region, idempotent on (region, issued_at, target_ts).

Each hour carries its point
forecast ``yhat``, the interval ``lower``/``upper``, the quantiles ``q05`` .. ``q95``
(``core.quantiles``; NULL where the forecast has none: the seasonal-naive fallback, a model
trained before the quantiles) and each member's own forecast ``yhat_<member>`` (``core.members``;
NULL where the member gave none). A forecast is issued at the hour of its run (``issued_at``), so rerunning a run writes the same
keys: unchanged rows are not touched and the counts say so. Timestamps are tz-aware UTC on the
way in and out, as in the price store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core.members import MEMBER_COLUMNS
from core.quantiles import QUANTILE_COLUMNS
from storage.database import require_current_schema, safe_url, store_transaction
from storage.prices import BatchRejected, _check_utc, _require_columns, _require_unique
from storage.schema import forecasts
from storage.upsert import UpsertResult, upsert_frame

FORECAST_COLUMNS = (
    "region",
    "issued_at",
    "target_ts",
    "model_name",
    "model_version",
    "yhat",
    "lower",
    "upper",
    "is_fallback",
    *QUANTILE_COLUMNS,
    *MEMBER_COLUMNS,
)
FORECAST_KEY = ("region", "issued_at", "target_ts")
FORECAST_VALUES = tuple(c for c in FORECAST_COLUMNS if c not in FORECAST_KEY)
# may be absent from a batch (a forecast without quantiles or members): stored as NULL
OPTIONAL_COLUMNS = (*QUANTILE_COLUMNS, *MEMBER_COLUMNS)


def normalize_forecasts(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a forecast batch against the store's contract and return it in the table's shape."""
    what = "forecast batch"
    _require_columns(frame, tuple(c for c in FORECAST_COLUMNS if c not in OPTIONAL_COLUMNS), what)
    out = frame.reindex(columns=list(FORECAST_COLUMNS)).copy()
    for column in ("issued_at", "target_ts"):
        _check_utc(out, column, what)
        out[column] = out[column].astype("datetime64[us, UTC]")
    yhat = pd.to_numeric(out["yhat"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(yhat)
    if bad.any():
        first = out.loc[bad].iloc[0]
        raise BatchRejected(
            f"{what}: {int(bad.sum())} forecast hour(s) have no finite yhat (first: region={first['region']}, "
            f"target hour {first['target_ts']}, issued {first['issued_at']}, model {first['model_name']} "
            f"version {first['model_version']}, yhat={first['yhat']!r}); a forecast is stored only when every hour is a number"
        )
    out["yhat"] = yhat
    for column in ("lower", "upper", *QUANTILE_COLUMNS, *MEMBER_COLUMNS):
        values = pd.to_numeric(out[column], errors="coerce").astype(float)
        # a bound, quantile or member forecast that is not a number is unknown: NULL (NaN here), never inf in the table
        out[column] = values.where(np.isfinite(values))
    quantiles = out[list(QUANTILE_COLUMNS)].to_numpy(dtype=float)
    crossing = (np.diff(quantiles, axis=1) < 0).any(axis=1)  # NaN compares False: a missing quantile crosses nothing
    if crossing.any():
        first = out.loc[crossing].iloc[0]
        raise BatchRejected(
            f"{what}: {int(crossing.sum())} forecast hour(s) have quantiles that decrease with the level (first: "
            f"region={first['region']}, target hour {first['target_ts']}, model {first['model_name']} version "
            f"{first['model_version']}: {', '.join(f'{c}={first[c]:.4g}' for c in QUANTILE_COLUMNS)}); "
            "quantiles are stored only monotone"
        )
    out["is_fallback"] = out["is_fallback"].astype(bool)
    out["model_name"] = out["model_name"].astype(str)
    out["model_version"] = out["model_version"].astype(str)
    _require_unique(out, FORECAST_KEY, what)
    return out


class ForecastStore:
    """Issued forecasts per region, on SQLite or PostgreSQL."""

    def __init__(self, engine: sa.Engine, *, check_schema: bool = True) -> None:
        self.engine = engine
        if check_schema:
            require_current_schema(engine)

    def __repr__(self) -> str:
        return f"ForecastStore({safe_url(self.engine.url)})"

    def upsert_forecasts(self, frame: pd.DataFrame) -> UpsertResult:
        """Write a batch in one transaction; a row already stored with the same values is left alone."""
        rows = normalize_forecasts(frame)
        with store_transaction(self.engine, f"forecast upsert of {len(rows)} rows") as conn:
            return upsert_frame(conn, forecasts, rows, FORECAST_KEY, FORECAST_VALUES)

    def latest_issue(self, region: str) -> pd.Timestamp | None:
        """When the region's newest stored forecast was issued (None when it has none)."""
        t = forecasts
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(t.c.issued_at)).where(t.c.region == region)).scalar()
        return None if value is None else pd.Timestamp(value).tz_convert("UTC")

    def read_forecasts(self, region: str, issued_at: pd.Timestamp | None = None) -> pd.DataFrame:
        """The 24 hours of one issue of a region's forecast (its newest when ``issued_at`` is None), by target hour."""
        if issued_at is None:
            issued_at = self.latest_issue(region)
        t = forecasts
        rows: Sequence[Any] = []
        if issued_at is not None:
            query = (
                sa.select(*(t.c[c] for c in FORECAST_COLUMNS))
                .where(t.c.region == region, t.c.issued_at == pd.Timestamp(issued_at).to_pydatetime())
                .order_by(t.c.target_ts)
            )
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        return _typed(rows)

    def read_newest(self, regions: Sequence[str]) -> dict[str, pd.DataFrame]:
        """Each region's newest issue (``read_forecasts(region)``) in one query; a region without a
        stored forecast is absent."""
        if not regions:
            return {}
        t = forecasts
        newest = (
            sa.select(t.c.region, sa.func.max(t.c.issued_at).label("issued_at"))
            .where(t.c.region.in_(list(regions)))
            .group_by(t.c.region)
            .subquery()
        )
        query = (
            sa.select(*(t.c[c] for c in FORECAST_COLUMNS))
            .join(newest, sa.and_(t.c.region == newest.c.region, t.c.issued_at == newest.c.issued_at))
            .order_by(t.c.region, t.c.target_ts)
        )
        with self.engine.connect() as conn:
            frame = _typed(conn.execute(query).all())
        return {str(region): part.reset_index(drop=True) for region, part in frame.groupby("region", sort=False)}

    def count_forecasts(self, region: str | None = None) -> int:
        t = forecasts
        query = sa.select(sa.func.count()).select_from(t)
        if region is not None:
            query = query.where(t.c.region == region)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _typed(rows: Sequence[Any]) -> pd.DataFrame:
    """Forecast rows as the store hands them out: UTC timestamps, floats (NaN for NULL), bool ``is_fallback``."""
    frame = pd.DataFrame(rows, columns=list(FORECAST_COLUMNS))
    for column in ("issued_at", "target_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    for column in ("yhat", "lower", "upper", *QUANTILE_COLUMNS, *MEMBER_COLUMNS):
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    frame["is_fallback"] = frame["is_fallback"].astype(bool)
    return frame
