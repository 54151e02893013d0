"""The blob store interface: content-addressed bytes, and the partial bytes of uploads in progress.

Services see only this protocol; `blobs.open_store` picks the driver from `storage_url` once, in
`app.py`. Every driver makes a blob visible only once it is complete and verified, and keeps an
upload's progress in a state string that the caller stores in the database with the upload, so any
process or replica can continue it. Exclusivity (one writer per upload) is the caller's, by a
compare-and-set in the database; a driver never locks.

A blob's bytes are at its content address, or at a location of the driver's own that its commit
returned (S3 completes a chunked upload where its parts went, rather than copying them): the caller
records that location with the blob and passes it to every read and delete. None means the content
address, which every blob had before locations (and the filesystem's always).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

Buffer = bytes | bytearray | memoryview | mmap.mmap


class StorageUrlInvalid(ValueError):
    """`storage_url` names no driver, or a driver with settings it cannot use."""


@dataclass(frozen=True, slots=True)
class LocalFile:
    """Serve these bytes from a local file (zero-copy: the server sends it without Python)."""

    path: Path
    stat: os.stat_result


@dataclass(frozen=True, slots=True)
class Redirect:
    """Send the client elsewhere for the bytes (a short-lived presigned URL)."""

    url: str


@dataclass(frozen=True, slots=True)
class Stream:
    """Bytes `start`..`start + length - 1` of the blob, streamed by the registry."""

    chunks: AsyncIterator[bytes]
    start: int
    length: int


BlobRead = LocalFile | Redirect | Stream


class UploadWriter(Protocol):
    """Appends one request's bytes to an upload, from its acknowledged offset."""

    async def write(self, data: memoryview) -> None:
        """Append `data`; the caller may reuse its buffer as soon as this returns."""

    async def close(self) -> str:
        """Keep what was written; the upload's new state, for the caller to acknowledge."""

    async def commit(self, digest: str, size: int) -> str | None:
        """Make the upload (now `size` bytes, verified as `digest` by the caller) the blob `digest`,
        atomically, and drop the upload's own bytes. Returns where the blob is: None for its content
        address, else a location of the upload's own (no other upload's commit writes there); if
        the caller already holds `digest`, it deletes that location again."""

    async def abort(self) -> None:
        """Forget what this writer wrote: the upload stays as its state last said."""


class BlobStore(Protocol):
    description: str  # where the bytes are, for logs and `portside config show` (never a secret)

    # `location` in what follows: the one recorded with the blob (what its commit returned).
    async def size(self, digest: str, *, location: str | None = None) -> int | None: ...
    async def read_small(self, digest: str, limit: int, *, location: str | None = None) -> bytes | None:
        """A whole blob of at most `limit` bytes (an image config); None if larger or missing."""

    async def serve(
        self, digest: str, size: int, byte_range: tuple[int, int] | None, *, location: str | None = None
    ) -> BlobRead:
        """How to send a blob of `size` bytes (all of it, or the inclusive `byte_range`); raises
        faults.BlobMissing when its bytes are gone."""

    def read(self, digest: str, *, location: str | None = None) -> AsyncIterator[bytes]:
        """The whole blob, in chunks of a MiB or so, whatever `serve` would answer (copying between
        stores reads through this); raises faults.BlobMissing when its bytes are gone."""

    async def delete(self, digest: str, *, location: str | None = None) -> None: ...
    def digests(self) -> AsyncIterator[str]:
        """Every blob stored at its content address, in no particular order (garbage collection
        walks it, and `locations`)."""

    def locations(self) -> AsyncIterator[str]:
        """Every blob stored at a location of its own (as its commit returned it)."""

    async def create_upload(self, upload_id: str) -> str:
        """Start an upload; its state."""

    async def open_upload(self, upload_id: str, state: str, offset: int, digest: str | None) -> UploadWriter:
        """A writer appending at `offset`, the acknowledged size; bytes past it are dropped first.
        `digest`, when the request names it and the upload is empty, lets a driver write the blob
        straight to its address or to a place of this writer's own (it still becomes visible only on
        commit); such a writer shares nothing with the session's other requests, so its caller needs
        no lease."""

    def read_upload(self, upload_id: str, state: str, length: int) -> AsyncIterator[bytes]:
        """The first `length` acknowledged bytes (to verify a digest of another algorithm)."""

    async def delete_upload(self, upload_id: str, state: str) -> None: ...
    async def stale_uploads(self, cutoff: float) -> list[str]:
        """Uploads whose bytes were last written before `cutoff` (a Unix time): crash leftovers."""

    async def check(self) -> str | None:
        """None when the store can be written; otherwise what is wrong (for /readyz)."""

    async def close(self) -> None: ...
