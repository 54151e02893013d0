"""where a blob's bytes are when not at its content address

Revision ID: 0011
Revises: 0010

Blob stores may keep a blob elsewhere than at its content address: S3 completes a chunked upload's
multipart upload where its parts went (chunked/<upload id>) instead of copying it. NULL, what every
existing row gets, is the content address, so the filesystem driver and every blob written before
are read as they were.

Rolling upgrade: additive, so a replica of the previous release keeps working on this schema, but
it does not know the column: it cannot read a blob that this release's chunked uploads wrote on S3
(a 404 from storage, reported as missing bytes). Upgrade every replica before pushing through the new
one, or expect those pulls to fail on old replicas until they are upgraded. Downgrading drops the
column and so loses where those blobs are: do not downgrade once chunked pushes went to S3.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("location", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("location")
