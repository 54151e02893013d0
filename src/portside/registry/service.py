"""The registry service: repositories, blobs, manifests, tags, referrers and the catalog.

Everything that touches the database runs in `Database` threads; blob bytes go through the blob
store. Nothing here knows about HTTP.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    literal_column,
    select,
    update,
)
from sqlalchemy.sql import Executable

from portside.blobs.store import BlobRead, BlobStore
from portside.clock import now
from portside.metadata.database import Database, Query, Rider
from portside.metadata.schema import (
    blobs,
    immutable_tags,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
)
from portside.registry import immutable
from portside.registry.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    NameUnknown,
    SizeInvalid,
)
from portside.registry.labels import Labels, from_annotations, from_config
from portside.registry.manifests import ParsedManifest, parse_manifest
from portside.registry.quotas import Quotas
from portside.registry.references import Digest, lookup_reference, parse_reference

log = logging.getLogger("portside.registry")
MAX_PAGE = 1000
TAG_PAGE_CACHE = 256  # tag-list pages kept per process (at most ~15 MiB of names)
MAX_CONFIG = 1024 * 1024  # image configs read for their labels; larger ones are not looked into
# Small JSON blobs this process just received, by digest: the manifest that names one as its config
# usually follows on the same connection, and reading the config back from the store for its labels
# was ~5 % of pushing small images on disk (regbench push_images, with and without the read).
RECENT_CONFIGS = 128
RECENT_CONFIG_BYTES = 64 * 1024


# Called inside the transaction that creates a repository, with its id: packages get their owner here.
OnCreate = Callable[[Connection, int], None]


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: str
    media_type: str
    payload: bytes
    subject: str | None


@dataclass(frozen=True, slots=True)
class ManifestPut:
    parsed: ParsedManifest
    quota_warning: str | None  # the owner is at its quota's warning threshold after this push


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    more: bool


def blob_location(conn: Connection, digest: str) -> str | None:
    """Where the store keeps a blob's bytes when not at its content address (see BlobStore)."""
    return conn.execute(select(blobs.c.location).where(blobs.c.digest == digest)).scalar()


def _repository_id(conn: Connection, name: str) -> int | None:
    return conn.execute(select(repositories.c.id).where(repositories.c.name == name)).scalar()


def lock_repository(conn: Connection, repository_id: int) -> None:
    """Take the repository's row first (PostgreSQL), as a push does when it marks the repository
    pushed before it writes the manifest: deletions that locked the manifest first and the repository
    last deadlocked with pushes of the same tag (seen: 503s under test_push_and_delete_the_same_tag)."""
    conn.execute(select(repositories.c.id).where(repositories.c.id == repository_id).with_for_update(key_share=True))


def hide_manifest(conn: Connection, repository_id: int, manifest_id: int, tag_names: list[str]) -> None:
    """Delete a version the restorable way: hidden from pulls and lists, its tags kept to come back.
    Refused (ImmutableTag) when one of its tags is immutable: every way of deleting a version passes here."""
    lock_repository(conn, repository_id)
    immutable.refuse_version_deletion(conn, repository_id, manifest_id, tag_names)
    conn.execute(
        update(manifests)
        .where(manifests.c.id == manifest_id)
        .values(deleted_at=now(), deleted_tags=json.dumps(tag_names) if tag_names else None)
    )
    if tag_names:
        conn.execute(delete(tags).where(tags.c.manifest_id == manifest_id))
        conn.execute(
            update(repositories)
            .where(repositories.c.id == repository_id)
            .values(tags_version=repositories.c.tags_version + 1)
        )


def _require_repository(conn: Connection, name: str) -> int:
    repository_id = _repository_id(conn, name)
    if repository_id is None:
        raise NameUnknown(f"repository {name} is not known to this registry", detail={"name": name})
    return repository_id


