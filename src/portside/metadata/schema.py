"""The metadata schema: the source of truth for what exists in the registry.

Manifests keep their payload here (they are small), so a manifest GET costs one indexed query.
References from manifests to blobs and to child manifests are recorded so that garbage
collection, quotas and "who uses this?" are queries rather than storage walks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in UTC on every database: stored with its time zone where the database keeps one
    (PostgreSQL's timestamptz), read back aware everywhere (SQLite returns naive datetimes, so one
    place attaches UTC instead of every reader fixing it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use portside.clock.now() or an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def byte_ordered_name(length: int) -> String:
    """A name that sorts by bytes on every database, so keyset pages (tags, catalog) are identical
    on SQLite (BINARY collation) and PostgreSQL (whose default collation is the locale's)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")  # type: ignore[return-value]


NAME_LENGTH = 255
DIGEST_LENGTH = 140  # "sha512:" + 128 hex digits
MEDIA_TYPE_LENGTH = 255
LOCATION_LENGTH = 255

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", byte_ordered_name(NAME_LENGTH), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    # The package model: OWNER/NAME, owned by a user or an organization, private on first push.
    Column("owner_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE")),
    Column("visibility", String(16), nullable=False, default="private", server_default="private"),
    # Bumped by every change to the repository's tags: workers cache tag lists per version.
    Column("tags_version", BigInteger, nullable=False, default=0, server_default="0"),
    # A deleted package keeps its row for the restore window, renamed to NAME@ID so that the name
    # is free for a new package and every lookup by name passes it by.
    Column("deleted_at", UtcDateTime()),
    # ghcr.io's labels (org.opencontainers.image.*), from the most recent push that had them.
    Column("description", String(512)),
    Column("source_url", String(2048)),
    Column("licenses", String(256)),
    Column("updated_at", UtcDateTime()),
    Index("ix_repositories_owner_id", "owner_id"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(DIGEST_LENGTH), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Where the blob store keeps the bytes when not at the content address (NULL): what its commit
    # returned, e.g. S3's chunked/<upload id> for a chunked upload completed without a copy.
    Column("location", String(LOCATION_LENGTH)),
    # When the blob was last uploaded or mounted (NULL: created_at); garbage collection waits
    # gc_grace_seconds after it (migration 0014 says why).
    Column("seen_at", UtcDateTime()),
)

# Blobs whose rows garbage collection removed, until their bytes are gone from the store too.
blob_deletions = Table(
    "blob_deletions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(DIGEST_LENGTH), nullable=False),
    Column("location", String(LOCATION_LENGTH)),
    Column("size", BigInteger, nullable=False),
    Column("deleted_at", UtcDateTime(), nullable=False),
)

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(DIGEST_LENGTH), ForeignKey("blobs.digest"), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_repository_blobs_digest", "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(DIGEST_LENGTH), nullable=False),
    Column("media_type", String(MEDIA_TYPE_LENGTH), nullable=False),
    Column("artifact_type", String(MEDIA_TYPE_LENGTH)),
    Column("subject_digest", String(DIGEST_LENGTH)),
    Column("annotations", Text),  # JSON object, kept for the referrers API
    Column("payload", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # A deleted version is hidden from pulls and lists until restored or purged; the tags it had
    # (a JSON list) come back with it unless they moved meanwhile.
    Column("deleted_at", UtcDateTime()),
    Column("deleted_tags", Text),
    Column("downloads", BigInteger, nullable=False, default=0, server_default="0"),
    Column("last_pulled_at", UtcDateTime()),  # written with the download counts (retention keeps recent pulls)
    Column("description", String(512)),
    Column("source_url", String(2048)),
    Column("licenses", String(256)),
    Column("platform", String(128)),  # os/architecture[/variant] of an image manifest
    Column("updated_at", UtcDateTime()),
    UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
    Index("ix_manifests_subject", "repository_id", "subject_digest"),
    # A package's versions newest first, a page at a time, without sorting every version.
    Index("ix_manifests_listing", "repository_id", "created_at", "id"),
)

manifest_references = Table(
    "manifest_references",
    metadata,
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(DIGEST_LENGTH), primary_key=True),
    Column("kind", String(16), primary_key=True),  # "blob" or "manifest"
    Index("ix_manifest_references_digest", "digest"),
)

