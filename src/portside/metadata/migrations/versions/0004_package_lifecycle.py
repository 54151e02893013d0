"""package lifecycle: soft deletion, restore, download counts, labels

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("description", sa.String(512), nullable=True))
        batch_op.add_column(sa.Column("source_url", sa.String(2048), nullable=True))
        batch_op.add_column(sa.Column("licenses", sa.String(256), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("deleted_tags", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("downloads", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("description", sa.String(512), nullable=True))
        batch_op.add_column(sa.Column("source_url", sa.String(2048), nullable=True))
        batch_op.add_column(sa.Column("licenses", sa.String(256), nullable=True))
        batch_op.add_column(sa.Column("platform", sa.String(128), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("manifests", schema=None) as batch_op:
        for column in ("updated_at", "platform", "licenses", "source_url", "description", "downloads"):
            batch_op.drop_column(column)
        batch_op.drop_column("deleted_tags")
        batch_op.drop_column("deleted_at")
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        for column in ("updated_at", "licenses", "source_url", "description", "deleted_at"):
            batch_op.drop_column(column)
