"""Blobs stream: the server's memory stays flat however large the blob."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Server, running_server

MIB = 1024 * 1024
BLOB_SIZE = 2048 * MIB
BLOCK = bytes(range(256)) * 4096  # 1 MiB


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0  # a kernel thread or a process on its way out


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of the server and all its worker processes."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += _rss(current)
            pending += _children(current)
        except FileNotFoundError:
            continue
    return total


class PeakRss:
    """Samples a process's resident memory in the background and keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def blob_body(hasher: hashlib._Hash) -> Iterator[bytes]:
    for i in range(BLOB_SIZE // MIB):
        block = i.to_bytes(8, "big") + BLOCK[8:]  # no two blocks alike
        hasher.update(block)
        yield block


@pytest.fixture
def single_worker(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path, "memory", extra_args=["--workers", "1"]) as server:
        yield server


def test_push_and_pull_of_2_gib_blob_keep_memory_flat(single_worker: Server) -> None:
    assert single_worker.process is not None
    pid = single_worker.process.pid
    with single_worker.client(timeout=600) as client:
        client.get("/v2/")
        baseline = rss_bytes(pid)
        hasher = hashlib.sha256()
        with PeakRss(pid) as push_peak:
            location = client.post("/v2/octo/big/blobs/uploads/").headers["location"]
            patched = client.patch(location, content=blob_body(hasher))
            assert patched.status_code == 202, patched.text
            digest = f"sha256:{hasher.hexdigest()}"
            done = client.put(patched.headers["location"], params={"digest": digest})
            assert done.status_code == 201, done.text

        pulled = hashlib.sha256()
        with PeakRss(pid) as pull_peak, client.stream("GET", f"/v2/octo/big/blobs/{digest}") as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes(MIB):
                pulled.update(chunk)
        assert f"sha256:{pulled.hexdigest()}" == digest

    growth = max(push_peak.peak, pull_peak.peak) - baseline
    print(  # shown with -s; docs/performance.md records these figures
        f"rest {baseline / MIB:.0f} MiB, push peak +{(push_peak.peak - baseline) / MIB:.0f} MiB, "
        f"pull peak +{(pull_peak.peak - baseline) / MIB:.0f} MiB"
    )
    assert growth < 100 * MIB, f"resident memory grew by {growth / MIB:.0f} MiB"
