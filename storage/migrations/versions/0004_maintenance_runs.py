"""Maintenance runs: what each maintenance step removed, and when it last succeeded.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "maintenance_runs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_runs")),
    )
    op.create_index("ix_maintenance_runs_step_finished_at", "maintenance_runs", ["step", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_maintenance_runs_step_finished_at", table_name="maintenance_runs")
    op.drop_table("maintenance_runs")
