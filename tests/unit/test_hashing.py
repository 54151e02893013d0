"""Resumable SHA-2: same digests as hashlib however the bytes are split, saved, resumed or passed."""

from __future__ import annotations

import array
import hashlib
import itertools
import mmap
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from portside.blobs import hashing
from portside.blobs.hashing import SUPPORTED, ResumableHash, available

ALGORITHMS = sorted(SUPPORTED)


def _cuts(rng: random.Random, size: int, pieces: int) -> list[int]:
    """Sorted chunk boundaries 0 = c0 <= ... <= cn = size, repeats allowed (empty chunks)."""
    return [0, *sorted(rng.randint(0, size) for _ in range(pieces - 1)), size]


def test_supported_and_available() -> None:
    assert frozenset({"sha256", "sha512"}) == SUPPORTED
    assert available()  # Debian always has libssl3; the registry cannot run without it


def test_missing_libcrypto_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "_algorithms", lambda: "OpenSSL libcrypto ... is not usable: not found")
    assert not available()
    with pytest.raises(RuntimeError, match="libcrypto"):
        ResumableHash()


def test_unsupported_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="md5"):
        ResumableHash("md5")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("size", [0, 1, 3, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 1000])
def test_small_inputs_match_hashlib(algorithm: str, size: int) -> None:
    # The sizes straddle both block sizes (64, 128) and the points where padding needs an extra block.
    data = bytes(range(256))[:size] if size <= 256 else bytes(i % 251 for i in range(size))
    h = ResumableHash(algorithm)
    assert h.algorithm == algorithm
    h.update(data)
    assert h.hexdigest() == hashlib.new(algorithm, data).hexdigest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("seed", range(6))
def test_random_chunks_with_resume_at_every_boundary_match_hashlib(algorithm: str, seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randint(0, 300_000))
    cuts = _cuts(rng, len(data), rng.randint(1, 40))
    straight = ResumableHash(algorithm)
    hopping = ResumableHash(algorithm)
    for start, end in itertools.pairwise(cuts):
        straight.update(data[start:end])
        hopping = ResumableHash.resume(hopping.state())  # as if every chunk reached another replica
        hopping.update(data[start:end])
    expected = hashlib.new(algorithm, data).hexdigest()
    assert straight.hexdigest() == expected
    assert hopping.hexdigest() == expected


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_state_round_trips_exactly(algorithm: str) -> None:
    h = ResumableHash(algorithm)
    h.update(b"x" * 1000)
    state = h.state()
    assert ResumableHash.resume(state).state() == state
    assert ResumableHash.resume(state).algorithm == algorithm
    block = 64 if algorithm == "sha256" else 128
    assert len(ResumableHash.resume(state).state()) - len(ResumableHash(algorithm).state()) == 1000 % block


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_resume_in_another_process(algorithm: str) -> None:
    rng = random.Random(7)
    data = rng.randbytes(100_003)
    h = ResumableHash(algorithm)
    h.update(data[:54_321])
    code = (
        "import sys\n"
        "from portside.blobs.hashing import ResumableHash\n"
        "h = ResumableHash.resume(bytes.fromhex(sys.argv[1]))\n"
        "h.update(sys.stdin.buffer.read())\n"
        "print(h.algorithm, h.hexdigest())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, h.state().hex()], input=data[54_321:], capture_output=True, check=True, timeout=60
    )
    assert done.stdout.decode().split() == [algorithm, hashlib.new(algorithm, data).hexdigest()]


def test_counter_past_512_mib_survives_resume() -> None:
    # SHA-256 counts bits in two 32-bit words; the low one wraps after 512 MiB, a size real layers reach.
    chunk = bytes(4 << 20)
    reference = hashlib.sha256()
    h = ResumableHash("sha256")
    for _ in range(128):
        h.update(chunk)
        reference.update(chunk)
    h = ResumableHash.resume(h.state())
    h.update(b"tail" * 3000)
    reference.update(b"tail" * 3000)
    assert h.hexdigest() == reference.hexdigest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hexdigest_does_not_disturb_the_running_hash(algorithm: str) -> None:
    h = ResumableHash(algorithm)
    h.update(b"first part, not a whole block")
    first = h.hexdigest()
    assert first == h.hexdigest() == hashlib.new(algorithm, b"first part, not a whole block").hexdigest()
    state = h.state()
    h.update(b" and the rest" * 20)
    assert h.hexdigest() == hashlib.new(algorithm, b"first part, not a whole block" + b" and the rest" * 20).hexdigest()
    assert ResumableHash.resume(state).hexdigest() == first


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_copy_is_independent(algorithm: str) -> None:
    h = ResumableHash(algorithm)
    h.update(b"common ")
    twin = h.copy()
    assert twin.algorithm == algorithm
    h.update(b"left")
    twin.update(b"right")
    assert h.hexdigest() == hashlib.new(algorithm, b"common left").hexdigest()
    assert twin.hexdigest() == hashlib.new(algorithm, b"common right").hexdigest()


def _relabel(state: bytes, code: int) -> bytes:
    return state[:4] + bytes([code]) + state[5:]


