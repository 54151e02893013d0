"""names sort by bytes on PostgreSQL too: COLLATE "C" on repository and tag names

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite compares text as bytes already (BINARY); PostgreSQL's default collation follows the
    # locale, which would make keyset pages of tags and the catalog differ from SQLite's.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute('ALTER TABLE repositories ALTER COLUMN name TYPE VARCHAR(255) COLLATE "C"')
    op.execute('ALTER TABLE tags ALTER COLUMN name TYPE VARCHAR(128) COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute('ALTER TABLE tags ALTER COLUMN name TYPE VARCHAR(128) COLLATE "default"')
    op.execute('ALTER TABLE repositories ALTER COLUMN name TYPE VARCHAR(255) COLLATE "default"')
