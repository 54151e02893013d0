"""Helpers shared by the HTTP tests: error assertions, uploads, manifests and raw sockets."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from typing import Any

import httpx

from tests.support.blobs import digest_of, push_blob
from tests.support.server import Server, no_server_error

API_VERSION = "registry/2.0"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_JSON = b"{}"
UNKNOWN_DIGEST = "sha256:" + "0" * 64


def make_client(server: Server) -> httpx.Client:
    """A client for `server` that fails on any 5xx answer: no request in these tests may produce one."""
    return server.client(event_hooks={"response": [no_server_error]})


def sha512_of(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def assert_error(response: httpx.Response, status: int, code: str, *mentions: str) -> dict[str, Any]:
    """The response is the spec's JSON error with `code`, and its message names every one of `mentions`."""
    assert response.status_code == status, response.text
    assert response.headers["docker-distribution-api-version"] == API_VERSION
    assert response.headers["content-type"].startswith("application/json")
    errors = response.json()["errors"]
    assert len(errors) == 1
    error = errors[0]
    assert error["code"] == code, error
    assert error["message"], error
    for mention in mentions:
        assert mention in error["message"], error
    return error


def location_path(response: httpx.Response) -> str:
    """The path of a Location header (absolute in responses; the client already knows the base URL)."""
    return httpx.URL(response.headers["location"]).path


def start_upload(client: httpx.Client, name: str) -> str:
    """POST a new upload session and return its path."""
    response = client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return location_path(response)


def upload_range(client: httpx.Client, upload: str) -> str:
    """The Range the registry reports for an upload in progress (`0-<last byte received>`)."""
    response = client.get(upload)
    assert response.status_code == 204, response.text
    assert response.headers["docker-upload-uuid"] == upload.rsplit("/", 1)[-1]
    return response.headers["range"]


def push_manifest(
    client: httpx.Client, name: str, reference: str, manifest: bytes, media_type: str = OCI_MANIFEST
) -> httpx.Response:
    response = client.put(f"/v2/{name}/manifests/{reference}", content=manifest, headers={"Content-Type": media_type})
    assert response.status_code == 201, response.text
    return response


def oci_image(name: str, client: httpx.Client, seed: str, **extra: object) -> bytes:
    """Push a config and a layer for an OCI image manifest, and return the manifest (not pushed)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer {seed}".encode()
    push_blob(client, name, config)
    push_blob(client, name, layer)
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer)],
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def descriptor(media_type: str, blob: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest_of(blob), "size": len(blob), **extra}


def raw_request(server: Server, head: str, body: bytes = b"", *, close: bool = True) -> socket.socket:
    """Send a request over a plain socket, exactly as given (for requests httpx refuses to make)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    request_line, _, rest = head.partition("\r\n")
    head = f"{request_line}\r\nAuthorization: {server.basic_auth}\r\n{rest}"
    sock.sendall(head.encode() + b"\r\n" + body)
    if close:
        sock.close()
    return sock


def wait_for_access_log(server: Server, method: str, path: str, *, count: int = 1) -> list[int]:
    """Wait until the server has logged `count` answers to `method path`; return their statuses.

    A request whose client hung up has no answer to read: its access log line (text format, the
    default) is how a test learns that the server has finished with it.
    """
    pattern = re.compile(rf'"{re.escape(method)} {re.escape(path)}" (\d{{3}}) ')
    deadline = time.monotonic() + 15
    while len(statuses := [int(m[1]) for m in pattern.finditer(server.log_path.read_text())]) < count:
        assert time.monotonic() < deadline, f"the server never logged {count} answer(s) to {method} {path}"
        time.sleep(0.02)
    return statuses


def server_log(server: Server) -> str:
    return server.log_path.read_text()
