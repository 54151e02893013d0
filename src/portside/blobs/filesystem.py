"""Blobs on local disk: `blobs/<alg>/<2 hex>/<hex>`, uploads in `uploads/<id>`, renamed into place.

The layout every installation has had since the start, so existing data directories keep working."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import mmap
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from portside.blobs.store import BlobRead, LocalFile
from portside.faults import NO_SPACE, BlobMissing, StorageFull, clear, storage_full

READ_CHUNK = 1024 * 1024
DIRECT_ALIGN = 4096  # O_DIRECT needs buffer address, file offset and length aligned to the block size
# A request of at most this many bytes reaches the disk in one thread call, when it closes or commits.
INLINE_BYTES = 256 * 1024
_FULL_MARKER = ".full-"
FREED_MARGIN = 1024 * 1024  # storage is writable again once this much more is free than after the failure
T = TypeVar("T")


class _UploadFile:
    """An upload file opened for writing (one writer at a time: the caller holds the upload's lease).

    Page-aligned writes at page-aligned offsets go through a second descriptor opened with
    O_DIRECT: on this kind of machine copying a large blob through the page cache ran at 200-500
    MB/s and direct writes at 800-900 MB/s, and the fsync that makes the blob durable then has
    almost nothing left to flush. Everything else (and filesystems without O_DIRECT) goes through
    the page cache.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY)
        self._path = path
        self._direct: int | None = None
        self._position = 0

    def write(self, data: bytes | bytearray | memoryview | mmap.mmap) -> None:
        with _space(self._path):
            self._write(memoryview(data).cast("B"))

    def _write(self, view: memoryview) -> None:
        if self._position % DIRECT_ALIGN == 0 and len(view) >= DIRECT_ALIGN and _page_aligned(view):
            direct = self._direct_fd()
            if direct is not None:
                aligned = len(view) - len(view) % DIRECT_ALIGN
                try:
                    self._write_all(direct, view[:aligned])
                    view = view[aligned:]
                except OSError as error:
                    if error.errno != errno.EINVAL:
                        raise
                    self._close_direct(disable=True)  # the filesystem refuses: use the page cache
        self._write_all(self._fd, view)

    def _write_all(self, fd: int, view: memoryview) -> None:
        while view:
            written = os.pwrite(fd, view, self._position)
            self._position += written
            view = view[written:]

    def _direct_fd(self) -> int | None:
        if self._direct is None:
            try:
                self._direct = os.open(self._path, os.O_WRONLY | getattr(os, "O_DIRECT", 0))
            except OSError:
                self._direct = -1
        return self._direct if self._direct >= 0 else None

    def _close_direct(self, *, disable: bool = False) -> None:
        if self._direct is not None and self._direct >= 0:
            os.close(self._direct)
        self._direct = -1 if disable else None

    def truncate(self, offset: int) -> None:
        """Drop every byte past `offset`, and write from there on."""
        with _space(self._path):
            os.ftruncate(self._fd, offset)
        self._position = offset

    def close(self) -> None:
        self._close_direct()
        os.close(self._fd)


def aligned_buffer(size: int) -> mmap.mmap:
    """A page-aligned buffer (anonymous mmap), so that writes from it can bypass the page cache."""
    return mmap.mmap(-1, size)


def _page_aligned(view: memoryview) -> bool:
    if view.readonly:
        return False  # ctypes cannot take the address of a read-only buffer; bytes are not aligned anyway
    return ctypes.addressof(ctypes.c_char.from_buffer(view)) % DIRECT_ALIGN == 0


