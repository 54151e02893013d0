"""Blob upload sessions: monolithic, chunked and resumable, in any worker, on any replica, across
restarts.

Everything a session needs to go on lives in the database with it: the acknowledged size, the
running hash at that size (blobs.hashing: OpenSSL's state, saved and resumed, so no process ever
re-reads what was uploaded) and the blob store's own state (for S3: the staged parts). One request
writes at a time: it takes the session's lease by compare-and-set, and gives it back in the same
write that acknowledges its bytes.

A request that brings a whole blob to an empty session (POST, then PUT with the body) needs no
lease: its bytes go to a place of its own in the store, and the transaction that records the blob
ends the session only if it is still empty and free (a compare-and-set), so two such requests
never both succeed. A single-request upload (POST with ?digest=) has no session row at all. Each
saves a database write per blob: on disk, what a push of many small images waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, delete, or_, select, update

from portside.blobs.filesystem import aligned_buffer
from portside.blobs.hashing import ResumableHash
from portside.blobs.store import BlobStore, UploadWriter
from portside.clock import now
from portside.metadata.database import Database, Rider
from portside.metadata.schema import uploads
from portside.registry.errors import (
    BlobUploadUnknown,
    DigestInvalid,
    RangeNotSatisfiable,
    SizeInvalid,
)
from portside.registry.references import Digest
from portside.registry.service import RECENT_CONFIG_BYTES, OnCreate, Registry

# Large bodies are received into two buffers of this size: while one fills, the other is hashed and
# written. An upload in flight holds both.
WRITE_BUFFER = 2 * 1024 * 1024
SPARE_BUFFERS = 8  # kept for the next uploads: 16 MiB per process
# Requests declaring at most this many bytes are hashed on the event loop as one piece: hashing a
# few KiB takes microseconds, far less than handing it to a thread and waiting for the GIL back.
INLINE_BODY = 256 * 1024
DEFAULT_ALGORITHM = "sha256"
# A writer renews its lease while it receives; a lease not renewed for this long belonged to a
# process that died, and another request may take the upload over. Short, because a client whose
# replica was killed mid-chunk waits this long to resume on another (416 with the range meanwhile);
# renewing every third of it costs one small write per 3 s of a long chunk.
LEASE_SECONDS = 10
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Leased:
    """An upload as the request writing to it found it: holding its lease (`token`), or, with no
    token, an empty session claimed only when the blob is recorded (`row`: a session row to end;
    False for a single-request upload, which has none)."""

    upload_id: str
    token: str
    offset: int
    hash_state: bytes | None
    store_state: str
    row: bool = True


@dataclass(frozen=True, slots=True)
class Peeked:
    """What `Uploads.peek` found: an empty, free session, or None (it must be claimed with a lease)."""

    fresh: _Leased | None


class Uploads:
    def __init__(self, db: Database, store: BlobStore, registry: Registry, *, ttl_seconds: int) -> None:
        self.db = db
        self.store = store
        self.registry = registry
        self.ttl = timedelta(seconds=ttl_seconds)
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="hash")
        self._spare_buffers: list[mmap.mmap] = []
        upload_id, at, token = bindparam("upload_id"), bindparam("at"), bindparam("token")
        self._size = db.query(
            select(uploads.c.size).where(uploads.c.id == upload_id, uploads.c.repository_name == bindparam("name"))
        )
        self._insert = db.query(
            uploads.insert().values(
                id=upload_id,
                repository_name=bindparam("name"),
                size=0,
                store_state=bindparam("store_state"),
                lease=bindparam("lease"),
                lease_until=bindparam("lease_until"),
                created_at=at,
                updated_at=at,
            )
        )
        # Compare-and-set: the lease is free, or its holder stopped renewing it.
        self._take_lease = db.query(
            update(uploads)
            .where(
                uploads.c.id == upload_id,
                uploads.c.repository_name == bindparam("name"),
                or_(uploads.c.lease.is_(None), uploads.c.lease_until < at),
            )
            .values(lease=token, lease_until=bindparam("until"))
        )
        # What a request finishing a session sees before deciding whether it needs the lease.
        self._peek = db.query(
            select(uploads.c.size, uploads.c.store_state, uploads.c.lease, uploads.c.lease_until).where(
                uploads.c.id == upload_id, uploads.c.repository_name == bindparam("name")
            )
        )
        self._leased = db.query(
            select(uploads.c.size, uploads.c.hash_state, uploads.c.store_state).where(
                uploads.c.id == upload_id, uploads.c.lease == token
            )
        )
        self._renew = db.query(
            update(uploads).where(uploads.c.id == upload_id, uploads.c.lease == token).values(lease_until=at)
        )
        self._release = db.query(
            update(uploads).where(uploads.c.id == upload_id, uploads.c.lease == token).values(lease=None)
        )
        # Only the holder of the lease may acknowledge bytes, and doing so gives the lease back.
        self._acknowledge = db.query(
            update(uploads)
            .where(uploads.c.id == upload_id, uploads.c.lease == token)
            .values(
                size=bindparam("size"),
                hash_state=bindparam("hash_state"),
                store_state=bindparam("store_state"),
                lease=None,
                updated_at=at,
            )
        )
        self._store_state = db.query(select(uploads.c.store_state).where(uploads.c.id == upload_id))
        self._remove = db.query(delete(uploads).where(uploads.c.id == upload_id))
        remove_leased = delete(uploads).where(uploads.c.id == upload_id, uploads.c.lease == token)
        # An empty session claimed at the end: still empty, and nobody holding its lease.
        remove_fresh = delete(uploads).where(
            uploads.c.id == upload_id,
            uploads.c.size == 0,
            or_(uploads.c.lease.is_(None), uploads.c.lease_until < at),
        )
        self._remove_leased, self._remove_fresh = db.query(remove_leased), db.query(remove_fresh)
        # The same ends with the blob's record, as one statement (PostgreSQL: Registry.blob_recorder);
        # and the record of an upload that has no session row.
        self._record_leased = registry.blob_recorder(remove_leased)
        self._record_fresh = registry.blob_recorder(remove_fresh)
        self._record_whole = registry.blob_recorder(None)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- session lifecycle ---------------------------------------------------------------------

    async def start(self, name: str) -> str:
        return (await self._start(name, None)).upload_id

    async def _start(self, name: str, lease: str | None) -> _Leased:
        """A new session; with `lease`, held by the caller from the start."""
        upload_id = str(uuid.uuid4())
        state = await self.store.create_upload(upload_id)
        at = now()
        until = at + timedelta(seconds=LEASE_SECONDS) if lease else None
        await self.db.commit_one(
            self._insert,
            upload_id=upload_id,
            name=name,
            store_state=state,
            lease=lease,
            lease_until=until,
            at=at,
        )
        return _Leased(upload_id, lease or "", 0, None, state)

    async def status(self, name: str, upload_id: str) -> int:
        row = await self.db.fetch_one(self._size, upload_id=upload_id, name=name) if _valid_id(upload_id) else None
        if row is None:
            raise _unknown(name, upload_id)
        return int(row[0])

    async def cancel(self, name: str, upload_id: str) -> None:
        await self.status(name, upload_id)
        await self._forget(upload_id)

    async def _forget(self, upload_id: str) -> None:
        def change(conn: Connection) -> str | None:
            rows = self.db.rows(conn, self._store_state, upload_id=upload_id)
            self.db.execute(conn, self._remove, upload_id=upload_id)
            return rows[0][0] if rows else None

        state = await self.db.write(change)
        if state is not None:
            await self.store.delete_upload(upload_id, state)

    # -- the lease -----------------------------------------------------------------------------

    async def _take(self, name: str, upload_id: str) -> _Leased:
        if not _valid_id(upload_id):
            raise _unknown(name, upload_id)
        token = secrets.token_hex(16)

        def take(conn: Connection) -> tuple[Any, ...] | bool:
            at = now()
            until = at + timedelta(seconds=LEASE_SECONDS)
            if self.db.execute(conn, self._take_lease, upload_id=upload_id, name=name, token=token, at=at, until=until):
                return self.db.rows(conn, self._leased, upload_id=upload_id, token=token)[0]
            return bool(self.db.rows(conn, self._size, upload_id=upload_id, name=name))

        found = await self.db.write(take)
        if found is False:
            raise _unknown(name, upload_id)
        if found is True:
            offset = await self.status(name, upload_id)
            raise RangeNotSatisfiable(
                f"another request is writing to upload {upload_id}; chunks must be sent one at a time",
                headers={"Range": _range_header(offset)},
            )
        assert isinstance(found, tuple)
        size, hash_state, store_state = found
        return _Leased(upload_id, token, int(size), hash_state, store_state or "")

    async def _claim(self, name: str, upload_id: str) -> _Leased:
        """For a request finishing a session: an empty, free session as it is (claimed when the blob
        is recorded), any other with its lease."""
        return await self.claim(name, upload_id, await self.peek(name, upload_id))

    async def peek(self, name: str, upload_id: str, rider: Rider | None = None) -> Peeked:
        """The first step of finishing a session, a read only: the session as it is when it is
        empty and free (finishing it needs no lease). `rider`: a read to make in the same statement
        (metadata.database.Rider)."""
        if not _valid_id(upload_id):
            return Peeked(None)
        row = await self.db.fetch_one(self._peek, rider=rider, upload_id=upload_id, name=name)
        if row is not None and row[0] == 0 and (row[2] is None or row[3] < now()):
            return Peeked(_Leased(upload_id, "", 0, None, row[1] or ""))
        return Peeked(None)

    async def claim(self, name: str, upload_id: str, peeked: Peeked) -> _Leased:
        """The second: the empty session `peek` found, or any other with its lease (a write)."""
        return peeked.fresh or await self._take(name, upload_id)

    @contextlib.asynccontextmanager
    async def _holding(self, leased: _Leased) -> AsyncIterator[None]:
        """Renew the lease while the request works; give it back if the request fails."""
        if not leased.token:
            yield
            return

        async def renew() -> None:
            while True:
                await asyncio.sleep(LEASE_SECONDS / 3)
                until = now() + timedelta(seconds=LEASE_SECONDS)
                await self.db.write(
                    self.db.execute, self._renew, upload_id=leased.upload_id, token=leased.token, at=until
                )

        renewing = asyncio.create_task(renew())
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                await self.db.write(self.db.execute, self._release, upload_id=leased.upload_id, token=leased.token)
            raise
        finally:
            renewing.cancel()

    # -- receiving bytes -----------------------------------------------------------------------

    async def append(
        self,
        name: str,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        content_range: tuple[int, int] | None,
        content_length: int | None,
    ) -> int:
        leased = await self._take(name, upload_id)
        async with self._holding(leased):
            offset = leased.offset
            if content_range is not None:
                start, end = content_range
                if start != offset:
                    raise RangeNotSatisfiable(
                        f"chunk starts at byte {start}, but {offset} bytes have been received; "
                        f"send the next chunk from byte {offset}",
                        headers={"Range": _range_header(offset)},
                        detail={"expected_start": offset},
                    )
                if content_length is not None and content_length != end - start + 1:
                    raise SizeInvalid(
                        f"Content-Range {start}-{end} covers {end - start + 1} bytes but Content-Length is "
                        f"{content_length}",
                        headers={"Range": _range_header(offset)},
                    )
                content_length = end - start + 1
            hasher = _hasher(leased, DEFAULT_ALGORITHM) or await self._rehash(leased, DEFAULT_ALGORITHM)
            writer = await self.store.open_upload(upload_id, leased.store_state, offset, None)
            size = await self._receive(writer, offset, chunks, content_length, hasher)
            try:
                state = await writer.close()
            except BaseException:
                await writer.abort()
                raise
            acknowledged = await self.db.write(
                self.db.execute,
                self._acknowledge,
                upload_id=upload_id,
                token=leased.token,
                size=size,
                hash_state=hasher.state(),
                store_state=state,
                at=now(),
            )
            if not acknowledged:
                raise _changed(upload_id)
            return size

    async def finish(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
        on_create: OnCreate | None = None,
        *,
        leased: _Leased | None = None,
    ) -> None:
        leased = leased or await self._claim(name, upload_id)
        async with self._holding(leased):
            offset = leased.offset
            # A session hashed as sha256 that ends with another algorithm is read back, once.
            hasher = _hasher(leased, digest.algorithm) or await self._rehash(leased, digest.algorithm)
            writer = await self.store.open_upload(
                upload_id, leased.store_state, offset, str(digest) if not offset else None
            )
            # A small whole blob (perhaps a config: Registry.received) is kept for the manifest after it.
            small = not offset and content_length is not None and content_length <= RECENT_CONFIG_BYTES
            whole = bytearray() if small else None
            size = await self._receive(writer, offset, chunks, content_length, hasher, keep=whole)
            actual = hasher.hexdigest()
            if actual != digest.hex:
                await writer.abort()
                if leased.row:
                    await self._forget(upload_id)
                raise DigestInvalid(
                    f"uploaded content has digest {digest.algorithm}:{actual}, not {digest}; the upload was "
                    "discarded, push the blob again",
                    detail={"expected": str(digest), "computed": f"{digest.algorithm}:{actual}"},
                )

            # Only the lease's holder, or the first to claim an empty session, ends it; the blob is
            # linked in the same transaction (or statement: `recorder`, on PostgreSQL).
            if leased.token:
                remove, recorder = self._remove_leased, self._record_leased
            elif leased.row:
                remove, recorder = self._remove_fresh, self._record_fresh
            else:  # a single-request upload: no session row to end
                remove, recorder = None, self._record_whole
            ending = {"upload_id": upload_id, "token": leased.token}

            def record(conn: Connection) -> tuple[bool, bool]:
                ended = remove is None or self.db.execute(conn, remove, **ending, at=now())
                if not ended:
                    return False, False
                return True, self.registry.link_blob(conn, name, str(digest), size, on_create, location)

            # The digest's lock from storing the bytes to recording them: garbage collection deleting
            # an earlier copy at the same address never overlaps (registry.gc).
            async with self.db.locks.hold([str(digest)]):
                try:
                    location = await writer.commit(str(digest), size)
                except BaseException:
                    await writer.abort()
                    raise
                done = None
                if recorder is not None:  # PostgreSQL, into an existing repository: one statement
                    done = await self.registry.record_blob(
                        recorder, **ending, name=name, digest=str(digest), size=size, location=location, at=now()
                    )
                ended, recorded = done if done is not None else await self.db.write(record)
            if location is not None and not recorded:
                # The digest was stored before (another upload): its row wins and this copy goes.
                # A session whose lease was lost recorded nothing: no row points at its copy either.
                await self.registry.drop_duplicate(str(digest), location)
            if not ended:
                raise _changed(upload_id)
            if whole is not None:
                self.registry.received(str(digest), bytes(whole))

    async def monolithic(
        self,
        name: str,
        digest: Digest,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
        on_create: OnCreate | None = None,
    ) -> None:
        # No session row: nobody else can name this upload, and a crash leaves only store bytes, which
        # expire() reclaims as orphans.
        upload_id = str(uuid.uuid4())
        leased = _Leased(upload_id, "", 0, None, await self.store.create_upload(upload_id), row=False)
        await self.finish(name, upload_id, digest, chunks, content_length, on_create, leased=leased)

    async def _receive(
        self,
        writer: UploadWriter,
        offset: int,
        chunks: AsyncIterator[bytes],
        expected: int | None,
        hasher: ResumableHash,
        *,
        keep: bytearray | None = None,
    ) -> int:
        """Append a request's bytes at the acknowledged `offset`; the new size. A small body is also
        copied into `keep`, when given.

        The caller acknowledges them. Until then they are harmless: whoever writes next starts from
        the acknowledged size, and this writer forgets them if the request fails.
        """
        try:
            if expected is not None and expected <= INLINE_BODY:
                received = await self._receive_inline(writer, chunks, expected, hasher, keep)
            else:
                received = await self._receive_buffered(writer, chunks, expected, hasher)
            if expected is not None and received != expected:
                raise SizeInvalid(f"request body has {received} bytes but its length was given as {expected}")
        except BaseException:
            # A client that vanished or lied about sizes, or a store that failed: forget this request.
            with contextlib.suppress(Exception):
                await writer.abort()
            raise
        return offset + received

    async def _receive_inline(
        self,
        writer: UploadWriter,
        chunks: AsyncIterator[bytes],
        expected: int,
        hasher: ResumableHash,
        keep: bytearray | None,
    ) -> int:
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if len(body) > expected:
                raise SizeInvalid(f"request body is longer than its declared {expected} bytes")
        hasher.update(body)
        if keep is not None:
            keep += body
        await writer.write(memoryview(body))
        return len(body)

    async def _receive_buffered(
        self, writer: UploadWriter, chunks: AsyncIterator[bytes], expected: int | None, hasher: ResumableHash
    ) -> int:
        """Fill one page-aligned buffer while the previous one is hashed and written, the hash in a
        thread (OpenSSL drops the GIL) and the write by the store, so receiving, hashing and writing
        overlap."""
        loop = asyncio.get_running_loop()
        buffers = [self._buffer(), self._buffer()]
        in_flight: asyncio.Future[Any] | None = None

        async def write(buffer: mmap.mmap, length: int) -> None:
            view = memoryview(buffer)[:length]
            # Both finish before this does, even when one fails: nothing may touch the buffer afterwards.
            outcomes = await asyncio.gather(
                loop.run_in_executor(self._executor, hasher.update, view),
                writer.write(view),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome

        received = filled = 0
        current = buffers[0]
        try:
            async for chunk in chunks:
                received += len(chunk)
                if expected is not None and received > expected:
                    raise SizeInvalid(f"request body is longer than its declared {expected} bytes")
                view = memoryview(chunk)
                while view:
                    take = min(len(view), WRITE_BUFFER - filled)
                    current[filled : filled + take] = view[:take]
                    filled += take
                    view = view[take:]
                    if filled == WRITE_BUFFER:
                        if in_flight is not None:
                            await asyncio.shield(in_flight)
                        in_flight = asyncio.ensure_future(write(current, filled))
                        current = buffers[1] if current is buffers[0] else buffers[0]
                        filled = 0
            if in_flight is not None:
                await asyncio.shield(in_flight)
                in_flight = None
            if filled:
                await write(current, filled)
        finally:
            if in_flight is not None:  # let the writes in flight finish before the caller aborts
                with contextlib.suppress(BaseException):
                    await asyncio.shield(in_flight)
        # Back to the pool only after a clean finish; otherwise a thread may still hold one, and it
        # is unmapped when the last reference goes.
        self._spare_buffers.extend(buffers[: SPARE_BUFFERS - len(self._spare_buffers)])
        return received

    def _buffer(self) -> mmap.mmap:
        # Reused: the first touch of fresh memory costs a page fault per 4 KiB, which showed in
        # every 8 MiB chunk of a chunked upload.
        return self._spare_buffers.pop() if self._spare_buffers else aligned_buffer(WRITE_BUFFER)

    async def _rehash(self, leased: _Leased, algorithm: str) -> ResumableHash:
        hasher = ResumableHash(algorithm)
        async for chunk in self.store.read_upload(leased.upload_id, leased.store_state, leased.offset):
            await self._run(hasher.update, chunk)
        return hasher

    # -- housekeeping --------------------------------------------------------------------------

    async def expire(self) -> int:
        """Forget uploads idle for longer than the TTL and reclaim their bytes."""
        cutoff = now() - self.ttl

        def change(conn: Connection) -> list[tuple[str, str]]:
            idle = (uploads.c.updated_at < cutoff) & or_(uploads.c.lease.is_(None), uploads.c.lease_until < now())
            rows = [
                (row[0], row[1] or "") for row in conn.execute(select(uploads.c.id, uploads.c.store_state).where(idle))
            ]
            if rows:
                conn.execute(delete(uploads).where(uploads.c.id.in_([upload_id for upload_id, _ in rows])))
            return rows

        expired = await self.db.write(change)
        for upload_id, state in expired:
            await self.store.delete_upload(upload_id, state)
        orphans = await self._remove_orphans(cutoff.timestamp())
        return len(expired) + orphans

    async def _remove_orphans(self, cutoff: float) -> int:
        """Bytes left by a crash between storing an upload's first bytes and recording it."""
        stale = await self.store.stale_uploads(cutoff)
        if not stale:
            return 0
        known = set(await self.db.read(lambda conn: list(conn.execute(select(uploads.c.id)).scalars())))
        orphans = [upload_id for upload_id in stale if upload_id not in known]
        for upload_id in orphans:
            await self.store.delete_upload(upload_id, "")
        return len(orphans)

    def close(self) -> None:
        self._executor.shutdown(wait=False)


def _hasher(leased: _Leased, algorithm: str) -> ResumableHash | None:
    """The running hash at the acknowledged offset; None when it must be recomputed (an upload
    hashed as sha256 that turns out to be another algorithm's)."""
    if leased.offset == 0:
        return ResumableHash(algorithm)
    if leased.hash_state is None:
        return None
    hasher = ResumableHash.resume(leased.hash_state)
    return hasher if hasher.algorithm == algorithm else None


def _unknown(name: str, upload_id: str) -> BlobUploadUnknown:
    return BlobUploadUnknown(
        f"upload {upload_id} is not in progress for repository {name}; it may have expired, "
        "been completed or cancelled: start a new upload with POST /v2/<name>/blobs/uploads/",
        detail={"upload": upload_id},
    )


def _changed(upload_id: str) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"upload {upload_id} changed while this request was writing to it; check its status with GET and "
        "resend from there"
    )


def _valid_id(upload_id: str) -> bool:
    try:
        return str(uuid.UUID(upload_id)) == upload_id
    except ValueError:
        return False


def _range_header(size: int) -> str:
    return f"0-{max(size - 1, 0)}"
