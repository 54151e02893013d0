"""Online garbage collection and permanent deletion, against real servers: what goes, what stays,
the bytes in the store (not only the rows), the grace period, a pass killed with kill -9, and
concurrent pushers racing a collector that runs every fraction of a second with no grace at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, func, select

from portside.metadata.schema import blob_deletions, blobs
from portside.registry.service import blob_location
from tests.support.blobs import digest_of, image_manifest, push_blob
from tests.support.server import Server, no_server_error, running_server

OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def eager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A registry whose collector takes garbage at once (no grace), run by hand (`portside gc`)."""
    env = {"PORTSIDE_GC_GRACE_SECONDS": "0", "PORTSIDE_GC_INTERVAL_SECONDS": "86400"}
    with running_server(tmp_path_factory.mktemp("gc-eager"), "gc-eager", env=env) as server:
        yield server


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A registry with the default grace period (24 h)."""
    env = {"PORTSIDE_GC_INTERVAL_SECONDS": "86400"}
    with running_server(tmp_path_factory.mktemp("gc-patient"), "gc-patient", env=env) as server:
        yield server


def _gc(server: Server, *args: str) -> dict[str, Any]:
    return dict(json.loads(server.cli("gc", "--json", *args).stdout))


def _image(client: httpx.Client, name: str, tag: str, layers: list[bytes], seed: str) -> tuple[str, list[str]]:
    """Push an image; its digest and the digests of its blobs (config first)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    blobs_ = [config, *layers]
    for blob in blobs_:
        push_blob(client, name, blob)
    manifest = image_manifest(config, layers)
    answer = client.put(f"/v2/{name}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI})
    assert answer.status_code == 201, answer.text
    return digest_of(manifest), [digest_of(b) for b in blobs_]


def _stored(server: Server, digest: str, location: str | None) -> bool:
    return server.store_call(lambda store: store.size(digest, location=location)) is not None


def _where(server: Server, digests: list[str]) -> dict[str, str | None]:
    return {digest: server.read(blob_location, digest) for digest in digests}


def _version_id(client: httpx.Client, package: str, digest: str, state: str = "active") -> int:
    owner, name = package.split("/", 1)
    listed = client.get(f"/api/v3/users/{owner}/packages/container/{name}/versions", params={"state": state})
    assert listed.status_code == 200, listed.text
    return next(int(v["id"]) for v in listed.json() if v["name"] == digest)


def test_an_unreferenced_blob_goes_bytes_and_all_and_a_dry_run_changes_nothing(eager: Server) -> None:
    data = os.urandom(70_000)
    with eager.client() as client:
        digest = push_blob(client, "octo/gc-orphan", data)
        location = eager.read(blob_location, digest)
        dry = _gc(eager, "--dry-run")
        assert dry["dry_run"] is True
        assert digest in dry["digests"]
        assert client.get(f"/v2/octo/gc-orphan/blobs/{digest}").content == data
        assert _stored(eager, digest, location)
        report = _gc(eager)
        assert digest in report["digests"]
        assert report["bytes"] >= len(data)
        gone = client.get(f"/v2/octo/gc-orphan/blobs/{digest}")
        assert gone.status_code == 404
        assert gone.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert not _stored(eager, digest, location)  # the store, not only the rows
    assert eager.read(lambda conn: conn.execute(select(func.count()).select_from(blob_deletions)).scalar()) == 0


def test_the_blobs_of_live_and_restorable_versions_stay_and_a_restore_is_complete(eager: Server) -> None:
    with eager.client() as client:
        live, live_blobs = _image(client, "octo/gc-keep", "live", [os.urandom(5000)], seed="live")
        deleted, deleted_blobs = _image(client, "octo/gc-keep", "gone", [os.urandom(6000)], seed="deleted")
        version = _version_id(client, "octo/gc-keep", deleted)
        assert client.delete(f"/api/v3/users/octo/packages/container/gc-keep/versions/{version}").status_code == 204
        report = _gc(eager)
        assert not set(report["digests"]) & set(live_blobs + deleted_blobs)
        restored = client.post(f"/api/v3/users/octo/packages/container/gc-keep/versions/{version}/restore")
        assert restored.status_code == 204, restored.text
        for tag, digest, wanted in (("live", live, live_blobs), ("gone", deleted, deleted_blobs)):
            assert client.get(f"/v2/octo/gc-keep/manifests/{tag}").headers["docker-content-digest"] == digest
            for blob in wanted:
                answer = client.get(f"/v2/octo/gc-keep/blobs/{blob}")
                assert answer.status_code == 200
                assert digest_of(answer.content) == blob


def test_a_blob_shared_by_two_packages_survives_the_permanent_deletion_of_one(eager: Server) -> None:
    shared = os.urandom(40_000)
    with eager.client() as client:
        _, a_blobs = _image(client, "octo/gc-share-a", "v1", [shared, os.urandom(3000)], seed="a")
        mounted = client.post(
            "/v2/octo/gc-share-b/blobs/uploads/", params={"mount": digest_of(shared), "from": "octo/gc-share-a"}
        )
        assert mounted.status_code == 201
        b_digest, b_blobs = _image(client, "octo/gc-share-b", "v1", [shared], seed="b")
        places = _where(eager, a_blobs)
        purged = client.delete("/api/v3/portside/packages/octo/gc-share-a", params={"permanent": "true"})
        assert purged.status_code == 200, purged.text
        assert purged.json() == {"purged": "octo/gc-share-a", "versions": 1}
        report = _gc(eager)
        only_a = [d for d in a_blobs if d != digest_of(shared)]
        assert set(only_a) <= set(report["digests"])
        assert digest_of(shared) not in report["digests"]
        for blob in b_blobs:
            answer = client.get(f"/v2/octo/gc-share-b/blobs/{blob}")
            assert answer.status_code == 200
            assert digest_of(answer.content) == blob
        assert client.get("/v2/octo/gc-share-b/manifests/v1").headers["docker-content-digest"] == b_digest
        assert client.get("/v2/octo/gc-share-a/tags/list").status_code == 404
    assert _stored(eager, digest_of(shared), places[digest_of(shared)])
    for blob in only_a:
        assert not _stored(eager, blob, places[blob])


def test_permanent_deletion_frees_the_bytes_at_once_while_the_grace_period_protects_the_rest(
    patient: Server,
) -> None:
    with patient.client() as client:
        index_children = []
        for arch in ("amd64", "arm64"):
            digest, child_blobs = _image(client, "octo/gc-leak", f"plain-{arch}", [os.urandom(9000)], seed=arch)
            index_children.append((digest, child_blobs))
        # The platform images lose their own tags: they are the index's from now on.
        for arch in ("amd64", "arm64"):
            assert client.delete(f"/api/v3/portside/packages/octo/gc-leak/tags/plain-{arch}").status_code == 204
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": INDEX,
                "manifests": [
                    {"mediaType": OCI, "digest": d, "size": len(client.get(f"/v2/octo/gc-leak/manifests/{d}").content)}
                    for d, _ in index_children
                ],
            }
        ).encode()
        put = client.put("/v2/octo/gc-leak/manifests/leaky", content=index, headers={"Content-Type": INDEX})
        assert put.status_code == 201, put.text
        kept, kept_blobs = _image(client, "octo/gc-leak", "fine", [os.urandom(4000)], seed="fine")
        unreferenced = push_blob(client, "octo/gc-leak", os.urandom(2000))  # within the grace period
        leaked = [blob for _, child_blobs in index_children for blob in child_blobs]
        places = _where(patient, leaked)

        version = _version_id(client, "octo/gc-leak", digest_of(index))
        bad = client.post("/api/v3/portside/packages/octo/gc-leak/versions/purge", json={"ids": "all"})
        assert bad.status_code == 400
        assert "positive version ids" in bad.json()["message"]
        unknown = client.post("/api/v3/portside/packages/octo/gc-leak/versions/purge", json={"ids": [99999]})
        assert unknown.status_code == 404
        purged = client.post("/api/v3/portside/packages/octo/gc-leak/versions/purge", json={"ids": [version]})
        assert purged.status_code == 200, purged.text
        assert len(purged.json()["purged"]) == 3  # the index and both platform images
        for digest, _ in [(digest_of(index), None), *index_children]:
            assert client.get(f"/v2/octo/gc-leak/manifests/{digest}").status_code == 404

        report = _gc(patient)
        assert set(leaked) <= set(report["digests"])
        assert unreferenced not in report["digests"]  # not freed by the deletion: its grace holds
        assert not set(kept_blobs) & set(report["digests"])
        assert client.get(f"/v2/octo/gc-leak/blobs/{unreferenced}").status_code == 200
        assert client.get("/v2/octo/gc-leak/manifests/fine").headers["docker-content-digest"] == kept
        audit = json.loads(patient.cli("audit", "--json").stdout)
        assert any(e["action"] == "package.purge_versions" and e["target"] == "octo/gc-leak" for e in audit)
    for blob in leaked:
        assert not _stored(patient, blob, places[blob])


