"""background chores claimed once across a fleet

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from portside.metadata.schema import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chores",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_run_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("chores")
