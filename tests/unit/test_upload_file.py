"""Upload files: aligned writes may bypass the page cache; whatever the path, the bytes are exact."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from portside.blobs.filesystem import DIRECT_ALIGN, _UploadFile, aligned_buffer


def _fill(buffer, seed: int) -> bytes:  # type: ignore[no-untyped-def]
    data = hashlib.sha256(str(seed).encode()).digest() * (len(buffer) // 32)
    buffer[: len(data)] = data
    return data


@pytest.mark.parametrize(
    "sizes",
    [
        [1 << 20, 1 << 20, 12345],  # aligned buffers, then a short tail
        [100, 1 << 20, 4096],  # an unaligned start puts everything after it through the page cache
        [4096 * 3 + 7, 1 << 20],  # a tail inside an aligned write
    ],
)
def test_mixed_writes_store_exact_bytes(tmp_path: Path, sizes: list[int]) -> None:
    path = tmp_path / "u"
    path.touch()
    expected = b""
    file = _UploadFile(path)
    try:
        for seed, size in enumerate(sizes):
            if size % DIRECT_ALIGN == 0:
                buffer = aligned_buffer(size)
                expected += _fill(buffer, seed)[:size]
                file.write(memoryview(buffer)[:size])
            else:
                data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
                file.write(data[:size])
                expected += data[:size]
    finally:
        file.close()
    assert path.read_bytes() == expected


def test_truncate_rewinds_the_write_position(tmp_path: Path) -> None:
    path = tmp_path / "u"
    path.touch()
    file = _UploadFile(path)
    try:
        buffer = aligned_buffer(8192)
        buffer[:] = b"a" * 8192
        file.write(buffer)
        file.truncate(4096)
        file.write(b"b" * 10)
    finally:
        file.close()
    assert path.read_bytes() == b"a" * 4096 + b"b" * 10