tags = Table(
    "tags",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("name", byte_ordered_name(128), primary_key=True),
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_tags_manifest_id", "manifest_id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("repository_name", String(NAME_LENGTH), nullable=False),
    Column("size", BigInteger, nullable=False),  # bytes acknowledged so far
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # What lets any process or replica continue the upload without re-reading its bytes: the
    # running hash at `size` (blobs.hashing state) and the blob store's own state (parts, tail).
    Column("hash_state", LargeBinary),
    Column("store_state", Text),
    # One writer at a time: a request takes the lease by compare-and-set and gives it back when it
    # acknowledges; a lease not renewed by `lease_until` (its process died) may be taken over.
    Column("lease", String(32)),
    Column("lease_until", UtcDateTime()),
    Index("ix_uploads_updated_at", "updated_at"),
)

# -- accounts and access (GHCR's model) ---------------------------------------------------------

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # "user" or "org"
    Column("password_hash", String(255)),
    Column("is_site_admin", Boolean, nullable=False, default=False),
    Column("is_disabled", Boolean, nullable=False, default=False),
    # Organizations only:
    Column("registry_enabled", Boolean, nullable=False, default=True),
    Column("allowed_visibilities", String(64), nullable=False, default="private,internal,public"),
    Column("created_at", UtcDateTime(), nullable=False),
    # Bytes the account's packages may store (registry.quotas); null: the site's default.
    Column("storage_quota_bytes", BigInteger),
)

org_members = Table(
    "org_members",
    metadata,
    Column("org_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # "member" or "owner"
    Index("ix_org_members_user_id", "user_id"),
)

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("org_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    UniqueConstraint("org_id", "name", name="uq_teams_org_name"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_team_members_user_id", "user_id"),
)

personal_tokens = Table(
    "personal_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),  # sha256 of the whole token
    Column("prefix", String(16), nullable=False),  # shown in listings so users can tell tokens apart
    Column("scopes", String(128), nullable=False),
    Column("only", Text),  # JSON list of OWNER/NAME or OWNER/* patterns; null = all packages
    Column("note", String(255), nullable=False, default=""),
    Column("expires_at", UtcDateTime()),
    Column("last_used_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_personal_tokens_user_id", "user_id"),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),  # sha256 of the cookie's random part
    Column("client", String(64), nullable=False, default=""),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Index("ix_web_sessions_user_id", "user_id"),
)

package_grants = Table(
    "package_grants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE")),
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE")),
    Column("role", String(16), nullable=False),  # "read", "write" or "admin"
    UniqueConstraint("repository_id", "user_id", "team_id", name="uq_package_grants_subject"),
    Index("ix_package_grants_user_id", "user_id"),
    Index("ix_package_grants_team_id", "team_id"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=False, default=""),
    Column("client", String(64), nullable=False, default=""),
    Column("detail", Text),
    Index("ix_audit_events_at", "at"),
)

# Keys the servers generate and share through the database, so every replica signs and verifies the
# same bearer tokens and cookies without a shared filesystem. `retired_at`: a rotated key no longer
# signs, and still verifies until what it signed has expired.
server_keys = Table(
    "server_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # the key id (a bearer token's `kid`)
    Column("purpose", String(16), nullable=False),  # "token" or "session"
    Column("material", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime()),
    Index("ix_server_keys_purpose", "purpose"),
)

# Housekeeping (upload expiry, the restore-window purge, later garbage collection and retention)
# runs once per interval across every worker and replica: whoever moves `last_run_at` forward with a
# compare-and-set runs the chore this time.
chores = Table(
    "chores",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_run_at", UtcDateTime(), nullable=False),
)

# Immutable tags: shell-style patterns (a JSON list) on tag names that, once a tag matching one
# exists, may not move to another digest nor be removed. A row belongs to one package (its own
# setting) or to one account (the default for every package of that user or organization); a
# package's own row, when there is one, replaces the owner's. Read by every push by tag, in the
# transaction that moves the tag, through the two unique indexes.
immutable_tags = Table(
    "immutable_tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), unique=True),
    Column("owner_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), unique=True),
    Column("patterns", Text, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(64), nullable=False),
    CheckConstraint("(repository_id IS NULL) <> (owner_id IS NULL)", name="ck_immutable_tags_one_subject"),
)

# A package's retention policy (repository_id), or an owner's default for its packages (owner_id).
retention_policies = Table(
    "retention_policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), unique=True),
    Column("owner_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), unique=True),
    Column("policy", Text, nullable=False),  # JSON, as packages.retention.Policy.dump
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(64), nullable=False),
    CheckConstraint("(repository_id IS NULL) <> (owner_id IS NULL)", name="ck_retention_policies_one_subject"),
)
