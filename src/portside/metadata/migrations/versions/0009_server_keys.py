"""signing and cookie keys shared by every replica through the database

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from portside.metadata.schema import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("material", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("retired_at", UtcDateTime()),
    )
    op.create_index("ix_server_keys_purpose", "server_keys", ["purpose"])


def downgrade() -> None:
    op.drop_table("server_keys")
