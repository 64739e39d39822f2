"""Forecast quantiles: seven nullable float columns ``q05`` .. ``q95`` on ``forecasts``.

Columns, not one JSON value: the levels (0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95,
``core.quantiles.QUANTILE_LEVELS``) are a fixed part of the product's interface, like ``lower`` and
``upper`` beside them; as typed columns they read back as numbers on both dialects with no JSON
parsing (SQLite has no JSON type, PostgreSQL's JSONB would be a second code path), SQL can compare
and aggregate them (coverage and pinball loss over the served forecasts: ``WHERE price BETWEEN q25
AND q75``), NULL means "no quantile" exactly as for ``lower``/``upper`` (the seasonal-naive
fallback, and models trained before the quantiles), and TimescaleDB compresses each column on its
own. The cost, a migration to change the levels, is deliberate: a consumer reads them by name.
The names are written out here, not imported, so this revision stays what it was when the levels
change. Rows stored before this revision keep NULL quantiles. On a TimescaleDB hypertable with
compression (0005) adding and dropping nullable columns without a default is allowed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

QUANTILE_COLUMNS = ("q05", "q10", "q25", "q50", "q75", "q90", "q95")


def upgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        for column in QUANTILE_COLUMNS:
            batch.add_column(sa.Column(column, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        for column in reversed(QUANTILE_COLUMNS):
            batch.drop_column(column)
