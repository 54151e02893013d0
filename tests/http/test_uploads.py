"""Pushing blobs: POST/PATCH/PUT/GET/DELETE /v2/<name>/blobs/uploads/..., monolithic, chunked, mounted."""

from __future__ import annotations

import os
import select
import socket
import time
import urllib.parse
import uuid
from collections.abc import Iterator

import httpx
import pytest

from portside.blobs.store import BlobStore
from portside.registry.service import blob_location
from tests.http.helpers import (
    UNKNOWN_DIGEST,
    assert_error,
    location_path,
    raw_request,
    server_log,
    sha512_of,
    start_upload,
    upload_range,
    wait_for_access_log,
)
from tests.support.blobs import digest_of, push_blob
from tests.support.server import Server

EMPTY_DIGEST = digest_of(b"")


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    """A generator body: httpx sends it with Transfer-Encoding: chunked and no Content-Length."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def assert_blob(client: httpx.Client, name: str, data: bytes, digest: str | None = None) -> None:
    digest = digest or digest_of(data)
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200, response.text
    assert response.content == data


def assert_no_blob(client: httpx.Client, name: str, digest: str) -> None:
    assert client.head(f"/v2/{name}/blobs/{digest}").status_code == 404


def assert_created(response: httpx.Response, name: str, digest: str) -> None:
    assert response.status_code == 201, response.text
    assert location_path(response) == f"/v2/{name}/blobs/{digest}"
    assert response.headers["docker-content-digest"] == digest
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


# -- starting uploads ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/blobs/uploads/", "/blobs/uploads"])
def test_post_starts_a_session(client: httpx.Client, repo: str, path: str) -> None:
    response = client.post(f"/v2/{repo}{path}")
    assert response.status_code == 202, response.text
    upload_id = response.headers["docker-upload-uuid"]
    assert str(uuid.UUID(upload_id)) == upload_id
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(client.base_url.scheme + "://")  # absolute, usable as is
    assert location.path == f"/v2/{repo}/blobs/uploads/{upload_id}"
    assert response.headers["range"] == "0-0"
    assert response.headers["content-length"] == "0"
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    assert upload_range(client, location.path) == "0-0"


def test_each_post_is_a_new_session(client: httpx.Client, repo: str) -> None:
    assert start_upload(client, repo) != start_upload(client, repo)


def test_monolithic_post(client: httpx.Client, repo: str) -> None:
    data = os.urandom(100_000)
    digest = digest_of(data)
    response = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)


def test_monolithic_post_streamed_chunked(client: httpx.Client, repo: str) -> None:
    data = os.urandom(300_000)
    digest = digest_of(data)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=pieces(data, 65536))
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)


def test_monolithic_post_of_the_empty_blob_without_a_body(client: httpx.Client, repo: str) -> None:
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": EMPTY_DIGEST})
    assert_created(response, repo, EMPTY_DIGEST)
    assert_blob(client, repo, b"")


def test_post_with_digest_but_no_body_opens_a_session(client: httpx.Client, repo: str) -> None:
    data = b"sent later with PUT"
    digest = digest_of(data)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest})
    assert response.status_code == 202, response.text
    assert_no_blob(client, repo, digest)
    finished = client.put(location_path(response), params={"digest": digest}, content=data)
    assert_created(finished, repo, digest)
    assert_blob(client, repo, data)


def test_monolithic_post_with_the_wrong_digest(client: httpx.Client, repo: str) -> None:
    data = b"these are not the bytes you named"
    claimed = digest_of(b"other bytes")
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=data)
    error = assert_error(response, 400, "DIGEST_INVALID", claimed, digest_of(data))
    assert error["detail"] == {"expected": claimed, "computed": digest_of(data)}
    assert_no_blob(client, repo, claimed)
    assert_no_blob(client, repo, digest_of(data))


def test_monolithic_post_sha512(client: httpx.Client, repo: str) -> None:
    data = os.urandom(5000)
    digest = sha512_of(data)
    assert_created(client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data), repo, digest)
    assert_blob(client, repo, data, digest)


@pytest.mark.parametrize("digest", ["sha256:1234", "sha1:" + "0" * 40, "SHA256:" + "0" * 64, "nonsense"])
def test_monolithic_post_with_a_malformed_digest(client: httpx.Client, repo: str, digest: str) -> None:
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"data")
    assert_error(response, 400, "DIGEST_INVALID", digest)


def test_post_then_put_with_the_body(client: httpx.Client, repo: str) -> None:
    data = os.urandom(70_000)
    digest = digest_of(data)
    upload = start_upload(client, repo)
    response = client.put(
        upload, params={"digest": digest}, content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)
    assert_error(client.get(upload), 404, "BLOB_UPLOAD_UNKNOWN")  # a completed upload is gone


# -- chunked uploads -----------------------------------------------------------------------------


def test_patch_streamed_with_transfer_encoding_chunked(client: httpx.Client, repo: str) -> None:
    data = os.urandom(9 * 1024 * 1024 + 12345)  # more than two of the server's write buffers
    upload = start_upload(client, repo)
    response = client.patch(upload, content=pieces(data, 64 * 1024))
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 202, response.text
    assert response.headers["range"] == f"0-{len(data) - 1}"
    assert location_path(response) == upload
    assert response.headers["docker-upload-uuid"] == upload.rsplit("/", 1)[-1]
    assert upload_range(client, upload) == f"0-{len(data) - 1}"
    digest = digest_of(data)
    assert_created(client.put(upload, params={"digest": digest}), repo, digest)
    assert_blob(client, repo, data)


def test_a_large_sha512_chunked_upload_is_read_back_once(client: httpx.Client, repo: str) -> None:
    """The running hash is sha256: a digest of another algorithm reads the acknowledged bytes back
    (on S3 from parts not yet completed) before the blob is committed."""
    data = os.urandom(17 * 1024 * 1024 + 99)
    upload = start_upload(client, repo)
    assert client.patch(upload, content=data[: 9 * 1024 * 1024]).status_code == 202
    assert client.patch(upload, content=data[9 * 1024 * 1024 :]).status_code == 202
    digest = sha512_of(data)
    assert_created(client.put(upload, params={"digest": digest}), repo, digest)
    assert_blob(client, repo, data, digest)


def test_the_same_blob_pushed_chunked_twice_keeps_one_copy(registry: Server, client: httpx.Client, repo: str) -> None:
    """The second upload's commit finds the digest recorded: that row wins, and on a store that
    kept this upload's bytes where its parts went (S3's chunked/<id>), they are deleted."""
    data = os.urandom(9 * 1024 * 1024 + 7)
    digest = digest_of(data)
    uploads = []
    for _ in range(2):
        upload = start_upload(client, repo)
        assert client.patch(upload, content=data).status_code == 202
        assert_created(client.put(upload, params={"digest": digest}), repo, digest)
        uploads.append(upload.rsplit("/", 1)[-1])
    assert_blob(client, repo, data)
    recorded = registry.read(blob_location, digest)

    async def listed(store: BlobStore) -> list[str]:
        return [location async for location in store.locations()]

    locations = set(registry.store_call(listed))
    if recorded is not None:
        assert recorded == f"chunked/{uploads[0]}"
        assert recorded in locations
    assert f"chunked/{uploads[1]}" not in locations


def test_patch_streamed_with_content_range(client: httpx.Client, repo: str) -> None:
    data = os.urandom(600_000)
    upload = start_upload(client, repo)
    for start, end in ((0, 199_999), (200_000, 599_999)):
        response = client.patch(
            upload, content=pieces(data[start : end + 1], 30_000), headers={"Content-Range": f"{start}-{end}"}
        )
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert response.status_code == 202, response.text
        assert response.headers["range"] == f"0-{end}"
    digest = digest_of(data)
    assert_created(client.put(upload, params={"digest": digest}), repo, digest)
    assert_blob(client, repo, data)


def test_several_patches_with_content_range_then_put_without_a_body(client: httpx.Client, repo: str) -> None:
    data = os.urandom(30_000)
    upload = start_upload(client, repo)
    for start in range(0, len(data), 10_000):
        chunk = data[start : start + 10_000]
        response = client.patch(
            upload,
            content=chunk,
            headers={"Content-Range": f"{start}-{start + len(chunk) - 1}", "Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 202, response.text
        assert response.headers["range"] == f"0-{start + len(chunk) - 1}"
        upload = location_path(response)  # clients follow the Location of each answer
    digest = digest_of(data)
    assert_created(client.put(upload, params={"digest": digest}), repo, digest)
    assert_blob(client, repo, data)


def test_several_patches_then_put_with_the_final_chunk(client: httpx.Client, repo: str) -> None:
    data = os.urandom(25_000)
    upload = start_upload(client, repo)
    assert client.patch(upload, content=data[:10_000]).status_code == 202
    assert client.patch(upload, content=pieces(data[10_000:20_000], 3000)).status_code == 202
    assert upload_range(client, upload) == "0-19999"
    digest = digest_of(data)
    response = client.put(
        upload, params={"digest": digest}, content=data[20_000:], headers={"Content-Range": "20000-24999"}
    )
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)


def test_put_with_a_streamed_final_chunk(client: httpx.Client, repo: str) -> None:
    data = os.urandom(50_000)
    upload = start_upload(client, repo)
    assert client.patch(upload, content=data[:20_000]).status_code == 202
    digest = digest_of(data)
    assert_created(client.put(upload, params={"digest": digest}, content=pieces(data[20_000:], 7000)), repo, digest)
    assert_blob(client, repo, data)


def test_chunked_upload_with_a_sha512_digest(client: httpx.Client, repo: str) -> None:
    data = os.urandom(40_000)
    upload = start_upload(client, repo)
    assert client.patch(upload, content=data[:15_000], headers={"Content-Range": "0-14999"}).status_code == 202
    assert client.patch(upload, content=data[15_000:]).status_code == 202
    digest = sha512_of(data)
    assert_created(client.put(upload, params={"digest": digest}), repo, digest)
    assert_blob(client, repo, data, digest)


def test_empty_patch_changes_nothing(client: httpx.Client, repo: str) -> None:
    upload = start_upload(client, repo)
    assert client.patch(upload, content=b"abc").status_code == 202
    response = client.patch(upload, content=b"")
    assert response.status_code == 202
    assert response.headers["range"] == "0-2"
    assert_created(client.put(upload, params={"digest": digest_of(b"abc")}), repo, digest_of(b"abc"))


def test_status(client: httpx.Client, repo: str) -> None:
    upload = start_upload(client, repo)
    assert client.patch(upload, content=b"0123456789").status_code == 202
    response = client.get(upload)
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["range"] == "0-9"
    assert location_path(response) == upload
    assert response.headers["docker-upload-uuid"] == upload.rsplit("/", 1)[-1]
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    head = client.head(upload)  # as GET, without a body
    assert (head.status_code, head.headers["range"], head.content) == (204, "0-9", b"")


def test_out_of_order_chunk(client: httpx.Client, repo: str) -> None:
    upload = start_upload(client, repo)
    assert client.patch(upload, content=b"0123456789", headers={"Content-Range": "0-9"}).status_code == 202
    skipped = client.patch(upload, content=b"abcde", headers={"Content-Range": "20-24"})
    error = assert_error(skipped, 416, "BLOB_UPLOAD_INVALID", "starts at byte 20", "from byte 10")
    assert error["detail"] == {"expected_start": 10}
    assert skipped.headers["range"] == "0-9"
    repeated = client.patch(upload, content=b"0123456789", headers={"Content-Range": "0-9"})
    assert_error(repeated, 416, "BLOB_UPLOAD_INVALID", "from byte 10")
    backwards = client.patch(upload, content=b"x", headers={"Content-Range": "10-5"})
    assert_error(backwards, 416, "BLOB_UPLOAD_INVALID", "10-5")
    # None of that changed the upload: it carries on from where it was.
    assert upload_range(client, upload) == "0-9"
    assert client.patch(upload, content=b"abcde", headers={"Content-Range": "10-14"}).status_code == 202
    data = b"0123456789abcde"
    assert_created(client.put(upload, params={"digest": digest_of(data)}), repo, digest_of(data))
    assert_blob(client, repo, data)


def test_first_chunk_must_start_at_zero(client: httpx.Client, repo: str) -> None:
    upload = start_upload(client, repo)
    response = client.patch(upload, content=b"abc", headers={"Content-Range": "1-3"})
    assert_error(response, 416, "BLOB_UPLOAD_INVALID", "from byte 0")
    assert upload_range(client, upload) == "0-0"


@pytest.mark.parametrize("header", ["bytes=0-", "abc", "0-", "-5", "0-9/10x"])
def test_malformed_content_range(client: httpx.Client, repo: str, header: str) -> None:
    upload = start_upload(client, repo)
    response = client.patch(upload, content=b"0123456789", headers={"Content-Range": header})
    assert_error(response, 400, "BLOB_UPLOAD_INVALID", header, "<start>-<end>")


@pytest.mark.parametrize("header", ["bytes 0-9", "bytes=0-9"])
def test_content_range_with_a_unit(client: httpx.Client, repo: str, header: str) -> None:
    upload = start_upload(client, repo)
    response = client.patch(upload, content=b"0123456789", headers={"Content-Range": header})
    assert response.status_code == 202, response.text
    assert response.headers["range"] == "0-9"


def test_content_length_disagrees_with_content_range(client: httpx.Client, repo: str) -> None:
    upload = start_upload(client, repo)
    response = client.patch(upload, content=b"01234", headers={"Content-Range": "0-9"})
    assert_error(response, 400, "SIZE_INVALID", "0-9", "10 bytes", "Content-Length is 5")
    assert upload_range(client, upload) == "0-0"


@pytest.mark.parametrize(("body", "mention"), [(b"01234", "has 5 bytes"), (b"0123456789abcde", "longer")])
def test_streamed_body_disagrees_with_content_range(client: httpx.Client, repo: str, body: bytes, mention: str) -> None:
    upload = start_upload(client, repo)
    assert client.patch(upload, content=b"start").status_code == 202
    response = client.patch(upload, content=pieces(body, 4), headers={"Content-Range": "5-14"})
    assert_error(response, 400, "SIZE_INVALID", mention)
    # What the failed request sent is forgotten, and the upload can carry on.
    assert upload_range(client, upload) == "0-4"
    assert client.patch(upload, content=b"0123456789", headers={"Content-Range": "5-14"}).status_code == 202
    data = b"start0123456789"
    assert_created(client.put(upload, params={"digest": digest_of(data)}), repo, digest_of(data))
    assert_blob(client, repo, data)


# -- finishing and cancelling --------------------------------------------------------------------


def test_put_with_the_wrong_digest(client: httpx.Client, repo: str) -> None:
    upload = start_upload(client, repo)
    assert client.patch(upload, content=b"actual bytes").status_code == 202
    claimed = digest_of(b"other bytes")
    response = client.put(upload, params={"digest": claimed})
    assert_error(response, 400, "DIGEST_INVALID", claimed, digest_of(b"actual bytes"), "push the blob again")
    assert_no_blob(client, repo, claimed)
    assert_no_blob(client, repo, digest_of(b"actual bytes"))
    assert_error(client.get(upload), 404, "BLOB_UPLOAD_UNKNOWN")


def test_put_with_the_wrong_sha512_digest(client: httpx.Client, repo: str) -> None:
    upload = start_upload(client, repo)
    claimed = sha512_of(b"other bytes")
    response = client.put(upload, params={"digest": claimed}, content=b"actual bytes")
    assert_error(response, 400, "DIGEST_INVALID", claimed)
    assert_no_blob(client, repo, claimed)


@pytest.mark.parametrize("digest", ["sha256:xyz", "sha256:" + "0" * 63, "blake3:" + "0" * 64, ""])
def test_put_with_a_malformed_or_missing_digest_keeps_the_upload(client: httpx.Client, repo: str, digest: str) -> None:
    upload = start_upload(client, repo)
    assert client.patch(upload, content=b"kept").status_code == 202
    params = {"digest": digest} if digest else {}
    response = client.put(upload, params=params)
    assert_error(response, 400, "DIGEST_INVALID", digest or "digest query parameter is required")
    assert upload_range(client, upload) == "0-3"
    assert_created(client.put(upload, params={"digest": digest_of(b"kept")}), repo, digest_of(b"kept"))


def test_cancel(client: httpx.Client, repo: str) -> None:
    upload = start_upload(client, repo)
    assert client.patch(upload, content=b"never finished").status_code == 202
    response = client.delete(upload)
    assert response.status_code == 204
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        params = {"digest": digest_of(b"never finished")} if method == "PUT" else None
        gone = client.request(method, upload, params=params)
        assert_error(gone, 404, "BLOB_UPLOAD_UNKNOWN", upload.rsplit("/", 1)[-1], "POST /v2/<name>/blobs/uploads/")
    assert_no_blob(client, repo, digest_of(b"never finished"))


@pytest.mark.parametrize("upload_id", [str(uuid.uuid4()), "not-an-upload", "0" * 36, str(uuid.uuid4()).upper()])
def test_unknown_upload(client: httpx.Client, repo: str, upload_id: str) -> None:
    push_blob(client, repo, b"the repository exists")
    path = f"/v2/{repo}/blobs/uploads/{upload_id}"
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        params = {"digest": UNKNOWN_DIGEST} if method == "PUT" else None
        error = assert_error(client.request(method, path, params=params), 404, "BLOB_UPLOAD_UNKNOWN", upload_id)
        assert error["detail"] == {"upload": upload_id}


def test_upload_of_another_repository(client: httpx.Client, repo: str) -> None:
    upload = start_upload(client, repo)
    assert client.patch(upload, content=b"mine").status_code == 202
    stolen = upload.replace(f"/v2/{repo}/", f"/v2/{repo}-thief/")
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        params = {"digest": digest_of(b"mine")} if method == "PUT" else None
        assert_error(client.request(method, stolen, params=params, content=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_no_blob(client, f"{repo}-thief", digest_of(b"mine"))
    assert upload_range(client, upload) == "0-3"
    assert_created(client.put(upload, params={"digest": digest_of(b"mine")}), repo, digest_of(b"mine"))


# -- clients that go away or talk over each other ------------------------------------------------


def read_response(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """Read one response's status and headers from a raw socket."""
    status, headers, _ = read_whole_response(sock)
    return status, headers