def test_the_cli_purges_versions_by_digest(patient: Server) -> None:
    with patient.client() as client:
        digest, blobs_ = _image(client, "octo/gc-cli", "v1", [os.urandom(3000)], seed="cli")
        _image(client, "octo/gc-cli", "v2", [os.urandom(3000)], seed="cli2")
    missing = patient.cli("package", "purge", "octo/gc-cli", "--version", "sha256:" + "0" * 64, check=False)
    assert missing.returncode == 2
    assert "not found in octo/gc-cli" in missing.stderr
    done = json.loads(patient.cli("package", "purge", "octo/gc-cli", "--version", digest, "--json").stdout)
    assert done["versions"] == 1
    text = patient.cli("gc").stdout
    assert text.startswith("removed 2 blobs (")
    with patient.client() as client:
        assert client.get("/v2/octo/gc-cli/tags/list").json()["tags"] == ["v2"]
        for blob in blobs_:
            assert client.get(f"/v2/octo/gc-cli/blobs/{blob}").status_code == 404


def test_a_pass_killed_with_kill_9_leaves_nothing_dangling_and_the_next_finishes(tmp_path: Path, eager: Server) -> None:
    with eager.client() as client:
        kept, kept_blobs = _image(client, "octo/gc-kill", "v1", [os.urandom(8000)], seed="kill")
        garbage = [os.urandom(1000 + i) for i in range(600)]

        def upload(part: list[bytes]) -> None:
            with eager.client() as own:
                for blob in part:
                    push_blob(own, "octo/gc-kill", blob)

        threads = [threading.Thread(target=upload, args=(garbage[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    collector = subprocess.Popen(
        [sys.executable, "-m", "portside", "gc", "--data-dir", str(eager.data_dir)],
        env={**os.environ, **eager.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    count = eager.read(lambda conn: conn.execute(select(func.count()).select_from(blobs)).scalar())
    while collector.poll() is None and time.monotonic() < deadline:
        now = eager.read(lambda conn: conn.execute(select(func.count()).select_from(blobs)).scalar())
        if now < count - 50:  # part-way through the pass
            break
        time.sleep(0.01)
    collector.send_signal(signal.SIGKILL)
    assert collector.wait(timeout=30) == -signal.SIGKILL, "the pass ended before it could be killed"
    with eager.client() as client:
        left = sum(client.head(f"/v2/octo/gc-kill/blobs/{digest_of(b)}").status_code == 200 for b in garbage)
    assert 0 < left < len(garbage), f"killed part-way: {left} of {len(garbage)} garbage blobs left"

    def dangling(conn: Connection) -> list[tuple[str, str | None]]:
        return [(str(d), loc) for d, loc in conn.execute(select(blobs.c.digest, blobs.c.location))]

    for digest, location in eager.read(dangling):  # every blob the database still knows has its bytes
        assert _stored(eager, digest, location), f"{digest} has a row but no bytes"
    _gc(eager)
    with eager.client(event_hooks={"response": [no_server_error]}) as client:
        for blob in garbage:
            assert client.head(f"/v2/octo/gc-kill/blobs/{digest_of(blob)}").status_code == 404
        assert client.get("/v2/octo/gc-kill/manifests/v1").headers["docker-content-digest"] == kept
        for blob in kept_blobs:
            assert client.get(f"/v2/octo/gc-kill/blobs/{blob}").status_code == 200
    assert eager.read(lambda conn: conn.execute(select(func.count()).select_from(blob_deletions)).scalar()) == 0
    for blob in garbage[:20]:
        assert not eager.store_call(lambda store, d=digest_of(blob): store.size(d))


def test_concurrent_pushers_racing_a_collector_with_no_grace_never_lose_an_acknowledged_blob(
    tmp_path: Path,
) -> None:
    """The invariant, under fire: a collector running every 0.2 s with no grace period at all, while
    pushers upload layers (shared and their own) and then the manifests that name them. A push may
    be refused (MANIFEST_BLOB_UNKNOWN: GC took a layer between its upload and the manifest, and the
    pusher uploads it again), but a manifest acknowledged with 201 never names a missing blob."""
    env = {"PORTSIDE_GC_GRACE_SECONDS": "0", "PORTSIDE_GC_INTERVAL_SECONDS": "0.2"}
    shared = [os.urandom(20_000) for _ in range(3)]
    acknowledged: list[tuple[str, str, bytes, list[bytes]]] = []
    refusals: list[str] = []
    failures: list[str] = []
    with running_server(tmp_path, "gc-race", env=env) as server:

        def pusher(worker: int) -> None:
            with server.client() as client:
                for i in range(25):
                    name = f"octo/gc-race-{worker % 3}"
                    own = os.urandom(5000)
                    config = json.dumps({"architecture": "amd64", "os": "linux", "w": worker, "i": i}).encode()
                    layers = [shared[(worker + i) % 3], own]
                    manifest = image_manifest(config, layers)
                    for _attempt in range(20):
                        for blob in (config, *layers):
                            answer = client.post(
                                f"/v2/{name}/blobs/uploads/", params={"digest": digest_of(blob)}, content=blob
                            )
                            if answer.status_code != 201:
                                failures.append(f"blob upload: {answer.status_code} {answer.text}")
                                return
                        put = client.put(
                            f"/v2/{name}/manifests/w{worker}-{i}", content=manifest, headers={"Content-Type": OCI}
                        )
                        if put.status_code == 201:
                            acknowledged.append((name, digest_of(manifest), manifest, [config, *layers]))
                            break
                        if put.status_code == 400 and put.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN":
                            refusals.append(name)
                            continue
                        failures.append(f"manifest: {put.status_code} {put.text}")
                        return
                    # Garbage for the collector: a blob nobody will reference.
                    client.post(
                        f"/v2/{name}/blobs/uploads/",
                        params={"digest": digest_of(junk := os.urandom(3000))},
                        content=junk,
                    )

        workers = [threading.Thread(target=pusher, args=(w,)) for w in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=300)
        assert not failures, failures[:3]
        assert len(acknowledged) == 6 * 25
        time.sleep(1.0)  # a few more passes over the finished pushes
        log = server.log_path.read_text()
        assert "garbage collection removed" in log  # the collector did run and take the junk
        with server.client(event_hooks={"response": [no_server_error]}) as client:
            for name, digest, manifest, wanted in acknowledged:
                got = client.get(f"/v2/{name}/manifests/{digest}", headers={"Accept": OCI})
                assert got.status_code == 200
                assert got.content == manifest
                for blob in wanted:
                    answer = client.get(f"/v2/{name}/blobs/{digest_of(blob)}")
                    assert answer.status_code == 200, f"{name}: a blob of acknowledged {digest} is gone"
                    assert answer.content == blob


def test_an_immutable_tag_holds_its_version_against_permanent_deletion_too(patient: Server) -> None:
    with patient.client() as client:
        digest, _ = _image(client, "octo/gc-immutable", "v1", [os.urandom(2000)], seed="immutable")
        rule = client.put("/api/v3/portside/packages/octo/gc-immutable/immutable-tags", json={"patterns": ["v*"]})
        assert rule.status_code == 200, rule.text
        version = _version_id(client, "octo/gc-immutable", digest)
        refused = client.post("/api/v3/portside/packages/octo/gc-immutable/versions/purge", json={"ids": [version]})
        assert refused.status_code == 403, refused.text
        assert 'tag v1 of octo/gc-immutable is immutable (rule "v*"' in refused.json()["message"]
        whole = client.delete("/api/v3/portside/packages/octo/gc-immutable", params={"permanent": "true"})
        assert whole.status_code == 403, whole.text
        assert client.get("/v2/octo/gc-immutable/manifests/v1").headers["docker-content-digest"] == digest
