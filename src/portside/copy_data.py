"""Copying an installation to other backends (`portside copy-data`): every table of the metadata
database, then every blob the database records, each verified against its digest on the way.

Resumable by construction: rows go in with ON CONFLICT DO NOTHING, one committed batch at a time,
and a blob the destination already holds at its recorded size is skipped, so running the copy again
after an interruption carries on where it stopped and copies nothing twice. The source is read in
one transaction (a consistent snapshot, even if something writes to it meanwhile); the destination
should be empty or an earlier, interrupted copy of the same source.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Integer, LargeBinary, Table, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from portside.access import keys
from portside.access.bearer import KEY_FILE
from portside.blobs import StorageUrlInvalid, open_store
from portside.blobs.store import BlobStore
from portside.bootstrap import SESSION_KEY_FILE
from portside.faults import BlobMissing, Unavailable
from portside.metadata.database import (
    current_revision,
    dialect_insert,
    engine_url,
    head_revision,
    make_engine,
    upgrade,
)
from portside.metadata.schema import accounts, blobs, metadata, server_keys

# Not copied, and why (the summary and docs/storage.md say so too).
SKIPPED_TABLES = {
    "uploads": "uploads in progress are partial bytes in the old blob store; clients start them again",
    "blob_deletions": "garbage collection's journal of bytes it is deleting from the old blob store",
}
ROW_BATCH = 500
PAYLOAD_ROW_BATCH = 20  # rows with a binary column: a manifest's payload can be megabytes
BLOB_PAGE = 1000  # blob rows listed per query
BLOB_WORKERS = 4  # blobs copied at once: S3 round trips overlap; memory stays a few parts per worker


class CopyError(Exception):
    """Why the copy cannot go on, in one line for the operator (what to fix, never a secret)."""


class Progress(Protocol):
    """What the surface shows while a phase runs: `begin`, any number of `advance`, `end`."""

    def begin(self, what: str, total: int) -> None: ...
    def advance(self, amount: int) -> None: ...
    def end(self) -> None: ...


class NoProgress:
    def begin(self, what: str, total: int) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def end(self) -> None:
        pass


@dataclass(frozen=True)
class Plan:
    """The installation's own settings (the source) and the backends to copy it to. A destination
    left as None is the source's own: that half is not copied."""

    database_url: str
    storage_url: str
    data_dir: Path
    to_database: str | None
    to_storage: str | None
    fsync: bool = True


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int  # in the source
    copied: int  # new in the destination this run (the rest were there from an earlier run)


@dataclass(frozen=True)
class BlobFailure:
    digest: str
    reason: str


@dataclass
class Summary:
    tables: list[TableCopy] = field(default_factory=list)
    skipped_tables: dict[str, str] = field(default_factory=dict)
    rows_note: str | None = None  # why no rows were copied at all
    blobs_copied: int = 0
    blobs_present: int = 0  # already in the destination at the right size
    blob_failures: list[BlobFailure] = field(default_factory=list)
    bytes_copied: int = 0
    blobs_note: str | None = None
    elapsed_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.blob_failures

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def copy_installation(plan: Plan, progress: Progress | None = None) -> Summary:
    """Check both ends, then copy the rows, then the blobs; CopyError if either end is unusable."""
    progress = progress or NoProgress()
    began = time.monotonic()
    summary = Summary()
    copy_rows = plan.to_database is not None
    target_database = plan.to_database or plan.database_url
    if copy_rows and engine_url(target_database) == engine_url(plan.database_url):
        raise CopyError("--to-database names the installation's own database: nothing to copy it to")
    _require_head(plan.database_url)
    source_store, target_store = _open_stores(plan)
    try:
        if target_store is not None:
            asyncio.run(_check_store(target_store, "destination"))
        if copy_rows:
            _migrate(target_database)
            summary.tables = _copy_rows(plan, target_database, progress)
            summary.skipped_tables = dict(SKIPPED_TABLES)
        else:
            summary.rows_note = "no --to-database: the rows stay in the installation's own database"
        if target_store is not None:
            asyncio.run(_copy_blobs(plan.database_url, source_store, target_store, progress, summary))
        else:
            summary.blobs_note = "no --to-storage: the blobs stay in the installation's own storage"
    finally:
        asyncio.run(_close(source_store, target_store))
    summary.elapsed_seconds = round(time.monotonic() - began, 3)
    return summary


# -- both ends -------------------------------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's exception
    return f"{cause.__class__.__name__}: {str(cause).strip()}".splitlines()[0]


def _require_head(url: str) -> None:
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise CopyError(f"there is no database at {url.removeprefix('sqlite:///')}: give the installation's --data-dir")
    try:
        current = current_revision(url)
    except SQLAlchemyError as error:
        raise CopyError(f"the source database cannot be read: {_one_line(error)}") from None
    head = head_revision()
    if current is None:
        raise CopyError("the source database has no Portside schema: give the installation's settings")
    if current != head:
        raise CopyError(
            f"the source database schema is at revision {current}, this release copies {head}: "
            "run `portside migrate` on it with this release first (or copy with the release that made it)"
        )


