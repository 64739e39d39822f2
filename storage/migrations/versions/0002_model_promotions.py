"""Promotion history: one row per promotion-gate decision, manual promotion and rollback.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_promotions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("candidate_version", sa.String(32), nullable=False),
        sa.Column("champion_version", sa.String(32), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("mape_threshold", sa.Float(), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_promotions")),
        sa.CheckConstraint("action IN ('gate', 'manual', 'rollback')", name=op.f("ck_model_promotions_action_known")),
    )
    op.create_index("ix_model_promotions_region_decided_at", "model_promotions", ["region", "decided_at"])


def downgrade() -> None:
    op.drop_index("ix_model_promotions_region_decided_at", table_name="model_promotions")
    op.drop_table("model_promotions")
