"""Initial schema: prices, exogenous forecasts, quarantine, API health, forecasts, quality reports.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

from storage.timescale import enable_hypertables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "electricity_prices",
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("resolution", sa.String(8), nullable=False),
        sa.Column("ingested_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("region", "source", "ts", name=op.f("pk_electricity_prices")),
        sa.CheckConstraint("length(region) BETWEEN 1 AND 16", name=op.f("ck_electricity_prices_region_length")),
        sa.CheckConstraint("length(source) BETWEEN 1 AND 32", name=op.f("ck_electricity_prices_source_length")),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_electricity_prices_currency_iso4217")),
    )
    op.create_table(
        "market_exogenous",
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("variable", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ingested_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("region", "source", "ts", "variable", name=op.f("pk_market_exogenous")),
        sa.CheckConstraint("length(region) BETWEEN 1 AND 16", name=op.f("ck_market_exogenous_region_length")),
    )
    op.create_table(
        "price_quarantine",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("region", sa.String(16), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("ts", TS, nullable=True),
        sa.Column("raw_value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload_ref", sa.Text(), nullable=True),
        sa.Column("quarantined_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_quarantine")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_price_quarantine_fingerprint")),
    )
    op.create_table(
        "api_health",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("records", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("called_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_health")),
        sa.CheckConstraint("status IN ('ok', 'error', 'no_data')", name=op.f("ck_api_health_status_known")),
    )
    op.create_index(op.f("ix_api_health_source_called_at"), "api_health", ["source", "called_at"])
    op.create_table(
        "forecasts",
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("target_ts", TS, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("yhat", sa.Float(), nullable=False),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.Column("is_fallback", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("region", "issued_at", "target_ts", name=op.f("pk_forecasts")),
    )
    op.create_table(
        "quality_reports",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("check_name", sa.String(64), nullable=False),
        sa.Column("region", sa.String(16), nullable=False, server_default="all"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("report_path", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_reports")),
        sa.UniqueConstraint("run_id", "check_name", "region", name=op.f("uq_quality_reports_run_id")),
        sa.CheckConstraint(
            "status IN ('ok', 'warn', 'critical', 'skipped')", name=op.f("ck_quality_reports_status_known")
        ),
    )
    enable_hypertables(op.get_bind())


def downgrade() -> None:
    for table in ("quality_reports", "forecasts", "api_health", "price_quarantine", "market_exogenous", "electricity_prices"):
        op.drop_table(table)
