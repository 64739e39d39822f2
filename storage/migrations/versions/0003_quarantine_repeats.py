"""Quarantine repeats: a row quarantined again counts a repeat (and when) instead of adding a row.

Payloads are archived by content hash from this revision on, so an identical payload has one
archive file and one quarantine row per source and region. Rows quarantined before start with
no repeat, last seen when first quarantined.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("price_quarantine") as batch:
        batch.add_column(sa.Column("repeat_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_seen_at", TS, nullable=True))
    op.execute("UPDATE price_quarantine SET last_seen_at = quarantined_at WHERE last_seen_at IS NULL")
    with op.batch_alter_table("price_quarantine") as batch:
        batch.alter_column("last_seen_at", existing_type=TS, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("price_quarantine") as batch:
        batch.drop_column("last_seen_at")
        batch.drop_column("repeat_count")
