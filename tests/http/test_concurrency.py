"""Many clients at once: the same blob, the same manifest and the same tag, pushed concurrently."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import pytest

from tests.http.helpers import OCI_MANIFEST, assert_error, make_client, oci_image, start_upload
from tests.support.blobs import digest_of, push_blob
from tests.support.server import Server

THREADS = 16
T = TypeVar("T")


def all_at_once(server: Server, work: Callable[[httpx.Client, int], T], count: int = THREADS) -> list[T]:
    """Run `work(client, i)` in `count` threads, each with its own connection, released together."""
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        with make_client(server) as client:
            barrier.wait(timeout=30)
            return work(client, i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_same_blob_monolithic(client: httpx.Client, registry: Server, repo: str) -> None:
    data = os.urandom(2 * 1024 * 1024)
    digest = digest_of(data)

    def push(http: httpx.Client, _i: int) -> int:
        return http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data).status_code

    assert all_at_once(registry, push) == [201] * THREADS
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data


def test_same_blob_into_many_repositories(client: httpx.Client, registry: Server, repo: str) -> None:
    data = os.urandom(512 * 1024)
    digest = digest_of(data)

    def push(http: httpx.Client, i: int) -> int:
        return http.post(f"/v2/{repo}/r{i}/blobs/uploads/", params={"digest": digest}, content=data).status_code

    assert all_at_once(registry, push) == [201] * THREADS
    for i in range(THREADS):
        assert client.get(f"/v2/{repo}/r{i}/blobs/{digest}").content == data


def test_same_blob_chunked(client: httpx.Client, registry: Server, repo: str) -> None:
    data = os.urandom(1024 * 1024)
    digest = digest_of(data)
    half = len(data) // 2

    def push(http: httpx.Client, _i: int) -> tuple[int, int, int]:
        upload = start_upload(http, repo)
        first = http.patch(upload, content=data[:half], headers={"Content-Range": f"0-{half - 1}"})
        second = http.patch(upload, content=data[half:], headers={"Content-Range": f"{half}-{len(data) - 1}"})
        done = http.put(upload, params={"digest": digest})
        return first.status_code, second.status_code, done.status_code

    assert all_at_once(registry, push) == [(202, 202, 201)] * THREADS
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == data


def test_same_blob_mounted_and_pushed(client: httpx.Client, registry: Server, repo: str) -> None:
    data = os.urandom(100_000)
    digest = push_blob(client, f"{repo}-source", data)

    def push(http: httpx.Client, i: int) -> int:
        if i % 2:
            params = {"mount": digest, "from": f"{repo}-source"}
            return http.post(f"/v2/{repo}/blobs/uploads/", params=params).status_code
        return http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data).status_code

    assert all_at_once(registry, push) == [201] * THREADS
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == data


def test_same_manifest(client: httpx.Client, registry: Server, repo: str) -> None:
    manifest = oci_image(repo, client, "same")
    digest = digest_of(manifest)

    def push(http: httpx.Client, i: int) -> tuple[int, str]:
        reference = "shared" if i % 2 else digest
        response = http.put(
            f"/v2/{repo}/manifests/{reference}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        return response.status_code, response.headers.get("docker-content-digest", "")

    assert all_at_once(registry, push) == [(201, digest)] * THREADS
    for reference in ("shared", digest):
        response = client.get(f"/v2/{repo}/manifests/{reference}")
        assert response.status_code == 200
        assert response.content == manifest
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["shared"]


def test_same_tag_different_manifests(client: httpx.Client, registry: Server, repo: str) -> None:
    manifests = [oci_image(repo, client, f"contender-{i}") for i in range(THREADS)]

    def push(http: httpx.Client, i: int) -> int:
        response = http.put(
            f"/v2/{repo}/manifests/latest", content=manifests[i], headers={"Content-Type": OCI_MANIFEST}
        )
        return response.status_code

    assert all_at_once(registry, push) == [201] * THREADS
    winner = client.get(f"/v2/{repo}/manifests/latest")
    assert winner.status_code == 200
    assert winner.content in manifests
    assert winner.headers["docker-content-digest"] == digest_of(winner.content)
    assert client.head(f"/v2/{repo}/manifests/latest").headers["docker-content-digest"] == digest_of(winner.content)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["latest"]
    # Every contender was stored, and each is still there by digest.
    for manifest in manifests:
        assert client.get(f"/v2/{repo}/manifests/{digest_of(manifest)}").content == manifest


def test_many_tags_at_once(client: httpx.Client, registry: Server, repo: str) -> None:
    manifest = oci_image(repo, client, "many-tags")

    def push(http: httpx.Client, i: int) -> int:
        response = http.put(f"/v2/{repo}/manifests/t{i:02d}", content=manifest, headers={"Content-Type": OCI_MANIFEST})
        return response.status_code

    assert all_at_once(registry, push) == [201] * THREADS
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == [f"t{i:02d}" for i in range(THREADS)]


def test_push_and_delete_the_same_tag(client: httpx.Client, registry: Server, repo: str) -> None:
    """Pushes and deletes of one tag interleave; afterwards the tag is either gone or whole."""
    manifests = [oci_image(repo, client, f"flip-{i}") for i in range(THREADS)]

    def work(http: httpx.Client, i: int) -> int:
        if i % 2:
            return http.delete(f"/v2/{repo}/manifests/flip").status_code
        response = http.put(f"/v2/{repo}/manifests/flip", content=manifests[i], headers={"Content-Type": OCI_MANIFEST})
        return response.status_code

    results = all_at_once(registry, work)
    assert all(status == 201 for status in results[0::2])
    assert all(status in (202, 404) for status in results[1::2])
    final = client.get(f"/v2/{repo}/manifests/flip")
    if final.status_code == 200:
        assert final.content in manifests[0::2]
        assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["flip"]
    else:
        assert final.status_code == 404
        assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == []


# -- clients talking over each other on one upload -------------------------------------------------
# The spec wants chunks one at a time; clients that break the rule must get a clear 4xx, and the
# upload must never end up holding bytes other than those acknowledged.

ROUNDS = 5  # races are probabilistic: each is run a few times


@pytest.mark.parametrize("attempt", range(ROUNDS))
def test_racing_patches_on_one_upload(client: httpx.Client, registry: Server, repo: str, attempt: int) -> None:
    contenders = [os.urandom(300_000) for _ in range(8)]
    upload = start_upload(client, repo)

    def patch(http: httpx.Client, i: int) -> int:
        headers = {"Content-Range": f"0-{len(contenders[i]) - 1}"}
        return http.patch(upload, content=contenders[i], headers=headers).status_code

    results = all_at_once(registry, patch, len(contenders))
    assert sorted(results) == [202] + [416] * (len(contenders) - 1)
    winner = contenders[results.index(202)]
    done = client.put(upload, params={"digest": digest_of(winner)})
    assert done.status_code == 201, done.text
    assert client.get(f"/v2/{repo}/blobs/{digest_of(winner)}").content == winner


@pytest.mark.parametrize("attempt", range(ROUNDS))
def test_racing_puts_complete_an_upload_once(client: httpx.Client, registry: Server, repo: str, attempt: int) -> None:
    data = os.urandom(300_000)
    digest = digest_of(data)
    upload = start_upload(client, repo)
    assert client.patch(upload, content=data[:100_000]).status_code == 202

    def put(http: httpx.Client, _i: int) -> int:
        return http.put(upload, params={"digest": digest}, content=data[100_000:]).status_code

    results = all_at_once(registry, put, 8)
    assert results.count(201) == 1, results
    assert set(results) <= {201, 404, 416}, results
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == data
    assert client.get(upload).status_code == 404


@pytest.mark.parametrize("attempt", range(ROUNDS))
def test_racing_cancel_and_patches(client: httpx.Client, registry: Server, repo: str, attempt: int) -> None:
    upload = start_upload(client, repo)

    def work(http: httpx.Client, i: int) -> tuple[str, int]:
        if i % 2:
            return "DELETE", http.delete(upload).status_code
        return "PATCH", http.patch(upload, content=os.urandom(200_000)).status_code

    results = all_at_once(registry, work, 8)
    assert {status for method, status in results if method == "DELETE"} <= {204, 404}
    assert {status for method, status in results if method == "PATCH"} <= {202, 404, 416}
    assert ("DELETE", 204) in results
    assert_error(client.get(upload), 404, "BLOB_UPLOAD_UNKNOWN")
