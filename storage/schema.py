"""Tables of the price and forecast store (DESIGN §3), identical on SQLite and PostgreSQL.

All timestamps are UTC. On PostgreSQL they are ``TIMESTAMPTZ``; on SQLite (which has no
time-zone type) they are stored as naive UTC and handed back tz-aware, so both dialects read
and write the same values. The Alembic migrations in ``storage/migrations`` create exactly
these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from core.members import MEMBER_COLUMNS
from core.quantiles import QUANTILE_COLUMNS

metadata = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """A timestamp that must be tz-aware UTC on the way in and comes back tz-aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive timestamp {value!r}: the store takes tz-aware UTC timestamps only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

electricity_prices = sa.Table(
    "electricity_prices",
    metadata,
    sa.Column("region", sa.String(16), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("ts", UTCDateTime(), nullable=False),
    sa.Column("price", sa.Float(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("unit", sa.String(8), nullable=False),
    sa.Column("resolution", sa.String(8), nullable=False),
    sa.Column("ingested_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("region", "source", "ts"),
    sa.CheckConstraint("length(region) BETWEEN 1 AND 16", name="region_length"),
    sa.CheckConstraint("length(source) BETWEEN 1 AND 32", name="source_length"),
    sa.CheckConstraint("length(currency) = 3", name="currency_iso4217"),
)

# Day-ahead exogenous forecasts (load, wind, generation) that arrive with the market history
# and that the models read at the forecast origin; long format so markets keep their own series.
market_exogenous = sa.Table(
    "market_exogenous",
    metadata,
    sa.Column("region", sa.String(16), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("ts", UTCDateTime(), nullable=False),
    sa.Column("variable", sa.String(64), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("ingested_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("region", "source", "ts", "variable"),
    sa.CheckConstraint("length(region) BETWEEN 1 AND 16", name="region_length"),
)

price_quarantine = sa.Table(
    "price_quarantine",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    # sha256 of (source, region, ts, reason, raw value), or of (source, region, ts, archived payload)
    # for a payload: quarantining the same row again adds no row, it counts a repeat.
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("region", sa.String(16), nullable=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("ts", UTCDateTime(), nullable=True),
    sa.Column("raw_value", sa.Text(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("payload_ref", sa.Text(), nullable=True),
    sa.Column("quarantined_at", UTCDateTime(), nullable=False),  # the first time
    # times quarantined again after the first (a task rerun that meets it again counts too)
    sa.Column("repeat_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("fingerprint"),
)

api_health = sa.Table(
    "api_health",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("endpoint", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("http_status", sa.Integer(), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=True),
    sa.Column("records", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("called_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("status IN ('ok', 'error', 'no_data')", name="status_known"),
    sa.Index("ix_api_health_source_called_at", "source", "called_at"),
)

forecasts = sa.Table(
    "forecasts",
    metadata,
    sa.Column("region", sa.String(16), nullable=False),
    sa.Column("issued_at", UTCDateTime(), nullable=False),
    sa.Column("target_ts", UTCDateTime(), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("yhat", sa.Float(), nullable=False),
    sa.Column("lower", sa.Float(), nullable=True),
    sa.Column("upper", sa.Float(), nullable=True),
    sa.Column("is_fallback", sa.Boolean(), nullable=False, server_default=sa.false()),
    # the quantiles (core.quantiles.QUANTILE_COLUMNS; migration 0006): NULL when the forecast has none
    *(sa.Column(column, sa.Float(), nullable=True) for column in QUANTILE_COLUMNS),
    # each member's own forecast (core.members.MEMBER_COLUMNS; migration 0007): NULL where it has none
    *(sa.Column(column, sa.Float(), nullable=True) for column in MEMBER_COLUMNS),
    sa.PrimaryKeyConstraint("region", "issued_at", "target_ts"),
)

quality_reports = sa.Table(
    "quality_reports",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("check_name", sa.String(64), nullable=False),
    # "all" for checks that span regions, so the unique key below has no NULLs in it.
    sa.Column("region", sa.String(16), nullable=False, server_default="all"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("threshold", sa.Float(), nullable=True),
    sa.Column("details", sa.JSON(), nullable=True),
    sa.Column("report_path", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("run_id", "check_name", "region"),
    sa.CheckConstraint("status IN ('ok', 'warn', 'critical', 'skipped')", name="status_known"),
)

# Every promotion-gate decision and manual registry action, promoted or not, with its reasons.
model_promotions = sa.Table(
    "model_promotions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("region", sa.String(16), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("candidate_version", sa.String(32), nullable=False),
    sa.Column("champion_version", sa.String(32), nullable=True),  # the champion before the decision
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("promoted", sa.Boolean(), nullable=False),
    sa.Column("reasons", sa.JSON(), nullable=False),
    sa.Column("metrics", sa.JSON(), nullable=True),  # candidate, champion and naive on the same hours
    sa.Column("mape_threshold", sa.Float(), nullable=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("decided_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("action IN ('gate', 'manual', 'rollback')", name="action_known"),
    sa.Index("ix_model_promotions_region_decided_at", "region", "decided_at"),
)

# What each maintenance step removed (or, in a dry run, would have): the exporter's source for
# the time of each step's last success and its bytes.
maintenance_runs = sa.Table(
    "maintenance_runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("step", sa.String(64), nullable=False),
    sa.Column("dry_run", sa.Boolean(), nullable=False),
    sa.Column("items", sa.Integer(), nullable=False),
    sa.Column("bytes", sa.BigInteger(), nullable=False),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Index("ix_maintenance_runs_step_finished_at", "step", "finished_at"),
)

# Tables that become TimescaleDB hypertables when the extension is present: (table, time column).
HYPERTABLES: tuple[tuple[str, str], ...] = (("electricity_prices", "ts"), ("forecasts", "target_ts"))
