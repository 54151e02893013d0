"""an index for listing a package's versions newest first

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_manifests_listing", "manifests", ["repository_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_manifests_listing", "manifests")
