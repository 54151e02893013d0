"""Storage quotas: what each user or organization stores, and the refusal of a push beyond its quota.

An owner's usage is the sum of the sizes of the distinct blobs (configs and layers) that the
manifests of its packages reference, live or deleted but restorable (a deleted package's versions
too): each blob once per owner, however many of its packages or versions reference it. Manifests
themselves live in the database, not the blob store, and are not counted. It is one query over
indexed tables (docs/lifecycle.md has its plan and cost), so there is no counter to keep right.

The check runs inside the push's write transaction, before the manifest's references are written.
On PostgreSQL the owner's account row is locked first (SELECT ... FOR NO KEY UPDATE), so two pushes
to one owner near its limit are decided one after the other; SQLite has one writer at a time anyway.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Select, bindparam, exists, func, select

from portside.metadata.database import Database
from portside.metadata.schema import accounts, blobs, manifest_references, manifests, repositories
from portside.registry.errors import RegistryError
from portside.sizes import human

WARNING_HEADER = "X-Portside-Quota-Warning"


class QuotaExceeded(RegistryError):
    code, status = "DENIED", 403


@dataclass(frozen=True, slots=True)
class Quota:
    bytes: int | None  # None: unlimited
    source: str  # "owner" (its own), "site" (the site's default) or "none"


@dataclass(frozen=True, slots=True)
class PackageUsage:
    id: int
    name: str  # without the owner, as the packages API names it
    deleted: bool  # a deleted package, restorable: its versions still count
    bytes: int  # its distinct blobs (a blob it shares with another package counts in both)
    versions: int  # live versions
    deleted_versions: int  # deleted, restorable versions


@dataclass(frozen=True, slots=True)
class Usage:
    owner: str
    kind: str  # "user" or "org"
    used: int
    quota: Quota
    warning_ratio: float
    packages: list[PackageUsage]

    @property
    def warning(self) -> bool:
        return at_warning(self.used, self.quota.bytes, self.warning_ratio)


def at_warning(used: int, quota: int | None, ratio: float) -> bool:
    return quota is not None and used >= quota * ratio


def percent(used: int, quota: int) -> int:
    return 100 if quota == 0 else math.floor(used * 100 / quota)


def warning_text(owner: str, used: int, quota: int) -> str:
    return f"{owner} uses {human(used)} of {human(quota)} ({percent(used, quota)}%)"


def refusal(owner: str, used: int, quota: int) -> str:
    # `used` is what the owner would store with this push: rounded up, never shown as the limit itself.
    return (
        f"quota exceeded for {owner}: {human(used, up=True)} used of {human(quota)}; "
        "delete versions or ask an administrator"
    )


def _packages_of(owner: object) -> Select[tuple[int]]:
    return select(repositories.c.id).where(repositories.c.owner_id == owner)


def _references(owner: object) -> Select[tuple[int, str]]:
    """(package, blob) for every blob a manifest of the owner's packages references: from the owner's
    packages (ix_repositories_owner_id) to their manifests (ix_manifests_listing) to the references
    (their primary key), each index covering. `repository_id IN (...)` rather than a join, so that
    SQLite starts from the owner's packages instead of scanning every manifest."""
    return (
        select(manifests.c.repository_id, manifest_references.c.digest)
        .select_from(manifests.join(manifest_references, manifest_references.c.manifest_id == manifests.c.id))
        .where(manifests.c.repository_id.in_(_packages_of(owner)), manifest_references.c.kind == "blob")
    )


def used_bytes_query(owner: object) -> Select[tuple[int]]:
    """The usage query: the distinct blobs of the owner's live and restorable versions, summed. As
    `digest IN (...)`, SQLite and PostgreSQL collect the distinct digests (SQLite: an ephemeral
    index) and look each blob up by its key; a DISTINCT subquery joined to blobs was 20 times slower
    on SQLite, which walked every reference in digest order (bench/quota_usage.py)."""
    digests = _references(owner).with_only_columns(manifest_references.c.digest)
    return select(func.coalesce(func.sum(blobs.c.size), 0)).where(blobs.c.digest.in_(digests))


def used_bytes(conn: Connection, owner_id: int) -> int:
    return int(conn.execute(used_bytes_query(owner_id)).scalar_one())


def added_bytes(conn: Connection, owner_id: int, digests: Iterable[str]) -> int:
    """What a manifest referencing `digests` adds to the owner's usage: the blobs it does not count yet."""
    wanted = sorted(set(digests))
    if not wanted:
        return 0
    counted = (
        exists()
        .select_from(
            manifest_references.join(manifests, manifests.c.id == manifest_references.c.manifest_id).join(
                repositories, repositories.c.id == manifests.c.repository_id
            )
        )
        .where(
            manifest_references.c.digest == blobs.c.digest,
            manifest_references.c.kind == "blob",
            repositories.c.owner_id == owner_id,
        )
    )
    stmt = select(func.coalesce(func.sum(blobs.c.size), 0)).where(blobs.c.digest.in_(wanted), ~counted)
    return int(conn.execute(stmt).scalar_one())