def read_whole_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a full response: {received!r}"
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode().split("\r\n")
    headers = {key.strip().lower(): value.strip() for key, value in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the whole body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def patch_head(server: Server, upload: str, length: int, content_range: str) -> str:
    return (
        f"PATCH {upload} HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {length}\r\nContent-Range: {content_range}\r\n"
    )


def test_client_disconnects_mid_patch(client: httpx.Client, registry: Server, repo: str) -> None:
    data = os.urandom(3 * 1024 * 1024)
    first, second = data[:1000], data[1000:]
    upload = start_upload(client, repo)
    assert client.patch(upload, content=first, headers={"Content-Range": "0-999"}).status_code == 202

    # Promise the rest, send half of it, and hang up.
    raw_request(registry, patch_head(registry, upload, len(second), f"1000-{len(data) - 1}"), second[:1_000_000])
    assert wait_for_access_log(registry, "PATCH", upload, count=2) == [202, 400]
    assert f"unhandled error in PATCH {upload}" not in server_log(registry)

    assert upload_range(client, upload) == "0-999"  # only acknowledged bytes count
    response = client.patch(upload, content=second, headers={"Content-Range": f"1000-{len(data) - 1}"})
    assert response.status_code == 202, response.text
    assert response.headers["range"] == f"0-{len(data) - 1}"
    digest = digest_of(data)
    assert_created(client.put(upload, params={"digest": digest}), repo, digest)
    assert_blob(client, repo, data)


def test_client_disconnects_mid_patch_then_finishes_with_put(client: httpx.Client, registry: Server, repo: str) -> None:
    data = os.urandom(2 * 1024 * 1024)
    upload = start_upload(client, repo)
    assert client.patch(upload, content=data[:4096]).status_code == 202
    raw_request(registry, patch_head(registry, upload, 1024 * 1024, f"4096-{4096 + 1024 * 1024 - 1}"), data[4096:8192])
    assert wait_for_access_log(registry, "PATCH", upload, count=2) == [202, 400]
    assert upload_range(client, upload) == "0-4095"
    digest = digest_of(data)
    assert_created(client.put(upload, params={"digest": digest}, content=data[4096:]), repo, digest)
    assert_blob(client, repo, data)


def test_client_disconnects_mid_monolithic_post(client: httpx.Client, registry: Server, repo: str) -> None:
    data = os.urandom(1024 * 1024)
    digest = digest_of(data)
    head = (
        f"POST /v2/{repo}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {registry.host}\r\n"
        f"Content-Length: {len(data)}\r\n"
    )
    raw_request(registry, head, data[:1000])
    assert wait_for_access_log(registry, "POST", f"/v2/{repo}/blobs/uploads/") == [400]
    assert_no_blob(client, repo, digest)
    assert_created(client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data), repo, digest)
    assert_blob(client, repo, data)


