"""TimescaleDB compression policies on the hypertables, only where the extension is installed.

On plain PostgreSQL and SQLite this revision changes nothing (``storage.timescale.enable_compression``
finds no hypertables). No retention policy: stored prices and day-ahead forecasts are never dropped.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""
from alembic import op

from storage.timescale import disable_compression, enable_compression

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    enable_compression(op.get_bind())


def downgrade() -> None:
    disable_compression(op.get_bind())
