"""Blob upload sessions: monolithic, chunked and resumable, in any worker and across restarts.

A session's acknowledged size lives in the database and its bytes in the blob store. Bytes are
hashed while they are written; the running hash is kept in this process as a shortcut and is
recomputed from the stored bytes when the next request lands in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mmap
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, delete, select, update

from portside.blobs.filesystem import FilesystemBlobStore, aligned_buffer
from portside.blobs.store import UploadBusy, UploadFile
from portside.clock import now
from portside.metadata.database import Database
from portside.metadata.schema import uploads
from portside.registry.errors import (
    BlobUploadUnknown,
    DigestInvalid,
    RangeNotSatisfiable,
    SizeInvalid,
)
from portside.registry.references import Digest
from portside.registry.service import OnCreate, Registry

# Large bodies are received into two buffers of this size: while one fills, the other is hashed and
# written. An upload in flight holds both.
WRITE_BUFFER = 2 * 1024 * 1024
SPARE_BUFFERS = 8  # kept for the next uploads: 16 MiB per process
# Requests declaring at most this many bytes are written on the event loop: a local write of a few
# KiB takes microseconds, far less than handing it to a thread and waiting for the GIL back.
INLINE_WRITE = 256 * 1024
DEFAULT_ALGORITHM = "sha256"
T = TypeVar("T")


class Uploads:
    def __init__(self, db: Database, store: FilesystemBlobStore, registry: Registry, *, ttl_seconds: int) -> None:
        self.db = db
        self.store = store
        self.registry = registry
        self.ttl = timedelta(seconds=ttl_seconds)
        self._hashers: dict[str, tuple[int, hashlib._Hash]] = {}
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="upload")
        self._spare_buffers: list[mmap.mmap] = []
        upload_id, at = bindparam("upload_id"), bindparam("at")
        self._size = db.query(
            select(uploads.c.size).where(uploads.c.id == upload_id, uploads.c.repository_name == bindparam("name"))
        )
        self._insert = db.query(
            uploads.insert().values(
                id=upload_id, repository_name=bindparam("name"), size=0, created_at=at, updated_at=at
            )
        )
        # Compare-and-set: only the request that saw the acknowledged size may change it.
        self._advance = db.query(
            update(uploads)
            .where(uploads.c.id == upload_id, uploads.c.size == bindparam("old"))
            .values(size=bindparam("new"), updated_at=at)
        )
        self._remove = db.query(delete(uploads).where(uploads.c.id == upload_id))
        self._remove_at = db.query(delete(uploads).where(uploads.c.id == upload_id, uploads.c.size == bindparam("old")))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- session lifecycle ---------------------------------------------------------------------

    async def start(self, name: str) -> str:
        upload_id = str(uuid.uuid4())
        self.store.create_upload(upload_id)  # an empty file: inline, see INLINE_WRITE
        await self.db.write(self.db.execute, self._insert, upload_id=upload_id, name=name, at=now())
        return upload_id

    async def status(self, name: str, upload_id: str) -> int:
        row = await self.db.fetch_one(self._size, upload_id=upload_id, name=name) if _valid_id(upload_id) else None
        if row is None:
            raise _unknown(name, upload_id)
        return int(row[0])

    async def cancel(self, name: str, upload_id: str) -> None:
        await self.status(name, upload_id)
        await self.db.write(self.db.execute, self._remove, upload_id=upload_id)
        self._hashers.pop(upload_id, None)
        await self._run(self.store.delete_upload, upload_id)

    # -- receiving bytes -----------------------------------------------------------------------

    async def append(
        self,
        name: str,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        content_range: tuple[int, int] | None,
        content_length: int | None,
    ) -> int:
        offset = await self.status(name, upload_id)
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
        async with self._writing(name, upload_id, offset, content_length) as file:
            size, hasher = await self._receive(file, upload_id, offset, chunks, content_length)
            await self._acknowledge(upload_id, offset, size)
            self._hashers[upload_id] = (size, hasher)
            return size

    async def finish(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
        on_create: OnCreate | None = None,
    ) -> None:
        offset = await self.status(name, upload_id)
        async with self._writing(name, upload_id, offset, content_length) as file:
            size, hasher = await self._receive(file, upload_id, offset, chunks, content_length)
            # The final bytes are acknowledged together with the blob, in one transaction.
            await self._complete(name, upload_id, digest, offset, size, hasher, on_create)

    async def monolithic(
        self,
        name: str,
        digest: Digest,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
        on_create: OnCreate | None = None,
    ) -> None:
        upload_id = await self.start(name)
        try:
            await self.finish(name, upload_id, digest, chunks, content_length, on_create)
        except BaseException:
            with contextlib.suppress(BlobUploadUnknown):
                await self.cancel(name, upload_id)
            raise

    @contextlib.asynccontextmanager
    async def _writing(
        self, name: str, upload_id: str, offset: int, content_length: int | None
    ) -> AsyncIterator[UploadFile]:
        """Lock the upload: its bytes, its acknowledged size and its completion change only under the lock."""
        try:
            if _inline(content_length):
                file = self.store.open_upload(upload_id)
            else:
                file = await self._run(self.store.open_upload, upload_id)
        except UploadBusy:
            raise RangeNotSatisfiable(
                f"another request is writing to upload {upload_id}; chunks must be sent one at a time",
                headers={"Range": _range_header(offset)},
            ) from None
        except FileNotFoundError:
            raise _unknown(name, upload_id) from None
        try:
            current = await self.status(name, upload_id)
            if current != offset:
                raise RangeNotSatisfiable(
                    f"upload {upload_id} changed while this request waited; check its status with GET and "
                    "resend from there",
                    headers={"Range": _range_header(current)},
                )
            yield file
        except FileNotFoundError:
            raise _unknown(name, upload_id) from None  # cancelled or expired meanwhile
        finally:
            file.close()

    async def _receive(
        self, file: UploadFile, upload_id: str, offset: int, chunks: AsyncIterator[bytes], expected: int | None
    ) -> tuple[int, hashlib._Hash]:
        """Append a request's bytes at the acknowledged `offset`; the new size and the running hash.

        The caller acknowledges them. Until then they are harmless: whoever writes next starts by
        truncating what lies past the acknowledged size.
        """
        hasher = await self._hasher_at(upload_id, offset)
        self._hashers.pop(upload_id, None)  # the hash is only trusted again once this request succeeds
        try:
            if _inline(expected):
                received = await self._receive_inline(file, offset, chunks, expected, hasher)
            else:
                received = await self._receive_buffered(file, offset, chunks, expected, hasher)
            if expected is not None and received != expected:
                raise SizeInvalid(f"request body has {received} bytes but its length was given as {expected}")
        except BaseException:
            # A client that vanished or lied about sizes: forget what it sent in this request.
            file.truncate(offset)
            raise
        return offset + received, hasher

    async def _receive_inline(
        self, file: UploadFile, offset: int, chunks: AsyncIterator[bytes], expected: int | None, hasher: hashlib._Hash
    ) -> int:
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if expected is not None and len(body) > expected:
                raise SizeInvalid(f"request body is longer than its declared {expected} bytes")
        file.truncate(offset)
        file.write(body)
        hasher.update(body)
        return len(body)

    async def _receive_buffered(
        self, file: UploadFile, offset: int, chunks: AsyncIterator[bytes], expected: int | None, hasher: hashlib._Hash
    ) -> int:
        """Fill one page-aligned buffer while the previous one is hashed and written, in two threads
        (hashlib and os.pwrite drop the GIL), so receiving, hashing and writing overlap."""
        await self._run(file.truncate, offset)
        loop = asyncio.get_running_loop()
        buffers = [self._buffer(), self._buffer()]
        in_flight: asyncio.Future[Any] | None = None

        async def write(buffer: mmap.mmap, length: int) -> None:
            view = memoryview(buffer)[:length]
            # Both finish before this does, even when one fails: nothing may touch the file afterwards.
            outcomes = await asyncio.gather(
                loop.run_in_executor(self._executor, hasher.update, view),
                loop.run_in_executor(self._executor, file.write, view),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome

        def flush(buffer: mmap.mmap, length: int) -> asyncio.Future[None]:
            return asyncio.ensure_future(write(buffer, length))

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
                        in_flight = flush(current, filled)
                        current = buffers[1] if current is buffers[0] else buffers[0]
                        filled = 0
            if in_flight is not None:
                await asyncio.shield(in_flight)
                in_flight = None
            if filled:
                await write(current, filled)
        finally:
            if in_flight is not None:  # let the writes in flight finish before the caller truncates
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

    async def _hasher_at(self, upload_id: str, offset: int) -> hashlib._Hash:
        if offset == 0:
            return hashlib.new(DEFAULT_ALGORITHM)
        cached = self._hashers.get(upload_id)
        if cached is not None and cached[0] == offset:
            return cached[1]
        return await self._run(self._rehash, upload_id, offset, DEFAULT_ALGORITHM)

    def _rehash(self, upload_id: str, length: int, algorithm: str) -> hashlib._Hash:
        hasher = hashlib.new(algorithm)
        for chunk in self.store.read_upload(upload_id, length):
            hasher.update(chunk)
        return hasher

    async def _acknowledge(self, upload_id: str, old_size: int, new_size: int) -> None:
        changed = await self.db.write(
            self.db.execute, self._advance, upload_id=upload_id, old=old_size, new=new_size, at=now()
        )
        if not changed:
            raise _changed(upload_id)

    async def _complete(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        offset: int,
        size: int,
        hasher: hashlib._Hash,
        on_create: OnCreate | None,
    ) -> None:
        """Verify the digest, store the blob, and in one transaction end the upload and link the blob."""
        if digest.algorithm == DEFAULT_ALGORITHM:
            actual = hasher.hexdigest()
        else:
            actual = (await self._run(self._rehash, upload_id, size, digest.algorithm)).hexdigest()
        if actual != digest.hex:
            await self.cancel(name, upload_id)
            raise DigestInvalid(
                f"uploaded content has digest {digest.algorithm}:{actual}, not {digest}; the upload was "
                "discarded, push the blob again",
                detail={"expected": str(digest), "computed": f"{digest.algorithm}:{actual}"},
            )
        await self._run(self.store.commit_upload, upload_id, str(digest), size)

        def record(conn: Connection) -> bool:
            # The upload must still be at the size this request started from (compare-and-set).
            if not self.db.execute(conn, self._remove_at, upload_id=upload_id, old=offset):
                return False
            self.registry.link_blob(conn, name, str(digest), size, on_create)
            return True

        if not await self.db.write(record):
            raise _changed(upload_id)

    # -- housekeeping --------------------------------------------------------------------------

    async def expire(self) -> int:
        """Forget uploads idle for longer than the TTL and reclaim their bytes."""
        cutoff = now() - self.ttl

        def change(conn: Connection) -> list[str]:
            ids = list(conn.execute(select(uploads.c.id).where(uploads.c.updated_at < cutoff)).scalars())
            if ids:
                conn.execute(delete(uploads).where(uploads.c.id.in_(ids)))
            return ids

        expired = await self.db.write(change)
        for upload_id in expired:
            self._hashers.pop(upload_id, None)
            await self._run(self.store.delete_upload, upload_id)
        expired += await self._run(self._remove_orphans, cutoff.timestamp())
        return len(expired)

    def _remove_orphans(self, cutoff: float) -> list[str]:
        """Files left by a crash between creating an upload's file and recording it."""
        known = set(self.db.read_sync(lambda conn: list(conn.execute(select(uploads.c.id)).scalars())))
        orphans = [upload_id for upload_id in self.store.stale_uploads(cutoff) if upload_id not in known]
        for upload_id in orphans:
            self.store.delete_upload(upload_id)
        return orphans

    def close(self) -> None:
        self._executor.shutdown(wait=False)


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


def _inline(content_length: int | None) -> bool:
    return content_length is not None and content_length <= INLINE_WRITE


def _valid_id(upload_id: str) -> bool:
    try:
        return str(uuid.UUID(upload_id)) == upload_id
    except ValueError:
        return False


def _range_header(size: int) -> str:
    return f"0-{max(size - 1, 0)}"
