"""Online garbage collection of blobs, safe while pushes run (docs/lifecycle.md says why).

A blob is reclaimed when no manifest row references it (live or deleted but restorable: a deleted
version keeps its row until the restore window purges it) and nobody uploaded or mounted it for
`gc_grace_seconds`. A pass, per batch of candidates:

1. takes the digests' locks (metadata.locks), skipping digests an upload or a mount holds now;
2. in one write transaction: locks the blob rows and their repository links (FOR UPDATE on
   PostgreSQL; SQLite's single writer excludes every other write), checks again, with a new
   statement that sees everything committed meanwhile, that nothing references them and that they
   are still past the grace period, then removes the links and the rows and journals them in
   `blob_deletions`. From that commit on, no push can reference them: a manifest push checks its
   blobs' links inside its own transaction, locking them FOR SHARE;
3. deletes the bytes from the store, still under the digests' locks, so that an upload of the same
   digest cannot write them again in between;
4. drops the journal rows. A pass killed after 2 leaves them; the next pass finishes them first.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, exists, func, select

from portside.blobs.store import BlobStore
from portside.clock import now
from portside.metadata.database import Database
from portside.metadata.schema import (
    blob_deletions,
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
)
from portside.registry import immutable
from portside.registry.service import lock_repository

log = logging.getLogger(__name__)

BATCH = 200
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # seen_at of blobs freed by a permanent deletion


@dataclass
class GcReport:
    dry_run: bool
    manifests: int = 0  # versions purged: deleted longer ago than the restore window
    blobs: int = 0
    bytes: int = 0
    digests: list[str] = field(default_factory=list)
    skipped_busy: int = 0  # candidates an upload or a mount held the lock of: next pass

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "manifests": self.manifests,
            "blobs": self.blobs,
            "bytes": self.bytes,
            "digests": self.digests,
            "skipped_busy": self.skipped_busy,
        }


_unreferenced = ~exists().where(manifest_references.c.digest == blobs.c.digest, manifest_references.c.kind == "blob")


def _stale(cutoff: datetime) -> Any:
    return func.coalesce(blobs.c.seen_at, blobs.c.created_at) < cutoff


def _candidates(conn: Connection, cutoff: datetime, after: str, limit: int) -> list[tuple[str, int, str | None]]:
    rows = conn.execute(
        select(blobs.c.digest, blobs.c.size, blobs.c.location)
        .where(blobs.c.digest > after, _stale(cutoff), _unreferenced)
        .order_by(blobs.c.digest)
        .limit(limit)
    ).all()
    return [(str(d), int(s), loc) for d, s, loc in rows]


def _doom(conn: Connection, digests: Sequence[str], cutoff: datetime) -> list[tuple[int, str, int, str | None]]:
    """Step 2: the blobs of `digests` still unreferenced and stale, removed and journalled."""
    # Lock first, then look: on PostgreSQL a push that holds a link FOR SHARE commits before this
    # returns, and the statement after it (READ COMMITTED: a new snapshot) sees its references.
    # In digest order, as a manifest push locks its links: in any other order the two deadlocked
    # (seen in CI: PostgreSQL killed the push, which answered 503).
    conn.execute(
        select(blobs.c.digest).where(blobs.c.digest.in_(digests)).order_by(blobs.c.digest).with_for_update()
    ).all()
    conn.execute(
        select(repository_blobs.c.digest)
        .where(repository_blobs.c.digest.in_(digests))
        .order_by(repository_blobs.c.digest, repository_blobs.c.repository_id)
        .with_for_update()
    ).all()
    doomed = conn.execute(
        select(blobs.c.digest, blobs.c.size, blobs.c.location).where(
            blobs.c.digest.in_(digests), _stale(cutoff), _unreferenced
        )
    ).all()
    if not doomed:
        return []
    gone = [str(row[0]) for row in doomed]
    conn.execute(delete(repository_blobs).where(repository_blobs.c.digest.in_(gone)))
    conn.execute(delete(blobs).where(blobs.c.digest.in_(gone)))
    at = now()
    journal = []
    for digest, size, location in doomed:
        record = conn.execute(
            blob_deletions.insert()
            .values(digest=digest, size=size, location=location, deleted_at=at)
            .returning(blob_deletions.c.id)
        ).scalar_one()
        journal.append((int(record), str(digest), int(size), location))
    return journal


def _journal(conn: Connection, limit: int) -> list[tuple[int, str, int, str | None]]:
    rows = conn.execute(
        select(blob_deletions.c.id, blob_deletions.c.digest, blob_deletions.c.size, blob_deletions.c.location)
        .order_by(blob_deletions.c.id)
        .limit(limit)
    ).all()
    return [(int(i), str(d), int(s), loc) for i, d, s, loc in rows]


def _recorded_again(conn: Connection, digest: str, location: str | None) -> bool:
    """Whether the blob was stored again at the same address after its row was removed."""
    row = conn.execute(select(blobs.c.location).where(blobs.c.digest == digest)).first()
    return row is not None and row[0] == location


def _forget(conn: Connection, ids: Sequence[int]) -> None:
    conn.execute(delete(blob_deletions).where(blob_deletions.c.id.in_(ids)))


def expire_deletions(conn: Connection, cutoff: datetime, *, dry_run: bool = False) -> int:
    """Forget the versions and packages deleted before `cutoff` (their restore window is over); the
    number of versions (manifests) that go, with their references, so their blobs become garbage."""
    expired_packages = select(repositories.c.id).where(repositories.c.deleted_at < cutoff)
    expired = (manifests.c.deleted_at < cutoff) | manifests.c.repository_id.in_(expired_packages)
    count = int(conn.execute(select(func.count()).select_from(manifests).where(expired)).scalar_one())
    if not dry_run:
        conn.execute(delete(repositories).where(repositories.c.deleted_at < cutoff))  # cascades
        conn.execute(delete(manifests).where(manifests.c.deleted_at < cutoff))
    return count


class GarbageCollector:
    def __init__(self, db: Database, store: BlobStore, *, grace: timedelta, restore_window: timedelta) -> None:
        self.db = db
        self.store = store
        self.grace = grace
        self.restore_window = restore_window

    async def purge(self) -> int:
        """Forget what is past its restore window (a chore of its own, and the start of a pass)."""
        return await self.db.write(expire_deletions, now() - self.restore_window)

    async def run(self, *, dry_run: bool = False) -> GcReport:
        """One pass: versions past their restore window are forgotten first, so that their blobs go
        in the same pass. With `dry_run`, nothing changes and the report says what would go."""
        report = GcReport(dry_run=dry_run)
        if dry_run:
            report.manifests = await self.db.read(
                functools.partial(expire_deletions, dry_run=True), now() - self.restore_window
            )
        else:
            report.manifests = await self.purge()
            await self._finish_journal(report)
        cutoff = now() - self.grace
        after = ""
        while True:
            batch = await self.db.read(_candidates, cutoff, after, BATCH)
            if not batch:
                break
            after = batch[-1][0]
            if dry_run:
                for digest, size, _ in batch:
                    report.blobs += 1
                    report.bytes += size
                    report.digests.append(digest)
                continue
            async with self.db.locks.hold([digest for digest, _, _ in batch], wait=False) as held:
                report.skipped_busy += len(batch) - len(held)
                if held:
                    journal = await self.db.write(_doom, held, cutoff)
                    await self._delete_bytes(journal, report)
        if report.blobs and not dry_run:
            log.info("garbage collection removed %d blobs (%d bytes)", report.blobs, report.bytes)
        return report

    async def _finish_journal(self, report: GcReport) -> None:
        """Blobs whose rows an earlier pass removed but whose bytes it did not get to delete."""
        while journal := await self.db.read(_journal, BATCH):
            async with self.db.locks.hold([digest for _, digest, _, _ in journal]):
                await self._delete_bytes(journal, report, check_again=True)

    async def _delete_bytes(
        self, journal: list[tuple[int, str, int, str | None]], report: GcReport, *, check_again: bool = False
    ) -> None:
        """Step 3 and 4, under the digests' locks."""
        done = []
        for record, digest, size, location in journal:
            if check_again and await self.db.read(_recorded_again, digest, location):
                done.append(record)  # uploaded again to the same address: those bytes are the new blob's
                continue
            await self.store.delete(digest, location=location)
            done.append(record)
            report.blobs += 1
            report.bytes += size
            report.digests.append(digest)
        if done:
            await self.db.write(_forget, done)


