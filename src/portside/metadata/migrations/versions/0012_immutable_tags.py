"""immutable tags: per-package patterns and per-owner defaults

A table of its own, so that the migration only adds (a release before it keeps working on the
new schema) and stands apart from other migrations of the same release.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from portside.metadata.schema import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "immutable_tags",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id", ondelete="CASCADE"), unique=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), unique=True),
        sa.Column("patterns", sa.Text, nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.CheckConstraint("(repository_id IS NULL) <> (owner_id IS NULL)", name="ck_immutable_tags_one_subject"),
    )


def downgrade() -> None:
    op.drop_table("immutable_tags")
