"""retention policies: per-package policies and per-owner defaults, and when a version was last pulled

`manifests.last_pulled_at` is written with the download counts (every `download_flush_seconds`),
so that a policy can keep what was pulled recently. Additive: a replica of the previous release
neither reads the policies nor writes the column (its pulls do not count as "pulled recently").

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

from portside.metadata.schema import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id", ondelete="CASCADE"), unique=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), unique=True),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.CheckConstraint("(repository_id IS NULL) <> (owner_id IS NULL)", name="ck_retention_policies_one_subject"),
    )
    with op.batch_alter_table("manifests") as batch:
        batch.add_column(sa.Column("last_pulled_at", UtcDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("manifests") as batch:
        batch.drop_column("last_pulled_at")
    op.drop_table("retention_policies")
