"""Storage faults as operating conditions: a full disk (made real: a small tmpfs), a database that
cannot grow, a blob whose bytes are gone. The client gets the spec's JSON error with a status that
says "later" and a message a person can act on; the log says it once, without a traceback; nothing
acknowledged is damaged; the registry recovers by itself when space returns.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.helpers import OCI_MANIFEST, assert_error
from tests.support.blobs import digest_of, image_manifest, push_blob
from tests.support.server import Server, running_server

BLOB = 8 * 1024 * 1024
ON_DISK = {"PORTSIDE_STORAGE_URL": ""}  # a full disk is the filesystem driver's (test_s3_faults has S3's faults)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB filesystem of its own (tmpfs), so filling it harms nothing else."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; run the suite as root (CI does) to fill a real disk")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m,mode=0700", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


@pytest.fixture
def full_server(small_disk: Path) -> Iterator[Server]:
    with running_server(small_disk, "storage-full", extra_args=["--workers", "1"], env=ON_DISK) as server:
        yield server


def _no_crash(response: httpx.Response) -> None:
    """Only the two answers that mean "later" may be 5xx here: never a 500."""
    request = response.request
    assert response.status_code < 500 or response.status_code in (503, 507), (
        f"{request.method} {request.url} answered {response.status_code}"
    )


def make_client(server: Server) -> httpx.Client:
    return server.client(event_hooks={"response": [_no_crash]})


def _blob(seed: int) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (BLOB // 32)


def _push(client: httpx.Client, name: str, data: bytes) -> httpx.Response:
    """docker's way: POST a session, then PUT the whole body with the digest."""
    start = client.post(f"/v2/{name}/blobs/uploads/")
    assert start.status_code == 202, start.text
    return client.put(start.headers["location"], params={"digest": digest_of(data)}, content=data)


def _fill(path: Path) -> None:
    """Write zeros into `path` until the filesystem has no space left."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def _assert_full(response: httpx.Response) -> None:
    error = assert_error(response, 507, "UNAVAILABLE", "storage is full", "free space or add capacity")
    assert error["message"]
    assert int(response.headers["retry-after"]) > 0


def _log(server: Server) -> str:
    return server.log_path.read_text(errors="replace")


def test_a_full_disk_refuses_pushes_clearly_and_recovers_when_space_returns(full_server: Server) -> None:
    server = full_server
    filler = server.data_dir.parent / "filler"
    filler.write_bytes(b"\0" * 14 * 1024 * 1024)  # freed later, to make room
    with make_client(server) as client:
        assert client.get("/readyz").status_code == 200
        pushed: list[bytes] = []
        refused: httpx.Response | None = None
        for seed in range(10):
            data = _blob(seed)
            response = _push(client, "t/full", data)
            if response.status_code != 201:
                refused = response
                break
            pushed.append(data)
        assert refused is not None, "the 40 MiB disk never filled"
        assert pushed, "not even the first blob fitted"
        _assert_full(refused)
        # A second attempt is refused the same way, and a monolithic POST too.
        _assert_full(_push(client, "t/full", _blob(99)))
        data = _blob(98)
        _assert_full(client.post("/v2/t/full/blobs/uploads/", params={"digest": digest_of(data)}, content=data))
        # No partial bytes are left behind (a session stays open at what it had acknowledged, here
        # nothing: the client may retry it), and nothing acknowledged is damaged.
        assert sum(p.stat().st_size for p in (server.data_dir / "uploads").iterdir()) == 0
        for data in pushed:
            got = client.get(f"/v2/t/full/blobs/{digest_of(data)}")
            assert got.status_code == 200
            assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
        # Alive, but not ready: a balancer stops sending pushes here.
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not ready"
        assert "not writable" in ready.json()["checks"]["storage"]
        assert ready.json()["checks"]["database"] == "ok"

        filler.unlink()  # the operator frees space: no restart needed
        assert client.get("/readyz").status_code == 200
        again = _push(client, "t/full", _blob(99))
        assert again.status_code == 201, again.text
        assert client.head(f"/v2/t/full/blobs/{digest_of(_blob(99))}").status_code == 200
    log = _log(server)
    assert "Traceback" not in log
    # Said once for the condition (not per request), with the path and free space; then its end.
    assert log.count("blob storage is full: cannot write") == 1
    assert "MiB free in" in log
    assert "blob storage is full: resolved" in log


def test_a_database_that_cannot_grow_fails_cleanly_and_recovers(full_server: Server) -> None:
    server = full_server
    with make_client(server) as client:
        config, layer = b'{"architecture":"amd64","os":"linux"}', b"a layer"
        push_blob(client, "t/db", config)
        push_blob(client, "t/db", layer)

        def manifest(i: int) -> bytes:
            # Large annotations make every manifest a few hundred KiB of database pages.
            return image_manifest(config, [layer], annotations={"i": str(i), "pad": "x" * 300_000})

        first = client.put("/v2/t/db/manifests/first", content=manifest(0), headers={"Content-Type": OCI_MANIFEST})
        assert first.status_code == 201
        filler = server.data_dir.parent / "filler"
        _fill(filler)
        refused = None
        for i in range(1, 200):
            response = client.put(
                f"/v2/t/db/manifests/v{i}", content=manifest(i), headers={"Content-Type": OCI_MANIFEST}
            )
            if response.status_code != 201:
                refused = response
                break
        assert refused is not None, "the database never ran out of space"
        _assert_full(refused)
        assert client.get("/v2/t/db/manifests/first").content == manifest(0)  # reads go on
        filler.unlink()
        again = client.put("/v2/t/db/manifests/after", content=manifest(500), headers={"Content-Type": OCI_MANIFEST})
        assert again.status_code == 201, again.text
        assert client.get("/v2/t/db/manifests/after").content == manifest(500)
    server.stop()
    with sqlite3.connect(server.data_dir / "portside.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    log = _log(server)
    assert "Traceback" not in log
    assert "the database is full" in log


def test_a_blob_whose_bytes_are_gone_is_a_clear_storage_error(tmp_path: Path) -> None:
    with running_server(tmp_path, "storage-missing-blob", extra_args=["--workers", "1"], env=ON_DISK) as server:
        with make_client(server) as client:
            digest = push_blob(client, "t/lost", b"bytes that will be lost")
            hexdigest = digest.split(":", 1)[1]
            (server.data_dir / "blobs" / "sha256" / hexdigest[:2] / hexdigest).unlink()
            response = client.get(f"/v2/t/lost/blobs/{digest}")
            error = assert_error(response, 503, "UNAVAILABLE", digest, "missing from storage", "backup")
            assert error["message"]
            assert response.headers["retry-after"]
            # HEAD answers from the database, which still records the blob.
            assert client.head(f"/v2/t/lost/blobs/{digest}").status_code == 200
        log = _log(server)
    assert digest in log
    assert "Traceback" not in log


def test_readiness_reports_both_stores(tmp_path: Path) -> None:
    with (
        running_server(tmp_path, "storage-ready", extra_args=["--workers", "1"]) as server,
        make_client(server) as client,
    ):
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}
        assert client.get("/healthz").json() == {"status": "ok"}
