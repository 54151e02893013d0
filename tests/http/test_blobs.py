"""Pulling, checking and deleting blobs: GET/HEAD/DELETE /v2/<name>/blobs/<digest>, with ranges."""

from __future__ import annotations

import httpx
import pytest

from tests.http.helpers import UNKNOWN_DIGEST, assert_error, sha512_of
from tests.support.blobs import digest_of, push_blob

DATA = bytes(range(256)) * 40  # 10240 bytes, every byte value, so offsets are easy to check


def test_get_returns_exact_bytes_and_headers(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, DATA)
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["docker-content-digest"] == digest
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def test_head_has_size_and_digest_but_no_body(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, DATA)
    response = client.head(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["docker-content-digest"] == digest
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def test_empty_blob(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"")
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"
    assert client.head(f"/v2/{repo}/blobs/{digest}").headers["content-length"] == "0"


def test_sha512_blob(client: httpx.Client, repo: str) -> None:
    digest = sha512_of(DATA)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=DATA)
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == digest
    pulled = client.get(f"/v2/{repo}/blobs/{digest}")
    assert pulled.status_code == 200
    assert pulled.content == DATA
    assert pulled.headers["docker-content-digest"] == digest


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-40", 10200, 10239),
        ("bytes=10230-99999", 10230, 10239),  # an end past the blob is cut to the blob
        ("bytes=-99999", 0, 10239),  # a suffix longer than the blob is the whole blob
        ("bytes=10239-10239", 10239, 10239),
    ],
)
def test_range(client: httpx.Client, repo: str, header: str, start: int, end: int) -> None:
    digest = push_blob(client, repo, DATA)
    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 206, response.text
    assert response.content == DATA[start : end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.headers["docker-content-digest"] == digest
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-30000", "bytes=-0", "bytes=200-100"])
def test_unsatisfiable_range(client: httpx.Client, repo: str, header: str) -> None:
    digest = push_blob(client, repo, DATA)
    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert_error(response, 416, "BLOB_UPLOAD_INVALID", header)
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("header", ["bytes=-", "items=0-10", "bytes=0-1,5-9", "bytes=a-b", "0-10"])
def test_malformed_range(client: httpx.Client, repo: str, header: str) -> None:
    digest = push_blob(client, repo, DATA)
    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert_error(response, 416, "UNSUPPORTED", header, "bytes=0-1023")
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=-1", "bytes=0-0"])
def test_any_range_of_an_empty_blob_is_unsatisfiable(client: httpx.Client, repo: str, header: str) -> None:
    digest = push_blob(client, repo, b"")
    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert_error(response, 416, "BLOB_UPLOAD_INVALID", header)
    assert response.headers["content-range"] == "bytes */0"


def test_unknown_blob(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"something else")
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/v2/{repo}/blobs/{UNKNOWN_DIGEST}")
        error = assert_error(response, 404, "BLOB_UNKNOWN", UNKNOWN_DIGEST, repo)
        assert error["detail"] == {"digest": UNKNOWN_DIGEST}
    head = client.head(f"/v2/{repo}/blobs/{UNKNOWN_DIGEST}")
    assert head.status_code == 404
    assert head.content == b""
    assert head.headers["docker-distribution-api-version"] == "registry/2.0"


def test_blob_of_unknown_repository(client: httpx.Client, repo: str) -> None:
    response = client.get(f"/v2/{repo}/blobs/{UNKNOWN_DIGEST}")
    assert_error(response, 404, "BLOB_UNKNOWN", UNKNOWN_DIGEST)


def test_blob_in_another_repository_is_not_visible(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"only in the first repository")
    other = f"{repo}-other"
    push_blob(client, other, b"something else")
    assert client.get(f"/v2/{repo}/blobs/{digest}").status_code == 200
    assert_error(client.get(f"/v2/{other}/blobs/{digest}"), 404, "BLOB_UNKNOWN", digest)
    assert client.head(f"/v2/{other}/blobs/{digest}").status_code == 404
    assert_error(client.delete(f"/v2/{other}/blobs/{digest}"), 404, "BLOB_UNKNOWN", digest)
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == b"only in the first repository"


def test_delete_then_gone(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"short-lived")
    response = client.delete(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 202
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    assert_error(client.delete(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_delete_in_one_repository_keeps_the_blob_in_another(client: httpx.Client, repo: str) -> None:
    data = b"shared between two repositories"
    digest = push_blob(client, repo, data)
    other = f"{repo}-other"
    push_blob(client, other, data)
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    assert client.get(f"/v2/{repo}/blobs/{digest}").status_code == 404
    assert client.get(f"/v2/{other}/blobs/{digest}").content == data


def test_delete_of_unknown_repository(client: httpx.Client, repo: str) -> None:
    assert_error(client.delete(f"/v2/{repo}/blobs/{UNKNOWN_DIGEST}"), 404, "NAME_UNKNOWN", repo)


def test_blob_can_be_pushed_again_after_delete(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"comes back")
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    assert push_blob(client, repo, b"comes back") == digest
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == b"comes back"


@pytest.mark.parametrize(
    ("digest", "mentions"),
    [
        ("sha256:abc", ("64 lowercase hex digits",)),
        ("sha256:" + "A" * 64, ("lowercase hex",)),
        ("md5:" + "0" * 32, ("unsupported digest algorithm", "md5")),
        ("notadigest", ("algorithm:hex",)),
        ("sha512:" + "0" * 64, ("128 lowercase hex digits",)),
    ],
)
def test_malformed_digest(client: httpx.Client, repo: str, digest: str, mentions: tuple[str, ...]) -> None:
    push_blob(client, repo, b"x")
    for method in ("GET", "DELETE"):
        error = assert_error(client.request(method, f"/v2/{repo}/blobs/{digest}"), 400, "DIGEST_INVALID", *mentions)
        assert error["detail"] == {"digest": digest}
    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 400


def test_digest_header_matches_the_bytes(client: httpx.Client, repo: str) -> None:
    data = b"verify me"
    push_blob(client, repo, data)
    response = client.get(f"/v2/{repo}/blobs/{digest_of(data)}")
    assert digest_of(response.content) == response.headers["docker-content-digest"]