class FilesystemBlobStore:
    """Blob I/O runs in this store's threads, never on the event loop, except that a writer keeps
    up to INLINE_BYTES of a request in memory and hands them to the disk in the same thread call
    that closes or commits the upload: a small blob costs one hop to a thread, as it did before the
    seam (and a hop, 50-100 us here, is most of what a small push costs)."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self.description = f"file://{root}"
        self._blobs = root / "blobs"
        self._uploads = root / "uploads"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="blobs")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _path(self, digest: str) -> Path:
        algorithm, hexdigest = digest.split(":", 1)
        return self._blobs / algorithm / hexdigest[:2] / hexdigest

    # Every blob is at its content address here: `location` is always None (commit returns None).
    async def size(self, digest: str, *, location: str | None = None) -> int | None:
        return await self._run(self._size, digest)

    def _size(self, digest: str) -> int | None:
        try:
            return self._path(digest).stat().st_size
        except FileNotFoundError:
            return None

    async def read_small(self, digest: str, limit: int, *, location: str | None = None) -> bytes | None:
        return await self._run(self._read_small, digest, limit)

    def _read_small(self, digest: str, limit: int) -> bytes | None:
        try:
            with open(self._path(digest), "rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            return None
        return data if len(data) <= limit else None

    async def serve(
        self, digest: str, size: int, byte_range: tuple[int, int] | None, *, location: str | None = None
    ) -> BlobRead:
        # One stat, in a thread; the HTTP server gets it with the path and does not stat again.
        path = self._path(digest)
        try:
            return LocalFile(path, await self._run(os.stat, path))
        except FileNotFoundError:
            raise missing_blob(digest, str(path)) from None

    async def read(self, digest: str, *, location: str | None = None) -> AsyncIterator[bytes]:
        path = self._path(digest)
        try:
            f = await self._run(open, path, "rb")
        except FileNotFoundError:
            raise missing_blob(digest, str(path)) from None
        try:
            while chunk := await self._run(f.read, READ_CHUNK):
                yield chunk
        finally:
            f.close()

    async def delete(self, digest: str, *, location: str | None = None) -> None:
        await self._run(self._path(digest).unlink, True)

    async def digests(self) -> AsyncIterator[str]:
        for path in await self._run(lambda: sorted(self._blobs.glob("*/*/*"))):
            yield f"{path.parent.parent.name}:{path.name}"

    async def locations(self) -> AsyncIterator[str]:
        return
        yield ""  # pragma: no cover - makes this an async generator

    def _upload_path(self, upload_id: str) -> Path:
        return self._uploads / upload_id

    async def create_upload(self, upload_id: str) -> str:
        return ""  # the file is made by the first write that reaches the disk

    async def open_upload(self, upload_id: str, state: str, offset: int, digest: str | None) -> _FileWriter:
        if digest is not None and offset == 0:
            # The whole blob in one request: a file of its own, so two requests racing on one session
            # never write into each other's bytes (the caller holds no lease for these).
            return _FileWriter(self, self._uploads / f"{upload_id}.{secrets.token_hex(4)}", 0, private=True)
        return _FileWriter(self, self._upload_path(upload_id), offset)

    async def read_upload(self, upload_id: str, state: str, length: int) -> AsyncIterator[bytes]:
        path = self._upload_path(upload_id)
        try:
            f = await self._run(open, path, "rb")
        except FileNotFoundError:
            return
        try:
            remaining = length
            while remaining > 0:
                chunk = await self._run(f.read, min(READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            f.close()

    def commit_file(self, source: Path, digest: str, size: int) -> None:
        with _space(self._blobs):
            target = self._path(digest)
            if target.exists():
                source.unlink(missing_ok=True)  # the same bytes are already stored
                return
            fd = os.open(source, os.O_RDWR)
            try:
                os.ftruncate(fd, size)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self._place(source, target)

    def commit_bytes(self, data: bytearray, source: Path, digest: str) -> None:
        """A blob that fits in memory: written to `source` once, made durable, renamed into place
        (one open where a staged file takes three; most blobs of small images are a few KiB)."""
        with _space(self._blobs):
            target = self._path(digest)
            if target.exists():
                return  # the same bytes are already stored
            fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self._place(source, target)

    def _place(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        if self.fsync:
            _fsync_dir(target.parent)
        if self._full_marker() is not None:
            self._clear_full()

    async def delete_upload(self, upload_id: str, state: str) -> None:
        await self._run(self._upload_path(upload_id).unlink, True)

    async def stale_uploads(self, cutoff: float) -> list[str]:
        return await self._run(self._stale_uploads, cutoff)

    def _stale_uploads(self, cutoff: float) -> list[str]:
        stale = []
        for path in self._uploads.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff and not path.name.startswith("."):
                    stale.append(path.name)
        return stale

    async def check(self) -> str | None:
        return await self._run(self._check)

    # Readiness after a write found no space: a small probe may still fit while pushes cannot. A
    # marker file (shared by every worker of this data directory) keeps the free space seen after
    # the failed write was cleaned up; storage is ready again once more is free, or a blob is stored.
    def note_full(self) -> None:
        free = shutil.disk_usage(self.root).free
        with contextlib.suppress(OSError):
            os.close(os.open(self._uploads / f"{_FULL_MARKER}{free}", os.O_WRONLY | os.O_CREAT, 0o600))

    def _full_marker(self) -> int | None:
        sizes = [int(p.name.removeprefix(_FULL_MARKER)) for p in self._uploads.glob(f"{_FULL_MARKER}*")]
        return max(sizes) if sizes else None

    def _clear_full(self) -> None:
        for marker in self._uploads.glob(f"{_FULL_MARKER}*"):
            marker.unlink(missing_ok=True)
        clear("blob storage is full")

    def _check(self) -> str | None:
        full = self._full_marker()
        if full is not None:
            free = shutil.disk_usage(self.root).free
            if free < full + FREED_MARGIN:
                free_mib = f"{free / 1024**2:.1f} MiB free"
                return f"blob storage at {self.root} is not writable: a write found no space left ({free_mib})"
            self._clear_full()
        probe = self._uploads / f".readyz-{os.getpid()}"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * DIRECT_ALIGN)
                f.flush()
                os.fsync(f.fileno())  # a full filesystem may only say so when the data is written
        except OSError as error:
            free = shutil.disk_usage(self.root).free if self.root.exists() else 0
            return f"blob storage at {self.root} is not writable: {error.strerror} ({free / 1024**2:.1f} MiB free)"
        finally:
            probe.unlink(missing_ok=True)
        return None

    async def close(self) -> None:
        self._executor.shutdown(wait=False)


class _FileWriter:
    """Appends a request's bytes to `uploads/<id>`: small requests whole in one thread call at the
    end, large ones as they come (O_DIRECT where aligned, see _UploadFile)."""

    def __init__(self, store: FilesystemBlobStore, path: Path, offset: int, *, private: bool = False) -> None:
        self._store = store
        self._path = path
        self._offset = offset
        self._private = private  # this request's own file: removed, not truncated, on abort
        self._pending = bytearray()
        self._file: _UploadFile | None = None
        self._full = False  # a write found no space: say so for readiness once the request is undone

    def _open(self) -> _UploadFile:
        with _space(self._path):
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        file = _UploadFile(self._path)
        file.truncate(self._offset)  # whatever lies past the acknowledged size was never acknowledged
        return file

    def _flush(self) -> _UploadFile:
        file = self._file if self._file is not None else self._open()
        self._file = file
        if self._pending:
            file.write(self._pending)
            self._pending = bytearray()
        return file

    async def write(self, data: memoryview) -> None:
        if self._file is None and len(self._pending) + len(data) <= INLINE_BYTES:
            self._pending += data
            return
        with self._noting_full():
            if self._file is None:
                self._file = await self._store._run(self._flush)
            await self._store._run(self._file.write, data)

    async def close(self) -> str:
        with self._noting_full():
            await self._store._run(self._finish)
        return ""

    def _finish(self) -> None:
        self._flush().close()
        self._file = None

    async def commit(self, digest: str, size: int) -> None:
        def commit() -> None:
            if self._private and self._file is None:  # all of it still in memory
                self._store.commit_bytes(self._pending, self._path, digest)
                self._pending = bytearray()
                return
            self._finish()
            self._store.commit_file(self._path, digest, size)

        with self._noting_full():
            await self._store._run(commit)
        return None  # at the content address

    async def abort(self) -> None:
        def abort() -> None:
            if self._file is not None:
                with contextlib.suppress(OSError, StorageFull):
                    self._file.truncate(self._offset)
                self._file.close()
                self._file = None
            if self._private:
                self._path.unlink(missing_ok=True)
            self._pending = bytearray()
            if self._full:
                self._store.note_full()

        await self._store._run(abort)

    @contextlib.contextmanager
    def _noting_full(self) -> Iterator[None]:
        try:
            yield
        except StorageFull:
            self._full = True
            raise


def missing_blob(digest: str, where: str) -> BlobMissing:
    return BlobMissing(
        f"blob {digest} is recorded by the registry but its bytes are missing from storage; "
        "ask an operator to restore it from a backup (the server log names where it should be)",
        condition=f"blob {digest} missing",
        operator=f"blob {digest} has no bytes at {where}: restore it from a backup, or push it again",
    )


@contextlib.contextmanager
def _space(path: Path) -> Iterator[None]:
    """ENOSPC and EDQUOT are an operating condition (StorageFull), not a crash."""
    try:
        yield
    except OSError as error:
        if error.errno in NO_SPACE:
            raise storage_full("blob storage", path, error) from None
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
