"""Small helpers to push content over plain HTTP in tests."""

from __future__ import annotations

import hashlib
import json

import httpx


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    digest = digest_of(data)
    response = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
    assert response.status_code == 201, response.text
    return digest


def image_manifest(
    config: bytes, layers: list[bytes], media_type: str = "application/vnd.oci.image.manifest.v1+json", **extra: object
) -> bytes:
    oci = media_type.startswith("application/vnd.oci")
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json"
            if oci
            else "application/vnd.docker.container.image.v1+json",
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"
                if oci
                else "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": digest_of(layer),
                "size": len(layer),
            }
            for layer in layers
        ],
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def push_image(
    client: httpx.Client,
    name: str,
    tag: str,
    *,
    seed: str = "x",
    media_type: str = "application/vnd.oci.image.manifest.v1+json",
    **extra: object,
) -> tuple[str, bytes]:
    """Push a config, one layer and a manifest; return the manifest's digest and bytes."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer-{seed}".encode()
    push_blob(client, name, config)
    push_blob(client, name, layer)
    manifest = image_manifest(config, [layer], media_type, **extra)
    response = client.put(f"/v2/{name}/manifests/{tag}", content=manifest, headers={"Content-Type": media_type})
    assert response.status_code == 201, response.text
    return digest_of(manifest), manifest