class Registry:
    def __init__(
        self, db: Database, store: BlobStore, *, max_manifest_bytes: int, quotas: Quotas | None = None
    ) -> None:
        self.db = db
        self.store = store
        self.max_manifest_bytes = max_manifest_bytes
        self.quotas = quotas or Quotas(db, default_bytes=None, warning_ratio=0.9)
        # The hot reads, prepared once (see metadata.database.Query).
        cols = (manifests.c.digest, manifests.c.media_type, manifests.c.payload, manifests.c.subject_digest)
        name, ref = bindparam("name"), bindparam("ref")
        self._manifest_by_digest = db.query(
            select(*cols)
            .select_from(manifests.join(repositories))
            .where(repositories.c.name == name, manifests.c.digest == ref, manifests.c.deleted_at.is_(None))
        )
        self._manifest_by_tag = db.query(
            select(*cols)
            .select_from(tags.join(repositories).join(manifests, manifests.c.id == tags.c.manifest_id))
            .where(repositories.c.name == name, tags.c.name == ref)
        )
        tag_names = (
            select(tags.c.name)
            .select_from(tags.join(repositories))
            .where(repositories.c.name == name, tags.c.name > bindparam("last"))
            .order_by(tags.c.name)
        )
        self._all_tags = db.query(tag_names)
        self._tags_version = db.query(
            select(repositories.c.id, repositories.c.tags_version).where(repositories.c.name == name)
        )
        # Keyed by repository id: a name deleted and pushed again is a new repository.
        self._tag_pages: dict[tuple[int, int, int | None, str | None], Page] = {}
        self._downloads: Counter[tuple[str, str]] = Counter()  # (repository, digest): pulls not yet written
        self._recent_configs: OrderedDict[str, bytes] = OrderedDict()  # RECENT_CONFIGS
        self._tags_page = db.query(tag_names.limit(bindparam("limit")))
        self._blob_size = db.query(
            select(blobs.c.size, blobs.c.location)
            .select_from(repository_blobs.join(repositories).join(blobs))
            .where(repositories.c.name == name, repository_blobs.c.digest == ref)
        )
        # The rows every push writes, prepared too.
        at, digest, repository_id = bindparam("at"), bindparam("digest"), bindparam("repository_id")
        self._repository_id = db.query(select(repositories.c.id).where(repositories.c.name == name))
        self._insert_repository = db.query(
            db.insert(repositories).values(name=name, created_at=at).on_conflict_do_nothing(index_elements=["name"])
        )
        self._insert_blob = db.query(
            db.insert(blobs)
            .values(digest=digest, size=bindparam("size"), location=bindparam("location"), created_at=at)
            .on_conflict_do_nothing(index_elements=["digest"])
        )
        # FOR SHARE on PostgreSQL (nothing on SQLite, whose one writer excludes the rest): garbage
        # collection's FOR UPDATE on the same link waits until this push commits, then sees its
        # references; or it removed the link first, and this push finds the blob missing (registry.gc).
        self._has_blob = db.query(
            select(repository_blobs.c.digest)
            .where(repository_blobs.c.repository_id == repository_id, repository_blobs.c.digest == digest)
            .with_for_update(read=True)
        )
        self._seen_blob = db.query(update(blobs).where(blobs.c.digest == digest).values(seen_at=at))
        self._manifest_id = db.query(
            select(manifests.c.id).where(manifests.c.repository_id == repository_id, manifests.c.digest == digest)
        )
        self._live_manifest_id = db.query(
            select(manifests.c.id).where(
                manifests.c.repository_id == repository_id,
                manifests.c.digest == digest,
                manifests.c.deleted_at.is_(None),
            )
        )
        # Pushing a deleted version again brings it back (its old tags stay with the deletion record).
        self._revive_manifest = db.query(
            update(manifests)
            .where(
                manifests.c.repository_id == repository_id,
                manifests.c.digest == digest,
                manifests.c.deleted_at.is_not(None),
            )
            .values(deleted_at=None, deleted_tags=None, updated_at=at)
        )
        # A push's change to its repository's row: pushed now, and its tags' version bumped (`bump`
        # 1) when the push moves a tag, in the same statement; with the config's labels, or without.
        pushed = repositories.c.tags_version + bindparam("bump")
        self._repository_pushed = db.query(
            update(repositories).where(repositories.c.id == repository_id).values(updated_at=at, tags_version=pushed)
        )
        self._repository_labels = db.query(
            update(repositories)
            .where(repositories.c.id == repository_id)
            .values(
                description=bindparam("description"),
                source_url=bindparam("source_url"),
                licenses=bindparam("licenses"),
                updated_at=at,
                tags_version=pushed,
            )
        )
        self._count_downloads = db.query(
            update(manifests)
            .where(
                manifests.c.digest == digest,
                manifests.c.repository_id
                == select(repositories.c.id).where(repositories.c.name == name).scalar_subquery(),
            )
            .values(downloads=manifests.c.downloads + bindparam("count"), last_pulled_at=at)
        )
        self._insert_manifest = db.query(
            db.insert(manifests)
            .values(
                repository_id=repository_id,
                digest=digest,
                media_type=bindparam("media_type"),
                artifact_type=bindparam("artifact_type"),
                subject_digest=bindparam("subject_digest"),
                annotations=bindparam("annotations"),
                payload=bindparam("payload"),
                size=bindparam("size"),
                description=bindparam("description"),
                source_url=bindparam("source_url"),
                licenses=bindparam("licenses"),
                platform=bindparam("platform"),
                created_at=at,
                updated_at=at,
            )
            .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
            .returning(manifests.c.id)  # nothing when the version was there already
        )
        self._insert_reference = db.query(
            db.insert(manifest_references)
            .values(manifest_id=bindparam("manifest_id"), digest=digest, kind=bindparam("kind"))
            .on_conflict_do_nothing()
        )
        tag = db.insert(tags).values(
            repository_id=repository_id, name=name, manifest_id=bindparam("manifest_id"), updated_at=at
        )
        self._set_tag = db.query(
            tag.on_conflict_do_update(
                index_elements=["repository_id", "name"],
                set_={"manifest_id": tag.excluded.manifest_id, "updated_at": tag.excluded.updated_at},
            )
        )
        # Immutable tags: a new one is only ever inserted (never overwritten by a concurrent push).
        self._add_tag = db.query(tag.on_conflict_do_nothing(index_elements=["repository_id", "name"]))
        self._tag_digest = db.query(
            select(manifests.c.digest)
            .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
            .where(tags.c.repository_id == repository_id, tags.c.name == name)
        )
        # What a push by tag reads before it moves the tag: the package's own immutable-tag
        # patterns, its owner's default and the digest the tag has now. One query, by primary key
        # and unique indexes.
        own, default, current = immutable_tags.alias("own"), immutable_tags.alias("owner_default"), manifests.alias()
        self._tag_rules = db.query(
            select(own.c.patterns, default.c.patterns, current.c.digest)
            .select_from(
                repositories.outerjoin(own, own.c.repository_id == repositories.c.id)
                .outerjoin(default, default.c.owner_id == repositories.c.owner_id)
                .outerjoin(tags, and_(tags.c.repository_id == repositories.c.id, tags.c.name == name))
                .outerjoin(current, current.c.id == tags.c.manifest_id)
            )
            .where(repositories.c.id == repository_id)
        )
        self._bump_tags_version = db.query(
            update(repositories)
            .where(repositories.c.id == repository_id)
            .values(tags_version=repositories.c.tags_version + 1)
        )
        self._link_blob = db.query(
            db.insert(repository_blobs)
            .values(repository_id=repository_id, digest=digest, created_at=at)
            .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
        )
        self._mount = db.query(_mount_statement(db)) if db.dialect == "postgresql" else None

    # -- repositories --------------------------------------------------------------------------

    def ensure_repository(self, conn: Connection, name: str, on_create: OnCreate | None = None) -> int:
        """The repository's id, creating it on its first successful write (and calling `on_create`)."""
        found = self.db.rows(conn, self._repository_id, name=name)
        if found:
            return int(found[0][0])
        inserted = self.db.execute(conn, self._insert_repository, name=name, at=now())
        repository_id = int(self.db.rows(conn, self._repository_id, name=name)[0][0])
        if inserted and on_create is not None:
            on_create(conn, repository_id)
        return repository_id

    async def catalog(self, n: int | None, last: str | None, visible: ColumnElement[bool]) -> Page:
        """Repository names in byte order; `visible` selects those the caller may see."""

        def query(conn: Connection) -> Page:
            stmt = (
                select(repositories.c.name)
                .where(visible, repositories.c.deleted_at.is_(None))
                .order_by(repositories.c.name)
            )
            if last:
                stmt = stmt.where(repositories.c.name > last)
            return _page(conn, stmt, n)

        return await self.db.read(query)

    # -- blobs ---------------------------------------------------------------------------------

    async def blob_size(self, name: str, digest: Digest, rider: Rider | None = None) -> int:
        """`rider`: a read to make in the same statement (metadata.database.Rider)."""
        return (await self._stored(name, digest, rider))[0]

    async def _stored(self, name: str, digest: Digest, rider: Rider | None = None) -> tuple[int, str | None]:
        row = await self._blob_row(name, digest, rider)
        if row is None:
            raise BlobUnknown(f"blob {digest} is not in repository {name}", detail={"digest": str(digest)})
        return row

    async def read_blob(
        self,
        name: str,
        digest: Digest,
        byte_range: Callable[[int], tuple[int, int] | None],
        rider: Rider | None = None,
    ) -> tuple[int, BlobRead]:
        """A blob of repository `name`: its size, and how to send it (a local file, a redirect or a
        stream) for the range `byte_range` makes of its size (one read of the database)."""
        size, location = await self._stored(name, digest, rider)
        return size, await self.store.serve(str(digest), size, byte_range(size), location=location)

    async def delete_blob(self, name: str, digest: Digest) -> None:
        def change(conn: Connection) -> int:
            repository_id = _require_repository(conn, name)
            return conn.execute(
                delete(repository_blobs).where(
                    repository_blobs.c.repository_id == repository_id,
                    repository_blobs.c.digest == str(digest),
                )
            ).rowcount

        if not await self.db.write(change):
            raise BlobUnknown(f"blob {digest} is not in repository {name}", detail={"digest": str(digest)})

    def link_blob(
        self,
        conn: Connection,
        name: str,
        digest: str,
        size: int,
        on_create: OnCreate | None,
        location: str | None = None,
    ) -> bool:
        """Record a verified blob (its bytes at `location`, see BlobStore) and make it readable in
        repository `name`. False when the blob was recorded before: its row, and where it says the
        bytes are, win, and a `location` given here is the caller's to delete. The caller holds the
        digest's lock (db.locks) from before the bytes were stored, as garbage collection does."""
        at = now()
        inserted = self.db.execute(conn, self._insert_blob, digest=digest, size=size, location=location, at=at)
        if not inserted:  # wanted again: garbage collection waits its grace period from now
            self.db.execute(conn, self._seen_blob, digest=digest, at=at)
        repository_id = self.ensure_repository(conn, name, on_create)
        self.db.execute(conn, self._link_blob, repository_id=repository_id, digest=digest, at=at)
        return bool(inserted)

    def blob_recorder(self, ending: Delete | None) -> Query | None:
        """PostgreSQL: `link_blob` into an existing repository as one statement, ending an upload's
        session in it too (`ending`: the DELETE of its row, None for an upload that has none); run it
        with `record_blob`. None elsewhere (SQLite's writer takes no round trips to save)."""
        if self.db.dialect != "postgresql":
            return None
        return self.db.query(_record_statement(self.db, ending))

    async def record_blob(self, recorder: Query, **params: Any) -> tuple[bool, bool] | None:
        """Run a `blob_recorder` statement (parameters: name, digest, size, location, at, and those of
        its session's DELETE) as a transaction of its own, on the event loop: whether the session
        ended, and whether the blob's row is new (as `link_blob` answers); None when the repository
        does not exist yet, and nothing was written (the caller records in a transaction, which
        creates it). On the fleet a blob PUT's record took 11 ms (p50) as a transaction of five
        statements in a thread; one round trip instead."""
        ((ended, inserted, repository_id),) = await self.db.commit_one(recorder, **params)
        return None if repository_id is None else (bool(ended), bool(inserted))

    async def drop_duplicate(self, digest: str, location: str) -> None:
        """Delete the bytes of a blob that lost to an earlier row of the same digest: nothing
        refers to them. If the store fails, they stay for garbage collection (it lists locations)."""
        try:
            await self.store.delete(digest, location=location)
        except Exception as error:  # a leftover, never the push's failure
            log.warning("could not delete duplicate copy of %s at %s: %s", digest, location, error)

    async def stored_size(self, name: str, digest: Digest, rider: Rider | None = None) -> int | None:
        """The size of a blob in repository `name`, None when it has none (`rider`: a read to make in
        the same statement, metadata.database.Rider)."""
        row = await self._blob_row(name, digest, rider)
        return int(row[0]) if row else None

    async def _blob_row(self, name: str, digest: Digest, rider: Rider | None) -> tuple[int, str | None] | None:
        """The size and location of a blob of repository `name` (one indexed read)."""
        row = await self.db.fetch_one(self._blob_size, rider=rider, name=name, ref=str(digest))
        return (int(row[0]), row[1]) if row else None

    async def find_blob(self, digest: Digest, where: ColumnElement[bool]) -> int | None:
        """The size of a blob held by any repository matching `where`, None when there is none."""

        def query(conn: Connection) -> int | None:
            stmt = (
                select(blobs.c.size)
                .select_from(repository_blobs.join(repositories).join(blobs))
                .where(where, repository_blobs.c.digest == str(digest))
            )
            return conn.execute(stmt.limit(1)).scalar()

        return await self.db.read(query)

    async def mount(self, name: str, digest: Digest, on_create: OnCreate | None = None) -> bool:
        """Link a blob the caller may read elsewhere into `name`; False if it is gone (garbage
        collection took it since the caller looked: the client uploads it instead). The database is
        the truth about which blobs exist: the store is not asked."""
        if self._mount is not None:
            # PostgreSQL: the whole mount is one statement on the event loop (one round trip, and
            # its commit) unless the repository is new: on the fleet benchmark 0.88x -> 1.60x of
            # distribution's mounts, where the write transaction in a thread took 5 round trips.
            ((seen, repository_id),) = await self.db.commit_one(self._mount, name=name, digest=str(digest), at=now())
            if not seen:
                return False
            if repository_id is not None:
                return True
        elif await self.stored_size(name, digest) is not None:
            return True  # already there: nothing to write

        def link(conn: Connection) -> bool:
            # Never a new blob row: only one whose bytes are stored. No digest lock is needed:
            # refreshing seen_at locks the blob's row, which garbage collection locks FOR UPDATE
            # before it looks (SQLite: one writer), so either the pass sees a blob wanted just now
            # and keeps it, or this finds no row left and the client uploads the blob instead.
            if not self.db.execute(conn, self._seen_blob, digest=str(digest), at=now()):
                return False
            repository_id = self.ensure_repository(conn, name, on_create)
            self.db.execute(conn, self._link_blob, repository_id=repository_id, digest=str(digest), at=now())
            return True

        return await self.db.write(link)

    # -- manifests -----------------------------------------------------------------------------

    async def get_manifest(self, name: str, reference: str, rider: Rider | None = None) -> StoredManifest:
        """`rider`: a read to make in the same statement (metadata.database.Rider)."""
        ref = lookup_reference(reference)
        query = self._manifest_by_digest if isinstance(ref, Digest) else self._manifest_by_tag
        row = await self.db.fetch_one(query, rider=rider, name=name, ref=str(ref))
        if row is not None:
            return StoredManifest(*row)
        await self.db.read(_require_repository, name)  # NAME_UNKNOWN rather than MANIFEST_UNKNOWN
        raise ManifestUnknown(
            f"manifest {reference} is not in repository {name}", detail={"name": name, "reference": reference}
        )

    def count_download(self, name: str, digest: str) -> None:
        """Count a pull of a manifest; counts reach the database in batches (flush_downloads)."""
        self._downloads[(name, digest)] += 1

    async def flush_downloads(self) -> None:
        if not self._downloads:
            return
        pending, self._downloads = self._downloads, Counter()

        def change(conn: Connection) -> None:
            at = now()  # within one flush interval of the pulls: what retention's pull window needs
            for (name, digest), count in pending.items():
                self.db.execute(conn, self._count_downloads, name=name, digest=digest, count=count, at=at)

        await self.db.write(change)

    async def put_manifest(
        self, name: str, reference: str, payload: bytes, content_type: str, on_create: OnCreate | None = None
    ) -> ManifestPut:
        if len(payload) > self.max_manifest_bytes:
            raise SizeInvalid(
                f"manifest is {len(payload)} bytes; this registry accepts at most {self.max_manifest_bytes}",
                status=413,
            )
        ref = parse_reference(reference)
        algorithm = ref.algorithm if isinstance(ref, Digest) else "sha256"
        parsed = parse_manifest(payload, content_type, algorithm)
        if isinstance(ref, Digest) and parsed.digest != ref:
            raise DigestInvalid(
                f"manifest digest is {parsed.digest}, not {ref} as given in the URL",
                detail={"expected": str(ref), "computed": str(parsed.digest)},
            )
        tag = None if isinstance(ref, Digest) else ref
        warning = await self.db.write(self._store_manifest, name, parsed, await self._labels(parsed), tag, on_create)
        return ManifestPut(parsed, warning)

    def received(self, digest: str, data: bytes) -> None:
        """A small blob this process has just received and verified: perhaps a config (RECENT_CONFIGS)."""
        if len(data) <= RECENT_CONFIG_BYTES and data.lstrip()[:1] == b"{":
            self._recent_configs[digest] = data
            self._recent_configs.move_to_end(digest)
            if len(self._recent_configs) > RECENT_CONFIGS:
                self._recent_configs.popitem(last=False)

    async def _labels(self, parsed: ParsedManifest) -> Labels:
        if parsed.config_digest is None:
            return from_annotations(parsed.annotations)
        raw = self._recent_configs.get(parsed.config_digest)
        if raw is not None:
            return from_config(raw)
        # Configs are small and pushed whole, so at their content address: the database is asked
        # where else the bytes are only when they are not there (no extra query on every push).
        raw = await self.store.read_small(parsed.config_digest, MAX_CONFIG)
        if raw is None:
            location = await self.db.read(blob_location, parsed.config_digest)
            if location is not None:
                raw = await self.store.read_small(parsed.config_digest, MAX_CONFIG, location=location)
        return from_config(raw) if raw is not None else Labels()

    def _store_manifest(
        self,
        conn: Connection,
        name: str,
        parsed: ParsedManifest,
        labels: Labels,
        tag: str | None,
        on_create: OnCreate | None,
    ) -> str | None:
        """Record a pushed manifest; the quota warning to answer with, if any."""
        repository_id = self.ensure_repository(conn, name, on_create)
        digest, at = str(parsed.digest), now()
        pattern = current = None
        if tag is not None:
            own, default, current = self.db.rows(conn, self._tag_rules, repository_id=repository_id, name=tag)[0]
            pattern = immutable.matching(immutable.parse(own) if own is not None else immutable.parse(default), tag)
            if pattern is not None and current is not None and current != digest:
                raise immutable.refuse_push(conn, repository_id, tag, pattern)
        self._check_references(conn, repository_id, name, parsed)
        # Before this manifest's references exist: what it adds is what the owner does not count yet.
        warning = self.quotas.check_push(conn, repository_id, parsed.blob_digests)
        # The tag this push moves: none without a tag, nor for an immutable tag pushed again with
        # its digest.
        moved = tag if tag is not None and (pattern is None or current is None) else None
        bump = int(moved is not None)
        if labels.any:
            self.db.execute(
                conn,
                self._repository_labels,
                repository_id=repository_id,
                description=labels.description,
                source_url=labels.source_url,
                licenses=labels.licenses,
                at=at,
                bump=bump,
            )
        else:
            self.db.execute(conn, self._repository_pushed, repository_id=repository_id, at=at, bump=bump)
        inserted = self.db.rows(
            conn,
            self._insert_manifest,
            repository_id=repository_id,
            digest=digest,
            media_type=parsed.media_type,
            artifact_type=parsed.artifact_type,
            subject_digest=parsed.subject,
            annotations=json.dumps(parsed.annotations) if parsed.annotations else None,
            payload=parsed.payload,
            size=len(parsed.payload),
            description=labels.description,
            source_url=labels.source_url,
            licenses=labels.licenses,
            platform=labels.platform,
            at=at,
        )
        if inserted:
            manifest_id = inserted[0][0]
            references = [(d, "blob") for d in sorted(set(parsed.blob_digests))]
            references += [(d, "manifest") for d in sorted(set(parsed.child_digests))]
            each = [{"manifest_id": manifest_id, "digest": d, "kind": kind} for d, kind in references]
            self.db.rows_each(conn, self._insert_reference, each)
        else:
            # The version was there: pushing a deleted one again brings it back.
            self.db.execute(conn, self._revive_manifest, repository_id=repository_id, digest=digest, at=at)
            manifest_id = self.db.rows(conn, self._manifest_id, repository_id=repository_id, digest=digest)[0][0]
        if moved is None:
            return warning
        at_tag = {"repository_id": repository_id, "name": moved, "manifest_id": manifest_id, "at": at}
        if pattern is None:
            self.db.execute(conn, self._set_tag, **at_tag)
        elif not self.db.execute(conn, self._add_tag, **at_tag) and (
            # A concurrent push created the tag after the read above (PostgreSQL; SQLite's one
            # writer never gets here): the tag is immutable now, the same digest or nothing.
            self.db.rows(conn, self._tag_digest, repository_id=repository_id, name=moved)[0][0] != digest
        ):
            raise immutable.refuse_push(conn, repository_id, moved, pattern)
        return warning

    def _check_references(self, conn: Connection, repository_id: int, name: str, parsed: ParsedManifest) -> None:
        """Everything a manifest names must already be in its repository."""
        digests = sorted(set(parsed.blob_digests))
        each = [{"repository_id": repository_id, "digest": d} for d in digests]
        found = self.db.rows_each(conn, self._has_blob, each)
        missing = [d for d, rows in zip(digests, found, strict=True) if not rows]
        if missing:
            raise ManifestBlobUnknown(
                f"manifest references blob {missing[0]}, which has not been pushed to {name}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                detail={"missing": missing},
            )
        digests = sorted(set(parsed.child_digests))
        each = [{"repository_id": repository_id, "digest": d} for d in digests]
        found = self.db.rows_each(conn, self._live_manifest_id, each)
        missing = [d for d, rows in zip(digests, found, strict=True) if not rows]
        if missing:
            raise ManifestBlobUnknown(
                f"index references manifest {missing[0]}, which has not been pushed to {name}; "
                "push the platform manifests before the index",
                detail={"missing": missing},
            )

    async def delete_manifest(self, name: str, reference: str) -> None:
        """DELETE on the registry API: a digest deletes the version (restorable), a tag only untags."""
        ref = lookup_reference(reference)

        def change(conn: Connection) -> bool:
            repository_id = _require_repository(conn, name)
            if not isinstance(ref, Digest):
                lock_repository(conn, repository_id)  # before the tag, in a push's order
                if not conn.execute(
                    delete(tags).where(tags.c.repository_id == repository_id, tags.c.name == ref)
                ).rowcount:
                    return False
                immutable.refuse_untag(conn, repository_id, ref)  # raising undoes the delete
                self.db.execute(conn, self._bump_tags_version, repository_id=repository_id)
                return True
            found = self.db.rows(conn, self._live_manifest_id, repository_id=repository_id, digest=str(ref))
            if not found:
                return False
            manifest_id = found[0][0]
            tag_names = list(conn.execute(select(tags.c.name).where(tags.c.manifest_id == manifest_id)).scalars())
            hide_manifest(conn, repository_id, manifest_id, tag_names)
            return True

        if not await self.db.write(change):
            raise ManifestUnknown(
                f"manifest {reference} is not in repository {name}", detail={"name": name, "reference": reference}
            )

    # -- tags and referrers --------------------------------------------------------------------

    async def tags(self, name: str, n: int | None, last: str | None) -> Page:
        """A page of tags, from this process's cache while the repository's tags have not changed."""
        row = await self.db.fetch_one(self._tags_version, name=name)
        if row is None:
            raise NameUnknown(f"repository {name} is not known to this registry", detail={"name": name})
        key = (row[0], row[1], n, last)
        page = self._tag_pages.get(key)
        if page is None:
            page = await self._read_tags(name, n, last)
            if len(self._tag_pages) >= TAG_PAGE_CACHE:
                self._tag_pages.pop(next(iter(self._tag_pages)))  # the oldest entry
            self._tag_pages[key] = page
        return page

    async def _read_tags(self, name: str, n: int | None, last: str | None) -> Page:
        if n == 0:
            return Page([], more=False)
        limit = MAX_PAGE if n is None else min(n, MAX_PAGE)
        query = self._all_tags if n is None else self._tags_page
        rows = await self.db.fetch(query, name=name, last=last or "", limit=limit + 1)
        names = [row[0] for row in rows]
        if n is None:
            return Page(names, more=False)
        return Page(names[:limit], more=len(names) > limit)

    async def referrers(self, name: str, digest: Digest, artifact_type: str | None) -> list[dict[str, object]]:
        def query(conn: Connection) -> list[dict[str, object]]:
            # No 404 even for an unknown repository: clients take a 404 to mean "no referrers API".
            repository_id = _repository_id(conn, name)
            if repository_id is None:
                return []
            conditions = [
                manifests.c.repository_id == repository_id,
                manifests.c.subject_digest == str(digest),
                manifests.c.deleted_at.is_(None),
            ]
            if artifact_type:
                conditions.append(manifests.c.artifact_type == artifact_type)
            rows = conn.execute(
                select(
                    manifests.c.media_type,
                    manifests.c.size,
                    manifests.c.digest,
                    manifests.c.artifact_type,
                    manifests.c.annotations,
                )
                .where(and_(*conditions))
                .order_by(manifests.c.id)
            )
            result: list[dict[str, object]] = []
            for media_type, size, ref_digest, ref_artifact_type, ref_annotations in rows:
                descriptor: dict[str, object] = {"mediaType": media_type, "size": size, "digest": ref_digest}
                if ref_artifact_type:
                    descriptor["artifactType"] = ref_artifact_type
                if ref_annotations:
                    descriptor["annotations"] = json.loads(ref_annotations)
                result.append(descriptor)
            return result

        return await self.db.read(query)


