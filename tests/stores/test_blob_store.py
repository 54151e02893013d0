"""The blob store contract: what every driver (filesystem, S3; later GCS, Azure) must do, in the
manner of CNCF distribution's storage-driver suites. Each test runs against every driver, in
process; S3 is a real SeaweedFS (tests/support/seaweed.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from portside.blobs.store import BlobRead, BlobStore, LocalFile, Redirect, Stream
from portside.faults import BlobMissing

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _data(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(f"{seed}".encode()).digest() * 2048  # 64 KiB, not all one byte
    return (block * (size // len(block) + 1))[:size]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _Stored:
    digest: str
    location: str | None  # what the commit returned: where the store keeps the bytes


async def _upload(store: BlobStore, upload_id: str, pieces: list[bytes], *, direct: bool = False) -> _Stored:
    """Write `pieces` one request each (close and reopen from the acknowledged offset), then commit."""
    whole = b"".join(pieces)
    digest = _digest(whole)
    state = await store.create_upload(upload_id)
    offset = 0
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        writer = await store.open_upload(upload_id, state, offset, digest if direct and offset == 0 else None)
        view = memoryview(piece)
        for start in range(0, len(piece), 3 * MiB):  # the registry hands over its buffers like this
            await writer.write(view[start : start + 3 * MiB])
        if last:
            location = await writer.commit(digest, offset + len(piece))
        else:
            state = await writer.close()
        offset += len(piece)
    return _Stored(digest, location)


async def _collect(read: BlobRead, byte_range: tuple[int, int] | None = None) -> bytes:
    if isinstance(read, LocalFile):
        data = read.path.read_bytes()
        return data if byte_range is None else data[byte_range[0] : byte_range[1] + 1]
    if isinstance(read, Redirect):
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {}
        async with httpx.AsyncClient() as client:
            response = await client.get(read.url, headers=headers)
        assert response.status_code == (206 if byte_range else 200), response.text
        return response.content
    assert isinstance(read, Stream)
    return b"".join([chunk async for chunk in read.chunks])


async def _read(store: BlobStore, blob: _Stored | str, size: int, byte_range: tuple[int, int] | None = None) -> bytes:
    stored = blob if isinstance(blob, _Stored) else _Stored(blob, None)
    return await _collect(await store.serve(stored.digest, size, byte_range, location=stored.location), byte_range)


# -- exact bytes, sizes, ranges ------------------------------------------------------------------


@pytest.mark.parametrize(
    "pieces",
    [
        [0],  # the empty blob
        [1],
        [1000],
        [5 * MiB - 1, 1],  # S3's minimum part size, either side of it
        [5 * MiB, 5 * MiB + 3],
        [100, 200, 300, 7 * MiB, 11],  # small requests, then a large one
        [3 * MiB] * 5,  # requests smaller than a part whose sum is several parts
        [21 * MiB + 17],  # one large request
    ],
    ids=lambda sizes: "+".join(str(size) for size in sizes),
)
async def test_exact_bytes_in_any_request_sizes(store: BlobStore, pieces: list[int]) -> None:
    data = [_data(size, seed) for seed, size in enumerate(pieces)]
    whole = b"".join(data)
    blob = await _upload(store, "u-exact", data)
    assert await store.size(blob.digest, location=blob.location) == len(whole)
    assert await _read(store, blob, len(whole)) == whole
    if len(whole) > 10:
        assert await _read(store, blob, len(whole), (3, 9)) == whole[3:10]
        last = len(whole) - 1
        assert await _read(store, blob, len(whole), (last - 4, last)) == whole[-5:]


async def test_direct_uploads_become_visible_only_on_commit(store: BlobStore) -> None:
    data = _data(12 * MiB, 7)
    digest = _digest(data)
    state = await store.create_upload("u-direct")
    writer = await store.open_upload("u-direct", state, 0, digest)
    await writer.write(memoryview(data)[: 9 * MiB])
    assert await store.size(digest) is None  # nobody sees a partial blob
    await writer.write(memoryview(data)[9 * MiB :])
    assert await store.size(digest) is None
    assert await writer.commit(digest, len(data)) is None  # a known digest goes to its address
    assert await store.size(digest) == len(data)
    assert await _read(store, digest, len(data)) == data


async def test_an_aborted_request_leaves_the_upload_as_acknowledged(store: BlobStore) -> None:
    first, lost, second = _data(6 * MiB, 1), _data(7 * MiB, 2), _data(1000, 3)
    state = await store.create_upload("u-abort")
    writer = await store.open_upload("u-abort", state, 0, None)
    await writer.write(memoryview(first))
    state = await writer.close()
    writer = await store.open_upload("u-abort", state, len(first), None)
    await writer.write(memoryview(lost))
    await writer.abort()
    writer = await store.open_upload("u-abort", state, len(first), None)
    await writer.write(memoryview(second))
    digest = _digest(first + second)
    location = await writer.commit(digest, len(first) + len(second))
    assert await _read(store, _Stored(digest, location), len(first) + len(second)) == first + second


async def test_an_aborted_direct_upload_leaves_nothing_visible(store: BlobStore) -> None:
    data = _data(11 * MiB, 9)
    state = await store.create_upload("u-direct-abort")
    writer = await store.open_upload("u-direct-abort", state, 0, _digest(data))
    await writer.write(memoryview(data))
    await writer.abort()
    assert await store.size(_digest(data)) is None
    await store.delete_upload("u-direct-abort", state)


async def test_direct_writers_of_one_session_share_nothing(store: BlobStore) -> None:
    # Two requests finishing one empty session at once (no lease between them): neither may write
    # into the other's bytes, and the one that gives up leaves nothing behind.
    first, second = _data(300 * 1024, 41), _data(270 * 1024, 42)  # past the filesystem's inline size
    state = await store.create_upload("u-race")
    one = await store.open_upload("u-race", state, 0, _digest(first))
    other = await store.open_upload("u-race", state, 0, _digest(second))
    await one.write(memoryview(first))
    await other.write(memoryview(second))
    await other.abort()
    assert await one.commit(_digest(first), len(first)) is None
    assert await _read(store, _digest(first), len(first)) == first
    assert await store.size(_digest(second)) is None
    assert [u for u in await store.stale_uploads(time.time() + 60) if u.startswith("u-race")] == []


async def test_read_upload_returns_what_was_acknowledged(store: BlobStore) -> None:
    pieces = [_data(6 * MiB, 4), _data(300, 5)]
    state = await store.create_upload("u-read")
    offset = 0
    for piece in pieces:
        writer = await store.open_upload("u-read", state, offset, None)
        await writer.write(memoryview(piece))
        state = await writer.close()
        offset += len(piece)
    chunks = [chunk async for chunk in store.read_upload("u-read", state, offset)]
    assert b"".join(chunks) == b"".join(pieces)
    await store.delete_upload("u-read", state)


# -- missing, small, delete, list ----------------------------------------------------------------


async def test_missing_blobs(store: BlobStore) -> None:
    missing = "sha256:" + "e" * 64
    assert await store.size(missing) is None
    assert await store.read_small(missing, 1024) is None
    with pytest.raises(BlobMissing) as caught:
        await store.serve(missing, 10, None)
    assert missing in caught.value.message
    await store.delete(missing)  # deleting what is not there is not an error
    with pytest.raises(BlobMissing) as caught:
        [chunk async for chunk in store.read(missing)]
    assert missing in caught.value.message


@pytest.mark.parametrize("size", [0, 1, 3 * MiB + 7])
async def test_read_streams_the_whole_blob(store: BlobStore, size: int) -> None:
    data = _data(size, 12)
    blob = await _upload(store, f"u-read-{size}", [data])
    chunks = [chunk async for chunk in store.read(blob.digest, location=blob.location)]
    assert b"".join(chunks) == data
    assert all(len(chunk) <= 2 * MiB for chunk in chunks)  # streamed, not the whole blob at once


async def test_read_small_respects_its_limit(store: BlobStore) -> None:
    data = _data(4096, 11)
    blob = await _upload(store, "u-small", [data])
    assert blob.location is None  # smaller than a part: at its content address
    assert await store.read_small(blob.digest, 4096) == data
    assert await store.read_small(blob.digest, 4095) is None


async def test_delete_and_list(store: BlobStore) -> None:
    kept = (await _upload(store, "u-kept", [_data(100, 21)])).digest
    gone = (await _upload(store, "u-gone", [_data(100, 22)])).digest
    listed = {digest async for digest in store.digests()}
    assert {kept, gone} <= listed
    await store.delete(gone)
    assert await store.size(gone) is None
    with pytest.raises(BlobMissing):
        await store.serve(gone, 100, None)
    listed = {digest async for digest in store.digests()}
    assert kept in listed
    assert gone not in listed


async def test_delete_upload_and_stale_uploads(store: BlobStore) -> None:
    state = await store.create_upload("u-stale")
    writer = await store.open_upload("u-stale", state, 0, None)
    await writer.write(memoryview(_data(6 * MiB, 31)))
    state = await writer.close()
    assert "u-stale" in await store.stale_uploads(time.time() + 60)
    assert "u-stale" not in await store.stale_uploads(time.time() - 3600)
    await store.delete_upload("u-stale", state)
    assert "u-stale" not in await store.stale_uploads(time.time() + 60)


# -- chunked uploads committed where their parts went --------------------------------------------


async def test_a_chunked_upload_is_committed_without_a_copy(store: BlobStore, driver: str) -> None:
    pieces = [_data(3 * MiB, 91), _data(9 * MiB, 92), _data(2 * MiB + 5, 93)]
    whole = b"".join(pieces)
    blob = await _upload(store, "u-located", pieces)
    if driver == "filesystem":
        assert blob.location is None
    else:
        assert blob.location == "chunked/u-located"  # completed where the parts went
        assert await store.size(blob.digest) is None  # nothing was copied to the content address
    assert await store.size(blob.digest, location=blob.location) == len(whole)
    assert await _read(store, blob, len(whole)) == whole
    for start, end in [(0, 0), (8 * MiB - 2, 8 * MiB + 1), (len(whole) - 3, len(whole) - 1)]:
        assert await _read(store, blob, len(whole), (start, end)) == whole[start : end + 1]
    assert await store.read_small(blob.digest, 16 * MiB, location=blob.location) == whole
    assert await store.read_small(blob.digest, 1024, location=blob.location) is None


async def test_duplicate_digests_and_deletion_by_location(store: BlobStore) -> None:
    data = _data(10 * MiB, 94)
    first = await _upload(store, "u-dup-1", [data[: 6 * MiB], data[6 * MiB :]])
    second = await _upload(store, "u-dup-2", [data])
    direct = await _upload(store, "u-dup-3", [data], direct=True)
    assert first.digest == second.digest == direct.digest
    assert direct.location is None
    if first.location is not None:  # each upload's own place: deleting one leaves the others
        assert first.location != second.location
        await store.delete(second.digest, location=second.location)
        assert await store.size(second.digest, location=second.location) is None
        with pytest.raises(BlobMissing):
            await store.serve(second.digest, len(data), None, location=second.location)
    assert await _read(store, first, len(data)) == data
    assert await _read(store, direct, len(data)) == data


async def test_listing_includes_blobs_at_either_kind_of_place(store: BlobStore) -> None:
    at_address = await _upload(store, "u-list-a", [_data(1000, 95)])
    chunked = await _upload(store, "u-list-c", [_data(6 * MiB, 96), _data(3 * MiB, 97)])
    digests = {digest async for digest in store.digests()}
    locations = {location async for location in store.locations()}
    assert at_address.digest in digests
    if chunked.location is None:
        assert chunked.digest in digests
    else:
        assert chunked.location in locations
        assert chunked.digest not in digests
        await store.delete(chunked.digest, location=chunked.location)
        assert chunked.location not in {location async for location in store.locations()}


async def test_an_upload_read_back_before_its_commit(store: BlobStore) -> None:
    """A digest of another algorithm than the running hash's: the acknowledged bytes are read back
    to verify it, then the last request commits."""
    pieces = [_data(9 * MiB, 98), _data(6 * MiB, 99), _data(100, 100)]
    state = await store.create_upload("u-reread")
    offset = 0
    for piece in pieces[:2]:
        writer = await store.open_upload("u-reread", state, offset, None)
        await writer.write(memoryview(piece))
        state = await writer.close()
        offset += len(piece)
    assert b"".join([chunk async for chunk in store.read_upload("u-reread", state, offset)]) == b"".join(pieces[:2])
    writer = await store.open_upload("u-reread", state, offset, None)
    await writer.write(memoryview(pieces[2]))
    whole = b"".join(pieces)
    blob = _Stored(_digest(whole), await writer.commit(_digest(whole), len(whole)))
    assert await _read(store, blob, len(whole)) == whole
    assert await _read(store, blob, len(whole), (9 * MiB - 1, 9 * MiB)) == whole[9 * MiB - 1 : 9 * MiB + 1]


@pytest.mark.parametrize("sizes", [[9 * MiB, 100], [1000, 20]], ids=["parts", "small"])
async def test_a_commit_retried_after_its_record_failed(store: BlobStore, sizes: list[int]) -> None:
    """The database failed after the store committed: the client's retry of the final PUT (no body)
    commits the same acknowledged upload again, and finds the blob where the first commit put it."""
    pieces = [_data(size, 110 + i) for i, size in enumerate(sizes)]
    whole = b"".join(pieces)
    state = await store.create_upload("u-retry")
    offset = 0
    for piece in pieces:
        writer = await store.open_upload("u-retry", state, offset, None)
        await writer.write(memoryview(piece))
        state = await writer.close()
        offset += len(piece)
    first = await (await store.open_upload("u-retry", state, offset, None)).commit(_digest(whole), len(whole))
    again = await (await store.open_upload("u-retry", state, offset, None)).commit(_digest(whole), len(whole))
    assert again == first
    assert await _read(store, _Stored(_digest(whole), again), len(whole)) == whole


@pytest.mark.parametrize("state_known", [True, False], ids=["expired", "crashed"])
async def test_an_abandoned_chunked_upload_leaves_nothing(store: BlobStore, state_known: bool) -> None:
    """Expired (the caller has its state) or left by a crash before its state was recorded (it has
    none): either way its parts, multipart upload included, are reclaimed."""
    upload_id = f"u-abandoned-{state_known}"
    state = await store.create_upload(upload_id)
    writer = await store.open_upload(upload_id, state, 0, None)
    await writer.write(memoryview(_data(17 * MiB, 101)))  # two whole parts and a tail
    state = await writer.close()
    assert upload_id in await store.stale_uploads(time.time() + 60)
    await store.delete_upload(upload_id, state if state_known else "")
    assert upload_id not in await store.stale_uploads(time.time() + 60)
    assert not [location async for location in store.locations() if upload_id in location]


# -- concurrency ---------------------------------------------------------------------------------


async def test_concurrent_writers_of_the_same_digest(store: BlobStore) -> None:
    data = _data(9 * MiB, 41)
    stored = await asyncio.gather(*(_upload(store, f"u-same-{i}", [data]) for i in range(4)))
    assert {blob.digest for blob in stored} == {_digest(data)}
    for blob in stored:
        assert await _read(store, blob, len(data)) == data


async def test_concurrent_uploads(store: BlobStore) -> None:
    blobs = [[_data(2 * MiB + i, 50 + i), _data(4 * MiB, 60 + i)] for i in range(6)]
    stored = await asyncio.gather(*(_upload(store, f"u-many-{i}", pieces) for i, pieces in enumerate(blobs)))
    for blob, pieces in zip(stored, blobs, strict=True):
        whole = b"".join(pieces)
        assert await _read(store, blob, len(whole)) == whole


# -- another process continues -------------------------------------------------------------------

_CONTINUE = """
import asyncio, json, sys
from pathlib import Path
from portside.blobs import open_store