def _migrate(url: str) -> None:
    try:
        upgrade(url)
    except (SQLAlchemyError, OSError) as error:
        raise CopyError(f"the destination database cannot be used: {_one_line(error)}") from None


def _open_stores(plan: Plan) -> tuple[BlobStore, BlobStore | None]:
    try:
        source = open_store(plan.storage_url, plan.data_dir, fsync=plan.fsync, redirect=False)
        if plan.to_storage is None:
            return source, None
        target = open_store(plan.to_storage, plan.data_dir, fsync=plan.fsync, redirect=False)
    except (StorageUrlInvalid, OSError) as error:
        raise CopyError(str(error)) from None
    if target.description == source.description:
        asyncio.run(_close(source, target))
        raise CopyError("--to-storage names the installation's own blob storage: nothing to copy it to")
    return source, target


async def _check_store(store: BlobStore, which: str) -> None:
    problem = await store.check()
    if problem is not None:
        raise CopyError(f"the {which} blob storage cannot be used: {problem}")


async def _close(*stores: BlobStore | None) -> None:
    for store in stores:
        if store is not None:
            await store.close()


# -- rows ------------------------------------------------------------------------------------------


def _copy_rows(plan: Plan, target_url: str, progress: Progress) -> list[TableCopy]:
    tables = [table for table in metadata.sorted_tables if table.name not in SKIPPED_TABLES]  # parents first
    source, target = make_engine(plan.database_url), make_engine(target_url, fsync=plan.fsync)
    copied: list[TableCopy] = []
    try:
        with source.connect() as read:  # one transaction: every table from the same moment
            _refuse_keys_left_behind(read, plan.data_dir)
            _refuse_another_installation(read, target)
            totals = {table.name: _count(read, table) for table in tables}
            progress.begin("rows", sum(totals.values()))
            try:
                for table in tables:
                    before = _target_count(target, table)
                    _copy_table(read, target, table, progress)
                    copied.append(TableCopy(table.name, totals[table.name], _target_count(target, table) - before))
                if target.dialect.name == "postgresql":
                    _reset_sequences(target, tables)
            finally:
                progress.end()
    except SQLAlchemyError as error:
        raise CopyError(f"copying rows failed (run the copy again to resume): {_one_line(error)}") from None
    finally:
        source.dispose()
        target.dispose()
    return copied


def _refuse_keys_left_behind(read: Connection, data_dir: Path) -> None:
    """A registry last served by a release that kept its signing keys in the data directory has them
    moved into the database on its next start (bootstrap); copied before that, the copy would sign
    with new keys and every token and cookie the installation issued would stop verifying."""
    purposes = set(read.execute(select(server_keys.c.purpose).distinct()).scalars())
    for purpose, name in ((keys.TOKEN, KEY_FILE), (keys.SESSION, SESSION_KEY_FILE)):
        if purpose not in purposes and (data_dir / name).is_file():
            raise CopyError(
                f"the {purpose} key is still in {data_dir / name}: start the installation once with this "
                "release (it moves its keys into the database), stop it, then copy"
            )


def _refuse_another_installation(read: Connection, target: Engine) -> None:
    """Rows that are there already are passed over, which is right for an earlier run of this copy
    and wrong for anything else: another installation's admin (id 1, say) would shadow this one's,
    and its tokens with it. Accounts tell the two apart: the same id, name and creation time."""
    columns = (accounts.c.id, accounts.c.name, accounts.c.created_at)
    ours = set(read.execute(select(*columns)).tuples())
    with target.connect() as conn:
        theirs = set(conn.execute(select(*columns)).tuples())
    if strangers := sorted(theirs - ours):
        raise CopyError(
            f"the destination database holds accounts this installation does not have ({strangers[0][1]!r}, "
            "for one): copy into an empty database (only an interrupted copy of this one is resumed)"
        )


def _count(conn: Connection, table: Table) -> int:
    return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def _target_count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return _count(conn, table)


def _copy_table(read: Connection, target: Engine, table: Table, progress: Progress) -> None:
    binary = any(isinstance(column.type, LargeBinary) for column in table.columns)
    batch = PAYLOAD_ROW_BATCH if binary else ROW_BATCH
    # Rows that are there already (an earlier, interrupted run) are passed over: resuming is rerunning.
    insert = dialect_insert(target.dialect.name, table).on_conflict_do_nothing()
    ordered = select(table).order_by(*table.primary_key.columns)
    for rows in read.execution_options(yield_per=batch).execute(ordered).partitions():
        values = [row._asdict() for row in rows]
        if table is blobs:  # every blob is copied to its content address (_copy_blob), wherever it was
            values = [{**value, "location": None} for value in values]
        with target.begin() as write:  # committed batch by batch, so an interruption keeps what was done
            write.execute(insert, values)
        progress.advance(len(rows))


