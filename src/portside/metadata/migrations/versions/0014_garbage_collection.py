"""online garbage collection: when a blob was last wanted, and the journal of blobs being deleted

Revision ID: 0014
Revises: 0013

`blobs.seen_at`: when the blob was last uploaded or mounted (NULL: its `created_at`); garbage
collection leaves a blob alone for `gc_grace_seconds` after it, so the blobs of a push in progress,
uploaded before the manifest that references them, are never taken. Permanent deletion sets it to
the epoch for the blobs it frees, so that the next pass takes them at once.

`blob_deletions`: a blob whose row a pass removed, until its bytes are deleted from the store; a
pass killed in between leaves the record, and the next pass finishes it.

Rolling upgrade: additive. A replica of the previous release neither collects nor refreshes
`seen_at`; run `portside gc` (or let the background pass run) only once every replica is upgraded.
"""

import sqlalchemy as sa
from alembic import op

from portside.metadata.schema import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("seen_at", UtcDateTime()))
    op.create_table(
        "blob_deletions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(140), nullable=False),
        sa.Column("location", sa.String(255)),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("blob_deletions")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("seen_at")