async def main():
    args = json.loads(sys.argv[1])
    store = open_store(args["url"], Path(args["data_dir"]))
    data = bytes.fromhex(args["data"]) * args["repeat"]
    writer = await store.open_upload(args["upload_id"], args["state"], args["offset"], None)
    await writer.write(memoryview(data))
    print(json.dumps({"state": await writer.close()}))
    await store.close()

asyncio.run(main())
"""


async def test_an_upload_continued_by_another_process(store: BlobStore, store_url: str, tmp_path: Path) -> None:
    first = _data(6 * MiB + 5, 71)
    state = await store.create_upload("u-process")
    writer = await store.open_upload("u-process", state, 0, None)
    await writer.write(memoryview(first))
    state = await writer.close()
    chunk = bytes(range(256))
    args = {
        "url": store_url,
        "data_dir": str(_data_dir(store, tmp_path)),
        "upload_id": "u-process",
        "state": state,
        "offset": len(first),
        "data": chunk.hex(),
        "repeat": 20_000,
    }
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", _CONTINUE, json.dumps(args)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)["state"]
    last = _data(1234, 72)
    whole = first + chunk * 20_000 + last
    writer = await store.open_upload("u-process", state, len(first) + len(chunk) * 20_000, None)
    await writer.write(memoryview(last))
    location = await writer.commit(_digest(whole), len(whole))
    assert await _read(store, _Stored(_digest(whole), location), len(whole)) == whole


def _data_dir(store: BlobStore, tmp_path: Path) -> Path:
    return getattr(store, "root", tmp_path)


# -- 1 GiB with flat memory ----------------------------------------------------------------------


class _PeakRss:
    """The largest resident set of this process while the block runs, sampled every 20 ms. This
    process alone, unlike tests/scale/test_memory.py's PeakRss of a server's whole tree: SeaweedFS
    is a child of the test process, and its memory grows with what it stores."""

    def __init__(self) -> None:
        self.baseline = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_a_gibibyte_streams_in_and_out_with_flat_memory(store: BlobStore) -> None:
    block = memoryview(_data(8 * MiB, 81))
    count = 128  # 1 GiB
    hasher = hashlib.sha256()
    for _ in range(count):
        hasher.update(block)
    digest, size = "sha256:" + hasher.hexdigest(), len(block) * count
    with _PeakRss() as written:
        state = await store.create_upload("u-gib")
        writer = await store.open_upload("u-gib", state, 0, None)
        for _ in range(count):
            await writer.write(block)
        location = await writer.commit(digest, size)
    assert await store.size(digest, location=location) == size
    for name, chunks in (
        ("serving", lambda: _served(store, digest, size, location)),
        ("reading", lambda: store.read(digest, location=location)),
    ):
        with _PeakRss() as read:
            checked, received = hashlib.sha256(), 0
            async for chunk in chunks():
                checked.update(chunk)
                received += len(chunk)
        assert received == size
        assert "sha256:" + checked.hexdigest() == digest
        assert read.growth < 100 * MiB, f"{name} 1 GiB grew the process by {read.growth / MiB:.0f} MiB"
    assert written.growth < 100 * MiB, f"writing 1 GiB grew the process by {written.growth / MiB:.0f} MiB"
    await store.delete(digest, location=location)


async def _served(store: BlobStore, digest: str, size: int, location: str | None) -> AsyncIterator[bytes]:
    async for chunk in _chunks(await store.serve(digest, size, None, location=location)):
        yield chunk


async def _chunks(read: BlobRead) -> AsyncIterator[bytes]:
    if isinstance(read, LocalFile):
        with open(read.path, "rb") as f:
            while chunk := f.read(MiB):
                yield chunk
    elif isinstance(read, Redirect):
        async with httpx.AsyncClient(timeout=120) as client, client.stream("GET", read.url) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_bytes(MiB):
                yield chunk
    else:
        async for chunk in read.chunks:
            yield chunk