MALFORMED: dict[str, Callable[[bytes, bytes], bytes]] = {
    "empty": lambda s256, s512: b"",
    "header only": lambda s256, s512: s256[:5],
    "truncated by one": lambda s256, s512: s256[:-1],
    "one byte extra": lambda s256, s512: s256 + b"\0",
    "sha512 truncated": lambda s256, s512: s512[:-1],
    "wrong magic": lambda s256, s512: b"XSH" + s256[3:],
    "wrong version": lambda s256, s512: s256[:3] + b"\x02" + s256[4:],
    "unknown algorithm": lambda s256, s512: _relabel(s256, 9),
    "sha256 state as sha512": lambda s256, s512: _relabel(s256, 2),
    "sha512 state as sha256": lambda s256, s512: _relabel(s512, 1),
    # the byte count sits after the 5-byte header and 32 bytes of SHA-256 words
    "length disagrees with tail": lambda s256, s512: s256[:37] + (1001).to_bytes(8, "big") + s256[45:],
    "a bare digest": lambda s256, s512: hashlib.sha256(b"abc").digest(),
}


@pytest.mark.parametrize("mutate", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_state_is_rejected(mutate: Callable[[bytes, bytes], bytes]) -> None:
    s256, s512 = ResumableHash("sha256"), ResumableHash("sha512")
    s256.update(b"y" * 1000)  # 1000 % 64 = 40 and 1000 % 128 = 104 bytes of unfinished block
    s512.update(b"y" * 1000)
    good256, good512 = s256.state(), s512.state()
    assert ResumableHash.resume(good256).hexdigest() == hashlib.sha256(b"y" * 1000).hexdigest()
    with pytest.raises(ValueError):
        ResumableHash.resume(mutate(good256, good512))


@pytest.fixture
def sample() -> bytes:
    return random.Random(3).randbytes(3 * 4096 + 17)


def _buffers(sample: bytes, tmp_path: Path) -> dict[str, bytes | bytearray | memoryview | mmap.mmap]:
    anonymous = mmap.mmap(-1, len(sample) + 100)
    anonymous[50 : 50 + len(sample)] = sample
    path = tmp_path / "blob"
    path.write_bytes(b"\0" * 33 + sample)
    with path.open("rb") as file:
        read_only = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    exact = mmap.mmap(-1, len(sample))
    exact[:] = sample
    return {
        "bytes": sample,
        "bytearray": bytearray(sample),
        "memoryview slice of bytes": memoryview(b"ab" + sample + b"cd")[2:-2],
        "memoryview slice of bytearray": memoryview(bytearray(b"ab" + sample))[2:],
        "mmap": exact,
        "memoryview slice of mmap": memoryview(anonymous)[50 : 50 + len(sample)],
        "memoryview slice of read-only mmap": memoryview(read_only)[33:],
    }


@pytest.mark.parametrize(
    "kind",
    [
        "bytes",
        "bytearray",
        "memoryview slice of bytes",
        "memoryview slice of bytearray",
        "mmap",
        "memoryview slice of mmap",
        "memoryview slice of read-only mmap",
    ],
)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_buffer_kind_hashes_its_bytes(algorithm: str, kind: str, sample: bytes, tmp_path: Path) -> None:
    buffer = _buffers(sample, tmp_path)[kind]
    h = ResumableHash(algorithm)
    h.update(buffer)
    h.update(buffer)
    assert h.hexdigest() == hashlib.new(algorithm, sample + sample).hexdigest()


def test_multibyte_items_are_hashed_as_their_bytes() -> None:
    words = array.array("I", range(1000))
    h = ResumableHash()
    h.update(memoryview(words))
    assert h.hexdigest() == hashlib.sha256(words.tobytes()).hexdigest()


def test_non_buffers_and_strided_views_are_refused() -> None:
    h = ResumableHash()
    with pytest.raises(TypeError):
        h.update("text")  # type: ignore[arg-type]
    with pytest.raises(BufferError):
        h.update(memoryview(b"abcdef")[::2])
    assert h.hexdigest() == hashlib.sha256().hexdigest()  # the refused inputs hashed nothing


def test_update_lets_go_of_the_buffer() -> None:
    # update() holds a buffer export only for the duration of the call: a leaked one makes close() fail.
    buffer = mmap.mmap(-1, 4096)
    h = ResumableHash()
    h.update(buffer)
    buffer.close()
    assert h.hexdigest() == hashlib.sha256(bytes(4096)).hexdigest()


def test_update_releases_the_gil() -> None:
    # While another thread is inside one long update this thread keeps running: if the GIL were held,
    # one of its loop iterations would stall for the whole update.
    data = bytes(128 << 20)
    h = ResumableHash()
    duration: list[float] = []

    def work() -> None:
        start = time.perf_counter()
        h.update(data)
        duration.append(time.perf_counter() - start)

    worker = threading.Thread(target=work)
    last = time.perf_counter()
    longest = 0.0
    worker.start()
    while worker.is_alive():
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
    worker.join()
    assert longest < duration[0] / 2, (longest, duration[0])
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
