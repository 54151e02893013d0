"""upload state every replica can see: the running hash, the blob store's state, a writer's lease

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive only: a replica of the previous release keeps working on this schema.
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("hash_state", sa.LargeBinary()))
        batch.add_column(sa.Column("store_state", sa.Text()))
        batch.add_column(sa.Column("lease", sa.String(32)))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease")
        batch.drop_column("store_state")
        batch.drop_column("hash_state")