def _page(conn: Connection, stmt: Select[tuple[str]], n: int | None) -> Page:
    if n is None:
        return Page(list(conn.execute(stmt).scalars()), more=False)
    if n == 0:
        return Page([], more=False)
    limit = min(n, MAX_PAGE)
    items = list(conn.execute(stmt.limit(limit + 1)).scalars())
    return Page(items[:limit], more=len(items) > limit)


def _record_statement(db: Database, ending: Delete | None) -> Executable:
    """PostgreSQL: `link_blob`, and the end of the upload's session, as one statement; answers
    (whether the session ended, whether the blob's row is new, the repository's id or NULL). Nothing
    is written unless the repository exists (the session's DELETE waits for it too): a first push
    to a repository creates it in a transaction, with its package (`on_create`). The caller holds
    the digest's lock, as for `link_blob`; refreshing seen_at locks an existing blob's row, which
    garbage collection locks FOR UPDATE (docs/lifecycle.md)."""
    at, digest = bindparam("at", type_=blobs.c.seen_at.type), bindparam("digest")
    repository = select(repositories.c.id).where(repositories.c.name == bindparam("name")).cte("repository")
    present = exists(select(repository.c.id))
    if ending is None:
        go = present
    else:
        ended = ending.where(present).returning(literal_column("1").label("one")).cte("ended")
        go = exists(select(ended.c.one))
    fresh = (
        db.insert(blobs)
        .from_select(
            ["digest", "size", "location", "created_at"],
            select(digest, bindparam("size"), bindparam("location"), at).where(go),
        )
        .on_conflict_do_nothing(index_elements=["digest"])
        .returning(blobs.c.digest)
        .cte("fresh")
    )
    # Sees only a row that was there before the statement: a new one has its seen_at from `fresh`.
    seen = update(blobs).where(blobs.c.digest == digest, go).values(seen_at=at).returning(blobs.c.digest).cte("seen")
    linked = (
        db.insert(repository_blobs)
        .from_select(["repository_id", "digest", "created_at"], select(repository.c.id, digest, at).where(go))
        .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
        .returning(repository_blobs.c.digest)
        .cte("linked")
    )
    # PostgreSQL runs a data-modifying CTE whether or not the query reads it; add_cte renders it.
    answer = select(go, exists(select(fresh.c.digest)), select(repository.c.id).scalar_subquery())
    return answer.add_cte(seen, linked)


def _mount_statement(db: Database) -> Executable:
    """PostgreSQL: refresh a blob's seen_at and link it into an existing repository in one
    statement; answers (whether the blob's row was there, the repository's id or NULL). The UPDATE
    locks the blob's row as the transaction of `mount` does, so garbage collection's FOR UPDATE
    orders against it the same way (docs/lifecycle.md)."""
    at, digest = bindparam("at", type_=blobs.c.seen_at.type), bindparam("digest")
    seen = update(blobs).where(blobs.c.digest == digest).values(seen_at=at).returning(blobs.c.digest).cte("seen")
    repository = select(repositories.c.id).where(repositories.c.name == bindparam("name")).cte("repository")
    linked = (
        db.insert(repository_blobs)
        .from_select(
            ["repository_id", "digest", "created_at"],
            select(repository.c.id, seen.c.digest, at),
        )
        .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
        .returning(repository_blobs.c.digest)
        .cte("linked")
    )
    # PostgreSQL runs a data-modifying CTE whether or not the query reads it; add_cte renders it.
    return select(exists(select(seen.c.digest)), select(repository.c.id).scalar_subquery()).add_cte(linked)
