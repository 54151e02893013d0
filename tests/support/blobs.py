"""Small helpers to push content over plain HTTP in tests."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Pushed:
    digest: str
    manifest: bytes
    media_type: str = "application/vnd.oci.image.manifest.v1+json"


def put_manifest(client: httpx.Client, name: str, reference: str, pushed: Pushed) -> None:
    response = client.put(
        f"/v2/{name}/manifests/{reference}", content=pushed.manifest, headers={"Content-Type": pushed.media_type}
    )
    assert response.status_code == 201, response.text


def push_labelled_image(
    client: httpx.Client,
    name: str,
    reference: str | None,
    *,
    seed: str,
    labels: dict[str, str] | None = None,
    architecture: str = "amd64",
    variant: str | None = None,
) -> Pushed:
    """An image whose config carries `labels` (config.Labels) and a platform, pushed as `reference`
    (a tag; None: by its digest)."""
    config_doc: dict[str, object] = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Labels": labels} if labels else {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "seed": seed,
    }
    if variant:
        config_doc["variant"] = variant
    config = json.dumps(config_doc, sort_keys=True).encode()
    layer = f"layer {name} {seed}".encode()
    push_blob(client, name, config)
    push_blob(client, name, layer)
    manifest = image_manifest(config, [layer])
    pushed = Pushed(digest_of(manifest), manifest)
    put_manifest(client, name, reference or pushed.digest, pushed)
    return pushed


def push_platform_index(
    client: httpx.Client,
    name: str,
    tag: str,
    children: list[tuple[Pushed, str]],
    annotations: dict[str, str] | None = None,
) -> Pushed:
    """An OCI index of (image, architecture) pairs, pushed as `tag`."""
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": child.media_type,
                "digest": child.digest,
                "size": len(child.manifest),
                "platform": {"os": "linux", "architecture": arch},
            }
            for child, arch in children
        ],
    }
    if annotations:
        doc["annotations"] = annotations
    payload = json.dumps(doc).encode()
    pushed = Pushed(digest_of(payload), payload, "application/vnd.oci.image.index.v1+json")
    put_manifest(client, name, tag, pushed)
    return pushed