def hold_upload(client: httpx.Client, registry: Server, upload: str, data: bytes) -> socket.socket:
    """Start a PATCH of `data` that sends only its first KiB; return its socket once it holds the upload."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        sock = raw_request(
            registry, patch_head(registry, upload, len(data), f"0-{len(data) - 1}"), data[:1000], close=False
        )
        while time.monotonic() < deadline:
            # An empty PATCH changes nothing; while the slow request holds the upload, it is refused.
            probe = client.patch(upload, content=b"")
            if probe.status_code != 202:
                assert_error(probe, 416, "BLOB_UPLOAD_INVALID", "another request is writing", "one at a time")
                assert probe.headers["range"] == "0-0"
                return sock
            if select.select([sock], [], [], 0.02)[0]:
                # A probe held the upload just as the slow request came: that one was refused instead.
                assert read_response(sock)[0] == 416
                sock.close()
                break
    raise AssertionError("the slow request never got hold of the upload")


def test_concurrent_patches_to_one_upload(client: httpx.Client, registry: Server, repo: str) -> None:
    data = os.urandom(200_000)
    upload = start_upload(client, repo)
    sock = hold_upload(client, registry, upload, data)
    try:
        sock.sendall(data[1000:])
        status, headers = read_response(sock)
    finally:
        sock.close()
    assert status == 202
    assert headers["range"] == f"0-{len(data) - 1}"
    assert_created(client.put(upload, params={"digest": digest_of(data)}), repo, digest_of(data))
    assert_blob(client, repo, data)


def direct_write_started(registry: Server, upload: str, digest: str) -> bool:
    """Whether a request finishing `upload` with `digest` has begun writing its blob to the store
    (a file of its own beside the session's on disk; a multipart upload at the blob's key on S3)."""
    upload_id = upload.rsplit("/", 1)[1]
    url = registry.env.get("PORTSIDE_STORAGE_URL", "")
    if not url.startswith("s3://"):
        return any(path.name.startswith(f"{upload_id}.") for path in (registry.data_dir / "uploads").iterdir())
    import boto3  # the S3 passes only

    parsed = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parsed.query))
    client = boto3.client("s3", endpoint_url=query["endpoint"], region_name=query["region"])
    algorithm, hexdigest = digest.split(":")
    key = f"{parsed.path.strip('/')}/blobs/{algorithm}/{hexdigest[:2]}/{hexdigest}"
    return bool(client.list_multipart_uploads(Bucket=parsed.netloc, Prefix=key).get("Uploads"))


def test_two_puts_finishing_one_empty_session(client: httpx.Client, registry: Server, repo: str) -> None:
    # Neither holds the session's lease (a request bringing a whole blob to an empty session needs
    # none): the first to record its blob ends the session, and the other is told so.
    slow, fast = os.urandom(20 * 1024 * 1024), os.urandom(5000)
    upload = start_upload(client, repo)
    head = (
        f"PUT {upload}?digest={digest_of(slow)} HTTP/1.1\r\nHost: {registry.host}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(slow)}\r\n"
    )
    sock = raw_request(registry, head, slow[: 18 * 1024 * 1024], close=False)
    try:
        deadline = time.monotonic() + 30
        while not direct_write_started(registry, upload, digest_of(slow)):
            assert time.monotonic() < deadline, "the slow PUT never began writing its blob"
            time.sleep(0.05)
        assert_created(client.put(upload, params={"digest": digest_of(fast)}, content=fast), repo, digest_of(fast))
        sock.sendall(slow[18 * 1024 * 1024 :])
        status, headers, body = read_whole_response(sock)
        answer = httpx.Response(status, headers=headers, content=body)
    finally:
        sock.close()
    assert_error(answer, 416, "BLOB_UPLOAD_INVALID", "changed while this request was writing to it")
    assert_blob(client, repo, fast)
    assert_no_blob(client, repo, digest_of(slow))
    assert_error(client.get(upload), 404, "BLOB_UPLOAD_UNKNOWN")  # the fast PUT ended the session


# -- mounting ------------------------------------------------------------------------------------


def test_mount_from_another_repository(client: httpx.Client, repo: str) -> None:
    source = f"{repo}-source"
    data = b"mount me"
    digest = push_blob(client, source, data)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source})
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)
    # The two repositories now hold the blob independently.
    assert client.delete(f"/v2/{source}/blobs/{digest}").status_code == 202
    assert_blob(client, repo, data)


def test_mount_into_a_repository_that_exists(client: httpx.Client, repo: str) -> None:
    """The repository is there already (on PostgreSQL the whole mount is then one statement)."""
    push_blob(client, repo, b"the repository's first blob")
    source = f"{repo}-source"
    data = b"mounted next to it " + os.urandom(8)
    digest = push_blob(client, source, data)
    assert_created(client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source}), repo, digest)
    assert_blob(client, repo, data)
    assert client.delete(f"/v2/{source}/blobs/{digest}").status_code == 202
    assert_blob(client, repo, data)  # linked into repo, not read through the source


def test_mount_from_a_repository_without_the_blob_falls_back_to_an_upload(client: httpx.Client, repo: str) -> None:
    elsewhere = f"{repo}-has-it"
    empty_source = f"{repo}-lacks-it"
    data = b"not in the named source"
    digest = push_blob(client, elsewhere, data)
    push_blob(client, empty_source, b"something else")
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": empty_source})
    assert response.status_code == 202, response.text
    assert_no_blob(client, repo, digest)
    upload = location_path(response)
    assert upload.startswith(f"/v2/{repo}/blobs/uploads/")
    assert response.headers["range"] == "0-0"
    assert_created(client.put(upload, params={"digest": digest}, content=data), repo, digest)
    assert_blob(client, repo, data)


def test_mount_from_an_unknown_repository_falls_back_to_an_upload(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, f"{repo}-has-it", b"somewhere")
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": f"{repo}-nowhere"})
    assert response.status_code == 202, response.text
    assert_no_blob(client, repo, digest)


def test_mount_without_from_finds_the_blob_anywhere(client: httpx.Client, repo: str) -> None:
    data = b"found without a source " + os.urandom(8)
    digest = push_blob(client, f"{repo}-somewhere", data)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest})
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)


def test_mount_of_an_unknown_blob_falls_back_to_an_upload(client: httpx.Client, repo: str) -> None:
    digest = digest_of(b"nobody pushed this " + os.urandom(8))
    for params in ({"mount": digest}, {"mount": digest, "from": repo}):
        response = client.post(f"/v2/{repo}/blobs/uploads/", params=params)
        assert response.status_code == 202, response.text
        assert location_path(response).startswith(f"/v2/{repo}/blobs/uploads/")
        assert_no_blob(client, repo, digest)


def test_mount_of_a_malformed_digest(client: httpx.Client, repo: str) -> None:
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": "sha256:nope", "from": f"{repo}-x"})
    assert_error(response, 400, "DIGEST_INVALID", "sha256:nope")


def test_mount_into_the_same_repository(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"already here")
    assert_created(client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": repo}), repo, digest)
    assert_blob(client, repo, b"already here")