def freed_by(conn: Connection, manifest_ids: Sequence[int]) -> list[str]:
    """The blobs that these manifests reference (for a permanent deletion to mark)."""
    rows = conn.execute(
        select(manifest_references.c.digest)
        .where(manifest_references.c.manifest_id.in_(manifest_ids), manifest_references.c.kind == "blob")
        .distinct()
    ).all()
    return [str(row[0]) for row in rows]


def reclaim_now(conn: Connection, digests: Sequence[str]) -> None:
    """Let the next pass take these blobs without the grace period, if nothing else references them
    by then (the pass checks); an upload or a mount of one of them before that protects it again."""
    if digests:
        conn.execute(blobs.update().where(blobs.c.digest.in_(digests)).values(seen_at=EPOCH))


def purge_manifests(conn: Connection, repository_id: int, manifest_ids: Sequence[int]) -> list[int]:
    """Delete versions for good, skipping the restore window, with what only they make sense with:
    the platform images of an index that no other version of the package lists and no tag names,
    and the referrers (signatures, SBOMs, attestations) of each. Their blobs are marked for the next
    pass of garbage collection. The ids deleted, sorted."""
    chosen: set[int] = set()
    frontier = set(manifest_ids)
    while frontier:
        chosen |= frontier
        digests = select(manifests.c.digest).where(manifests.c.id.in_(frontier))
        children = select(manifest_references.c.digest).where(
            manifest_references.c.manifest_id.in_(frontier), manifest_references.c.kind == "manifest"
        )
        found = conn.execute(
            select(manifests.c.id).where(
                manifests.c.repository_id == repository_id,
                manifests.c.digest.in_(children) | manifests.c.subject_digest.in_(digests),
            )
        ).all()
        frontier = {int(row[0]) for row in found} - chosen
    # A platform image that a version staying behind lists, or that carries a tag of its own, stays.
    while True:
        staying = select(manifests.c.id).where(manifests.c.repository_id == repository_id, ~manifests.c.id.in_(chosen))
        listed = select(manifest_references.c.digest).where(
            manifest_references.c.manifest_id.in_(staying), manifest_references.c.kind == "manifest"
        )
        kept = {
            int(row[0])
            for row in conn.execute(
                select(manifests.c.id).where(
                    manifests.c.id.in_(chosen - set(manifest_ids)),
                    manifests.c.digest.in_(listed) | manifests.c.id.in_(select(tags.c.manifest_id)),
                )
            ).all()
        }
        if not kept:
            break
        chosen -= kept
    ids = sorted(chosen)
    if not ids:
        return []
    lock_repository(conn, repository_id)  # before the manifests, in a push's order
    for manifest_id in ids:  # a tag the package's rules make immutable holds its version, for good too
        names = list(conn.execute(select(tags.c.name).where(tags.c.manifest_id == manifest_id)).scalars())
        immutable.refuse_version_deletion(conn, repository_id, manifest_id, names)
    freed = freed_by(conn, ids)
    tagged = conn.execute(select(func.count()).select_from(tags).where(tags.c.manifest_id.in_(ids))).scalar_one()
    conn.execute(delete(tags).where(tags.c.manifest_id.in_(ids)))
    conn.execute(delete(manifest_references).where(manifest_references.c.manifest_id.in_(ids)))
    conn.execute(delete(manifests).where(manifests.c.id.in_(ids)))
    if tagged:  # workers cache tag lists per tags_version
        conn.execute(
            repositories.update()
            .where(repositories.c.id == repository_id)
            .values(tags_version=repositories.c.tags_version + 1)
        )
    reclaim_now(conn, freed)
    return ids


def purge_package(conn: Connection, repository_id: int) -> int:
    """Delete a package for good with all of its versions; the number of versions."""
    immutable.refuse_package_deletion(conn, repository_id)
    rows = conn.execute(select(manifests.c.id).where(manifests.c.repository_id == repository_id)).all()
    ids = [int(row[0]) for row in rows]
    freed = freed_by(conn, ids) if ids else []
    conn.execute(delete(repositories).where(repositories.c.id == repository_id))  # cascades to the rest
    reclaim_now(conn, freed)
    return len(ids)


def live_package(conn: Connection, package: str) -> int | None:
    """The id of the package named so (not deleted), or None."""
    return conn.execute(
        select(repositories.c.id).where(repositories.c.name == package, repositories.c.deleted_at.is_(None))
    ).scalar()


def version_ids(conn: Connection, repository_id: int, digests: Sequence[str]) -> dict[str, int]:
    """Digest to version id, for those of `digests` that are versions of the package (live or deleted)."""
    rows = conn.execute(
        select(manifests.c.digest, manifests.c.id).where(
            manifests.c.repository_id == repository_id, manifests.c.digest.in_(digests)
        )
    ).all()
    return {str(digest): int(version) for digest, version in rows}