class Quotas:
    """The site's default quota and warning threshold, and the checks and figures that use them."""

    def __init__(self, db: Database, *, default_bytes: int | None, warning_ratio: float) -> None:
        self.db = db
        self.default_bytes = default_bytes
        self.warning_ratio = warning_ratio
        self._owner_of = db.query(
            select(accounts.c.id, accounts.c.name, accounts.c.storage_quota_bytes)
            .select_from(repositories.join(accounts, accounts.c.id == repositories.c.owner_id))
            .where(repositories.c.id == bindparam("repository_id"))
        )
        # FOR NO KEY UPDATE: pushes to one owner wait for each other, but not for transactions that
        # merely insert rows referring to the account (a token, a package: their foreign-key checks
        # take KEY SHARE locks), so a push never deadlocks with one of those.
        self._lock_owner = db.query(
            select(accounts.c.storage_quota_bytes)
            .where(accounts.c.id == bindparam("owner_id"))
            .with_for_update(key_share=True)
        )
        self._used = db.query(used_bytes_query(bindparam("owner_id")))

    def quota(self, own: int | None) -> Quota:
        if own is not None:
            return Quota(own, "owner")
        if self.default_bytes is not None:
            return Quota(self.default_bytes, "site")
        return Quota(None, "none")

    def check_push(self, conn: Connection, repository_id: int, blob_digests: Iterable[str]) -> str | None:
        """Refuse (QuotaExceeded) a manifest whose new blobs would take the package's owner beyond its
        quota; otherwise the warning to answer with, if the owner is at the warning threshold after
        it. Call inside the push's write transaction, before the manifest's references are written."""
        found = self.db.rows(conn, self._owner_of, repository_id=repository_id)
        if not found:
            return None  # a repository without an owner (pushed before accounts existed)
        owner_id, owner, own = found[0]
        if own is None and self.default_bytes is None:
            return None
        # Pushes to one owner take turns from here to their commit (PostgreSQL; SQLite has one writer).
        own = self.db.rows(conn, self._lock_owner, owner_id=owner_id)[0][0]
        limit = self.quota(own).bytes
        if limit is None:
            return None
        used = int(self.db.rows(conn, self._used, owner_id=owner_id)[0][0])
        added = added_bytes(conn, owner_id, blob_digests)
        if added and used + added > limit:
            raise QuotaExceeded(
                refusal(owner, used + added, limit),
                detail={"owner": owner, "used_bytes": used, "push_bytes": added, "quota_bytes": limit},
            )
        if at_warning(used + added, limit, self.warning_ratio):
            return warning_text(owner, used + added, limit)
        return None

    def usage(self, conn: Connection, owner_id: int) -> Usage:
        """The owner's usage, quota and each package's share (deleted, restorable packages too)."""
        account = conn.execute(
            select(accounts.c.name, accounts.c.kind, accounts.c.storage_quota_bytes).where(accounts.c.id == owner_id)
        ).one()
        used = used_bytes(conn, owner_id)
        owned = _references(owner_id).distinct().subquery("owned")
        sizes = dict(
            conn.execute(  # type: ignore[arg-type]
                select(owned.c.repository_id, func.sum(blobs.c.size))
                .select_from(owned.join(blobs, blobs.c.digest == owned.c.digest))
                .group_by(owned.c.repository_id)
            ).all()
        )
        counts = {
            repository_id: (int(total), int(deleted))
            for repository_id, total, deleted in conn.execute(
                select(manifests.c.repository_id, func.count(), func.count(manifests.c.deleted_at))
                .where(manifests.c.repository_id.in_(_packages_of(owner_id)))
                .group_by(manifests.c.repository_id)
            )
        }
        packages = []
        for repository_id, name, deleted_at in conn.execute(
            select(repositories.c.id, repositories.c.name, repositories.c.deleted_at)
            .where(repositories.c.owner_id == owner_id)
            .order_by(repositories.c.name)
        ):
            total, deleted = counts.get(repository_id, (0, 0))
            short = name.split("@", 1)[0].split("/", 1)[-1]  # NAME@ID for a deleted package
            packages.append(
                PackageUsage(
                    repository_id,
                    short,
                    deleted_at is not None,
                    int(sizes.get(repository_id, 0)),
                    total - deleted,
                    deleted,
                )
            )
        packages.sort(key=lambda p: (-p.bytes, p.name, p.id))
        quota = self.quota(account.storage_quota_bytes)
        return Usage(account.name, account.kind, used, quota, self.warning_ratio, packages)
