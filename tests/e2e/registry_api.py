"""Checking, over plain HTTP, what a client left in the registry."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import httpx

from tests.support.server import Server

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
ACCEPT = {"Accept": ", ".join(MANIFEST_TYPES)}


def _auth(server: Server) -> httpx.Client:
    """A signed-in client: the registry's answers are checked as its site admin sees them."""
    return server.client()


def head_digest(server: Server, repo: str, reference: str) -> str:
    """The registry's Docker-Content-Digest for a tag or digest, as docker pull asks for it."""
    response = _auth(server).head(f"/v2/{repo}/manifests/{reference}", headers=ACCEPT)
    assert response.status_code == 200, f"HEAD {repo}:{reference} -> {response.status_code}"
    return response.headers["docker-content-digest"]


def get_manifest(server: Server, repo: str, reference: str) -> httpx.Response:
    response = _auth(server).get(f"/v2/{repo}/manifests/{reference}", headers=ACCEPT)
    assert response.status_code == 200, f"GET {repo}:{reference} -> {response.status_code} {response.text}"
    return response


def get_blob(server: Server, repo: str, digest: str) -> bytes:
    response = _auth(server).get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True)
    assert response.status_code == 200, f"GET blob {repo}@{digest} -> {response.status_code}"
    return response.content


def tags(server: Server, repo: str) -> list[str]:
    response = _auth(server).get(f"/v2/{repo}/tags/list")
    assert response.status_code == 200, response.text
    return list(response.json()["tags"] or [])


def layer_files(server: Server, repo: str, reference: str) -> dict[str, bytes]:
    """Every regular file in the image's layers (later layers win), read from the registry."""
    manifest = json.loads(get_manifest(server, repo, reference).content)
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        data = get_blob(server, repo, layer["digest"])
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    files[member.name.removeprefix("./")] = extracted.read()
    return files
