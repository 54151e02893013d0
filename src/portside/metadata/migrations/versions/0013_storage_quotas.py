"""storage quotas: a quota per user or organization (null: the site's default)

Revision ID: 0013
Revises: 0012

Additive only: one nullable column. Usage is computed from the tables that already exist (manifest_references,
manifests, repositories, blobs; docs/lifecycle.md), so nothing is backfilled.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("storage_quota_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("storage_quota_bytes")
