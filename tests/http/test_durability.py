"""Restarts and crashes: acknowledged data survives, unfinished uploads resume."""

from __future__ import annotations

import os
import time

import httpx

from tests.support.blobs import digest_of, push_image
from tests.support.server import Server


def test_chunked_upload_resumes_after_restart(fresh_registry: Server) -> None:
    first, second = os.urandom(3 * 1024 * 1024 + 17), os.urandom(1024 * 1024 + 5)
    with fresh_registry.client() as client:
        location = client.post("/v2/octo/resume/blobs/uploads/").headers["location"]
        patched = client.patch(location, content=first, headers={"Content-Range": f"0-{len(first) - 1}"})
        assert patched.status_code == 202
        location = patched.headers["location"]

    fresh_registry.stop()
    fresh_registry.start()

    with fresh_registry.client() as client:
        status = client.get(location)
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{len(first) - 1}"
        end = len(first) + len(second) - 1
        patched = client.patch(location, content=second, headers={"Content-Range": f"{len(first)}-{end}"})
        assert patched.status_code == 202, patched.text
        digest = digest_of(first + second)
        done = client.put(patched.headers["location"], params={"digest": digest})
        assert done.status_code == 201, done.text
        assert client.get(f"/v2/octo/resume/blobs/{digest}").content == first + second


def test_kill_9_right_after_201_loses_nothing(fresh_registry: Server) -> None:
    with fresh_registry.client() as client:
        digest, manifest = push_image(client, "octo/crash", "v1", seed="crash")
        fresh_registry.kill()  # the instant after the manifest's 201

    fresh_registry.start()
    with fresh_registry.client() as client:
        response = client.get("/v2/octo/crash/manifests/v1")
        assert response.status_code == 200
        assert response.content == manifest
        assert response.headers["docker-content-digest"] == digest
        for layer in httpx.Response(200, content=manifest).json()["layers"]:
            blob = client.get(f"/v2/octo/crash/blobs/{layer['digest']}")
            assert blob.status_code == 200
            assert digest_of(blob.content) == layer["digest"]


def test_abandoned_uploads_expire_and_their_bytes_are_reclaimed(fresh_registry: Server) -> None:
    fresh_registry.stop()
    fresh_registry.env["PORTSIDE_UPLOAD_TTL_SECONDS"] = "2"
    fresh_registry.start()
    with fresh_registry.client() as client:
        location = client.post("/v2/octo/expire/blobs/uploads/").headers["location"]
        assert client.patch(location, content=b"x" * 1000).status_code == 202
        upload_id = location.rsplit("/", 1)[1]
        assert fresh_registry.upload_bytes_exist(upload_id)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and fresh_registry.upload_bytes_exist(upload_id):
            time.sleep(0.5)
        assert not fresh_registry.upload_bytes_exist(upload_id)
        status = client.get(location)
        assert status.status_code == 404
        assert status.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
