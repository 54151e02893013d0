from __future__ import annotations

import httpx

from tests.support.blobs import push_image


def test_push_then_pull_by_tag_and_digest(client: httpx.Client) -> None:
    digest, manifest = push_image(client, "octo/smoke", "v1")
    by_tag = client.get("/v2/octo/smoke/manifests/v1")
    assert by_tag.status_code == 200
    assert by_tag.content == manifest
    assert by_tag.headers["docker-content-digest"] == digest
    assert client.get(f"/v2/octo/smoke/manifests/{digest}").content == manifest
    assert client.get("/v2/octo/smoke/tags/list").json() == {"name": "octo/smoke", "tags": ["v1"]}
