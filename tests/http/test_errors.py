"""The base endpoint, the headers every answer carries, unknown paths and methods, and invalid names."""

from __future__ import annotations

import httpx
import pytest

from tests.http.helpers import UNKNOWN_DIGEST, assert_error, start_upload
from tests.support.blobs import push_blob, push_image

V2_ENDPOINTS = [
    ("GET", "/manifests/latest"),
    ("HEAD", "/manifests/latest"),
    ("PUT", "/manifests/latest"),
    ("DELETE", "/manifests/latest"),
    ("GET", f"/blobs/{UNKNOWN_DIGEST}"),
    ("HEAD", f"/blobs/{UNKNOWN_DIGEST}"),
    ("DELETE", f"/blobs/{UNKNOWN_DIGEST}"),
    ("POST", "/blobs/uploads/"),
    ("GET", "/blobs/uploads/3f1c5e0a-0000-4000-8000-000000000000"),
    ("PATCH", "/blobs/uploads/3f1c5e0a-0000-4000-8000-000000000000"),
    ("PUT", "/blobs/uploads/3f1c5e0a-0000-4000-8000-000000000000"),
    ("DELETE", "/blobs/uploads/3f1c5e0a-0000-4000-8000-000000000000"),
    ("GET", "/tags/list"),
    ("GET", f"/referrers/{UNKNOWN_DIGEST}"),
]


def test_base_endpoint(client: httpx.Client) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.json() == {}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    head = client.head("/v2/")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["docker-distribution-api-version"] == "registry/2.0"


def test_base_endpoint_without_the_slash(client: httpx.Client) -> None:
    response = client.get("/v2", follow_redirects=True)
    assert response.status_code == 200
    assert response.json() == {}
    assert all(r.headers["docker-distribution-api-version"] == "registry/2.0" for r in response.history)


def test_every_answer_carries_the_api_version(client: httpx.Client, repo: str) -> None:
    """Successes, client errors and unknown paths alike (clients use it to recognise a registry)."""
    digest, _ = push_image(client, repo, "v1")
    upload = start_upload(client, repo)
    responses = [
        client.get("/v2/"),
        client.get("/healthz"),
        client.get("/v2/_catalog"),
        client.get(f"/v2/{repo}/tags/list"),
        client.get(f"/v2/{repo}/manifests/v1"),
        client.head(f"/v2/{repo}/manifests/{digest}"),
        client.get(f"/v2/{repo}/referrers/{digest}"),
        client.get(upload),
        client.patch(upload, content=b"x"),
        client.delete(upload),
        client.get(f"/v2/{repo}/manifests/nope"),
        client.get(f"/v2/{repo}/blobs/{UNKNOWN_DIGEST}", headers={"Range": "bytes=0-1"}),
        client.get("/v2/NOT/valid/tags/list"),
        client.get("/v2/nothing/here"),
        client.get("/not/the/api"),
        client.post("/v2/"),
        client.put(f"/v2/{repo}/manifests/v2", content=b"{", headers={"Content-Type": "application/json"}),
    ]
    for response in responses:
        request = response.request
        assert response.headers.get("docker-distribution-api-version") == "registry/2.0", (
            f"{request.method} {request.url.path} answered {response.status_code} without the header"
        )


@pytest.mark.parametrize(
    "path",
    [
        "/v2/nothing/here",
        "/v2/octo/hello/manifest/latest",  # singular
        "/v2/octo/hello/blob/sha256:" + "0" * 64,
        "/v2/octo/hello/tags",
        "/v2/octo/hello/referrers",
        "/v2/_catalog/more",
        "/v1/",  # (/ itself is the home page)
        "/robots.txt",  # (/favicon.ico is the icon)
    ],
)
def test_unknown_paths(client: httpx.Client, path: str) -> None:
    for method in ("GET", "PUT"):
        response = client.request(method, path)
        assert_error(response, 404, "UNSUPPORTED", "no such endpoint", method, path)
    head = client.head(path)
    assert head.status_code == 404
    assert head.headers["docker-distribution-api-version"] == "registry/2.0"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/v2/", {"GET", "HEAD"}),
        ("DELETE", "/v2/_catalog", {"GET", "HEAD"}),
        ("PATCH", "/v2/octo/hello/manifests/latest", {"GET", "HEAD", "PUT", "DELETE"}),
        ("POST", "/v2/octo/hello/manifests/latest", {"GET", "HEAD", "PUT", "DELETE"}),
        ("PUT", f"/v2/octo/hello/blobs/{UNKNOWN_DIGEST}", {"GET", "HEAD", "DELETE"}),
        ("PUT", "/v2/octo/hello/tags/list", {"GET", "HEAD"}),
        ("DELETE", f"/v2/octo/hello/referrers/{UNKNOWN_DIGEST}", {"GET", "HEAD"}),
    ],
)
def test_unsupported_methods(client: httpx.Client, method: str, path: str, allowed: set[str]) -> None:
    response = client.request(method, path)
    assert_error(response, 405, "UNSUPPORTED", method, "is not supported")
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


INVALID_NAMES = [
    pytest.param("Octo/hello", ("'Octo'", "lowercase"), id="uppercase"),
    pytest.param("octo/Hello/x", ("'Hello'", "lowercase"), id="uppercase-inner"),
    pytest.param("octo/he!lo", ("'he!lo'", "[a-z0-9]+"), id="bang"),
    pytest.param("octo/he%20llo", ("'he llo'",), id="space"),
    pytest.param("octo/-hello", ("'-hello'",), id="leading-dash"),
    pytest.param("octo/hello-", ("'hello-'",), id="trailing-dash"),
    pytest.param("octo/a..b", ("'a..b'",), id="double-dot"),
    pytest.param("octo/a___b", ("'a___b'",), id="triple-underscore"),
    pytest.param("octo/.hidden", ("'.hidden'",), id="leading-dot"),
    pytest.param("octo/hellø", ("'hellø'",), id="non-ascii"),
    pytest.param("a" * 256, ("256 characters", "255"), id="too-long"),
    pytest.param("octo/" + "b" * 251, ("256 characters", "255"), id="too-long-nested"),
]


@pytest.mark.parametrize(("name", "mentions"), INVALID_NAMES)
@pytest.mark.parametrize(("method", "suffix"), V2_ENDPOINTS)
def test_invalid_name(client: httpx.Client, name: str, mentions: tuple[str, ...], method: str, suffix: str) -> None:
    response = client.request(method, f"/v2/{name}{suffix}")
    if method == "HEAD":
        assert response.status_code == 400
        assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    else:
        assert_error(response, 400, "NAME_INVALID", *mentions)


def test_empty_name_component(client: httpx.Client) -> None:
    for name in ("octo//hello", "octo/hello/", "/octo"):
        response = client.get(f"/v2/{name}/tags/list")
        assert_error(response, 400, "NAME_INVALID", "empty path component")


def test_longest_valid_name(client: httpx.Client) -> None:
    name = "t/" + "l" * 118 + "/" + "o" * 134
    assert len(name) == 255
    push_blob(client, name, b"long name")
    assert client.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": []}


@pytest.mark.parametrize("path", ["/v2/_catalog", "/v2/octo/hello/tags/list"])
@pytest.mark.parametrize("n", ["abc", "-1", "1.5", "", "0x10", "²"])
def test_invalid_page_size(client: httpx.Client, path: str, n: str) -> None:
    assert_error(client.get(path, params={"n": n}), 400, "UNSUPPORTED", repr(n), "non-negative integer")
