"""Member forecasts: four nullable float columns ``yhat_xgboost`` .. ``yhat_lear`` on ``forecasts``.

Each issued hour keeps what every member of the ensemble forecast beside the ensemble's ``yhat``
(``core.members.MEMBER_COLUMNS``), so a retraining can weigh the members by the forecasts they
served rather than by a validation window some of them stopped early on, and a person can see
which member carried a bad day. Typed columns for the same reasons as the quantiles' (0006): both
dialects read numbers back, SQL aggregates them, NULL means "no forecast" (the seasonal-naive
fallback, a member a model does not have, LEAR from an origin that is not a local midnight), and
TimescaleDB compresses each on its own. The names are written out here, not imported, so this
revision stays what it was if the members change. Rows stored before it keep NULL members.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MEMBER_COLUMNS = ("yhat_xgboost", "yhat_lightgbm", "yhat_cnn_lstm", "yhat_lear")


def upgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        for column in MEMBER_COLUMNS:
            batch.add_column(sa.Column(column, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        for column in reversed(MEMBER_COLUMNS):
            batch.drop_column(column)
