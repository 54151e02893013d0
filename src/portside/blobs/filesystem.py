"""Blobs on local disk: `blobs/<alg>/<2 hex>/<hex>`, uploads in `uploads/<id>`, renamed into place."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from portside.blobs.store import UploadBusy

READ_CHUNK = 1024 * 1024


class _UploadFile:
    """An upload opened for writing, locked against concurrent writers until it is closed."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise UploadBusy(str(path)) from None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def truncate(self, offset: int) -> None:
        """Drop every byte past `offset`, and write from there on."""
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)

    def close(self) -> None:
        os.close(self._fd)


class FilesystemBlobStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self._blobs = root / "blobs"
        self._uploads = root / "uploads"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._uploads.mkdir(parents=True, exist_ok=True)

    def local_path(self, digest: str) -> Path:
        algorithm, hexdigest = digest.split(":", 1)
        return self._blobs / algorithm / hexdigest[:2] / hexdigest

    def size(self, digest: str) -> int | None:
        try:
            return self.local_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.local_path(digest).unlink()

    def _upload_path(self, upload_id: str) -> Path:
        return self._uploads / upload_id

    def create_upload(self, upload_id: str) -> None:
        self._upload_path(upload_id).touch(exist_ok=False)

    def open_upload(self, upload_id: str) -> _UploadFile:
        return _UploadFile(self._upload_path(upload_id))

    def read_upload(self, upload_id: str, length: int) -> Iterator[bytes]:
        with open(self._upload_path(upload_id), "rb") as f:
            remaining = length
            while remaining > 0:
                chunk = f.read(min(READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def commit_upload(self, upload_id: str, digest: str, size: int) -> None:
        source = self._upload_path(upload_id)
        target = self.local_path(digest)
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
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        if self.fsync:
            _fsync_dir(target.parent)

    def delete_upload(self, upload_id: str) -> None:
        self._upload_path(upload_id).unlink(missing_ok=True)

    def stale_uploads(self, cutoff: float) -> list[str]:
        """Uploads whose bytes were last written before `cutoff` (a Unix time)."""
        stale = []
        for path in self._uploads.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    stale.append(path.name)
        return stale


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