def _reset_sequences(target: Engine, tables: list[Table]) -> None:
    """Rows came with their ids, which PostgreSQL's serial sequences did not hand out: move each to
    the largest id, so the next row the new installation writes does not collide."""
    quote = target.dialect.identifier_preparer.quote
    with target.begin() as conn:
        for table in tables:
            keys = list(table.primary_key.columns)
            if len(keys) != 1 or not isinstance(keys[0].type, Integer):
                continue
            name, column = quote(table.name), quote(keys[0].name)
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence(:table, :column), COALESCE(MAX({column}), 1), "
                    f"MAX({column}) IS NOT NULL) FROM {name}"
                ),
                {"table": table.name, "column": keys[0].name},
            )


# -- blobs -----------------------------------------------------------------------------------------


class _Mismatch(Exception):
    pass


_Blob = tuple[str, int, str | None]  # digest, size, where the source keeps it (None: content address)


async def _copy_blobs(
    database_url: str, source: BlobStore, target: BlobStore, progress: Progress, summary: Summary
) -> None:
    """Every blob the source database records: it, not a listing of the store, says which blobs
    the installation has (a store may hold leftovers no row refers to)."""
    await _check_store(source, "source")
    engine = make_engine(database_url)
    try:
        count, total = await asyncio.to_thread(_blob_totals, engine)
        queue: asyncio.Queue[_Blob | None] = asyncio.Queue(maxsize=4 * BLOB_WORKERS)
        progress.begin(f"blobs ({count}, {total / 1024**2:.1f} MiB)", total)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(BLOB_WORKERS):
                    group.create_task(_blob_worker(queue, source, target, progress, summary))
                await _list_blobs(engine, queue)
        except* Unavailable as caught:
            error = caught.exceptions[0]
            assert isinstance(error, Unavailable)
            raise CopyError(f"copying blobs stopped (run the copy again to resume): {error.operator}") from None
        except* SQLAlchemyError as caught:
            raise CopyError(f"listing the blobs failed: {_one_line(caught.exceptions[0])}") from None
        finally:
            progress.end()
    except SQLAlchemyError as error:
        raise CopyError(f"listing the blobs failed: {_one_line(error)}") from None
    finally:
        engine.dispose()


def _blob_totals(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        count, total = conn.execute(select(func.count(), func.coalesce(func.sum(blobs.c.size), 0))).one()
    return int(count), int(total)


async def _list_blobs(engine: Engine, queue: asyncio.Queue[_Blob | None]) -> None:
    def page(after: str) -> list[_Blob]:
        with engine.connect() as conn:
            query = select(blobs.c.digest, blobs.c.size, blobs.c.location).where(blobs.c.digest > after)
            return [(d, s, loc) for d, s, loc in conn.execute(query.order_by(blobs.c.digest).limit(BLOB_PAGE))]

    after = ""
    while rows := await asyncio.to_thread(page, after):
        for row in rows:
            await queue.put(row)
        after = rows[-1][0]
    for _ in range(BLOB_WORKERS):
        await queue.put(None)


async def _blob_worker(
    queue: asyncio.Queue[_Blob | None],
    source: BlobStore,
    target: BlobStore,
    progress: Progress,
    summary: Summary,
) -> None:
    while (item := await queue.get()) is not None:
        digest, size, location = item
        try:
            copied = await _copy_blob(source, target, digest, size, location, progress.advance)
        except BlobMissing:
            summary.blob_failures.append(BlobFailure(digest, "its bytes are missing from the source storage"))
        except _Mismatch as mismatch:
            summary.blob_failures.append(BlobFailure(digest, str(mismatch)))
        else:
            if copied:
                summary.blobs_copied += 1
                summary.bytes_copied += size
            else:
                summary.blobs_present += 1
                progress.advance(size)


async def _copy_blob(
    source: BlobStore,
    target: BlobStore,
    digest: str,
    size: int,
    location: str | None,
    advance: Callable[[int], None],
) -> bool:
    """Stream one blob across, hashing on the way; it becomes visible in `target` only if the bytes
    hash to `digest`. False when `target` already held it."""
    held = await target.size(digest)
    if held == size:
        return False
    if held is not None:
        await target.delete(digest)  # not the recorded size: a leftover, not this blob; replace it
    algorithm = digest.split(":", 1)[0]
    if algorithm not in hashlib.algorithms_available:
        raise _Mismatch(f"unsupported digest algorithm {algorithm!r}")
    hasher = hashlib.new(algorithm)
    upload_id = f"copy-{uuid.uuid4()}"
    state = await target.create_upload(upload_id)
    writer = await target.open_upload(upload_id, state, 0, digest)
    received = 0
    try:
        async for chunk in source.read(digest, location=location):
            hasher.update(chunk)
            received += len(chunk)
            await writer.write(memoryview(chunk))
            advance(len(chunk))
        actual = f"{algorithm}:{hasher.hexdigest()}"
        if actual != digest or received != size:
            raise _Mismatch(f"digest mismatch: the source's {received} bytes hash to {actual} (recorded: {size} bytes)")
        if await writer.commit(digest, size) is not None:  # a known digest goes to its content address
            raise AssertionError(f"{target.description} stored {digest} elsewhere than at its content address")
    except BaseException:
        await writer.abort()
        await target.delete_upload(upload_id, state)
        raise
    return True
