"""Parsing pushed manifests: what is accepted, what it refers to, and why the rest is refused."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from portside.registry.errors import ManifestInvalid
from portside.registry.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_MESSAGE,
    parse_manifest,
)
from portside.registry.references import Digest

CONFIG = "sha256:" + "c" * 64
LAYER_A = "sha256:" + "a" * 64
LAYER_B = "sha256:" + "b" * 64
CHILD = "sha256:" + "d" * 64
SUBJECT = "sha256:" + "e" * 64
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def desc(media_type: str, digest: str, size: int = 10, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def image(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, CONFIG),
        "layers": [desc(OCI_LAYER, LAYER_A), desc(OCI_LAYER, LAYER_B)],
    }
    doc.update(changes)
    return {key: value for key, value in doc.items() if value is not None}


def index(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(OCI_MANIFEST, CHILD)]}
    doc.update(changes)
    return {key: value for key, value in doc.items() if value is not None}


def parse(doc: dict[str, Any] | bytes, content_type: str = OCI_MANIFEST, algorithm: str = "sha256") -> Any:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_manifest(payload, content_type, algorithm)


def refused(doc: dict[str, Any] | bytes, content_type: str = OCI_MANIFEST) -> str:
    with pytest.raises(ManifestInvalid) as caught:
        parse(doc, content_type)
    assert caught.value.code == "MANIFEST_INVALID"
    assert caught.value.status == 400
    return caught.value.message


def test_oci_image() -> None:
    payload = json.dumps(image()).encode()
    parsed = parse_manifest(payload, OCI_MANIFEST)
    assert parsed.media_type == OCI_MANIFEST
    assert parsed.payload == payload
    assert parsed.digest == Digest("sha256", hashlib.sha256(payload).hexdigest())
    assert parsed.blob_digests == [CONFIG, LAYER_A, LAYER_B]
    assert parsed.child_digests == []
    assert not parsed.is_index
    assert parsed.subject is None
    assert parsed.artifact_type == OCI_CONFIG  # an image without artifactType is known by its config
    assert parsed.annotations is None


def test_sha512_digest() -> None:
    payload = json.dumps(image()).encode()
    assert parse_manifest(payload, OCI_MANIFEST, "sha512").digest == Digest(
        "sha512", hashlib.sha512(payload).hexdigest()
    )


def test_docker_image() -> None:
    doc = image(mediaType=DOCKER_MANIFEST)
    assert parse(doc, DOCKER_MANIFEST).media_type == DOCKER_MANIFEST


def test_oci_index() -> None:
    parsed = parse(index(), OCI_INDEX)
    assert parsed.media_type == OCI_INDEX
    assert parsed.is_index
    assert parsed.child_digests == [CHILD]
    assert parsed.blob_digests == []
    assert parsed.artifact_type is None


def test_docker_manifest_list() -> None:
    doc = index(mediaType=DOCKER_LIST, manifests=[desc(DOCKER_MANIFEST, CHILD, platform={"os": "linux"})])
    parsed = parse(doc, DOCKER_LIST)
    assert parsed.media_type == DOCKER_LIST
    assert parsed.child_digests == [CHILD]


def test_empty_index() -> None:
    assert parse(index(manifests=[]), OCI_INDEX).child_digests == []


def test_artifact() -> None:
    doc = image(
        artifactType="application/vnd.example.sbom",
        config=desc("application/vnd.oci.empty.v1+json", CONFIG, 2),
        layers=[desc("text/plain", LAYER_A)],
        annotations={"a": "b"},
        subject=desc(OCI_MANIFEST, SUBJECT),
    )
    parsed = parse(doc)
    assert parsed.artifact_type == "application/vnd.example.sbom"
    assert parsed.blob_digests == [CONFIG, LAYER_A]
    assert parsed.subject == SUBJECT
    assert parsed.annotations == {"a": "b"}


def test_index_artifact_type_and_subject() -> None:
    parsed = parse(index(artifactType="application/vnd.example.bundle", subject=desc(OCI_MANIFEST, SUBJECT)), OCI_INDEX)
    assert parsed.artifact_type == "application/vnd.example.bundle"
    assert parsed.subject == SUBJECT


def test_empty_artifact_type_falls_back_to_the_config() -> None:
    assert parse(image(artifactType="")).artifact_type == OCI_CONFIG
    assert parse(index(artifactType=""), OCI_INDEX).artifact_type is None


def test_foreign_layers_are_not_required() -> None:
    doc = image(
        mediaType=DOCKER_MANIFEST, layers=[desc(FOREIGN, LAYER_A, urls=["https://x"]), desc(OCI_LAYER, LAYER_B)]
    )
    assert parse(doc, DOCKER_MANIFEST).blob_digests == [CONFIG, LAYER_B]


def test_same_blob_twice_is_listed_twice() -> None:
    assert parse(image(layers=[desc(OCI_LAYER, LAYER_A), desc(OCI_LAYER, LAYER_A)])).blob_digests == [
        CONFIG,
        LAYER_A,
        LAYER_A,
    ]


@pytest.mark.parametrize(
    ("doc", "content_type", "expected"),
    [
        (image(), "", OCI_MANIFEST),
        (image(), "application/json", OCI_MANIFEST),
        (image(), "application/octet-stream", OCI_MANIFEST),
        (image(mediaType=None), "", OCI_MANIFEST),
        (image(mediaType=None), OCI_MANIFEST, OCI_MANIFEST),
        (image(mediaType=DOCKER_MANIFEST), "application/json", DOCKER_MANIFEST),
        (index(mediaType=None), "", OCI_INDEX),
        (index(mediaType=None), OCI_INDEX, OCI_INDEX),
        (index(mediaType=DOCKER_LIST), "", DOCKER_LIST),
        (image(), f"{OCI_MANIFEST}; charset=utf-8", OCI_MANIFEST),
        (image(), OCI_MANIFEST.upper(), OCI_MANIFEST),
    ],
)
def test_media_type_from_header_or_body(doc: dict[str, Any], content_type: str, expected: str) -> None:
    assert parse(doc, content_type).media_type == expected


def test_payload_is_kept_byte_for_byte() -> None:
    payload = (
        b'  {"layers":[],"config":{"size":2,"digest":"'
        + CONFIG.encode()
        + b'","mediaType":"x/y"},\n"schemaVersion":2}\n'
    )
    parsed = parse_manifest(payload, "")
    assert parsed.payload == payload
    assert parsed.digest == Digest.of(payload)


@pytest.mark.parametrize(
    ("doc", "content_type", "mention"),
    [
        (b"", OCI_MANIFEST, "not valid JSON"),
        (b"{", OCI_MANIFEST, "not valid JSON"),
        (b"\xff", OCI_MANIFEST, "not valid JSON"),
        (b"[" * 200_000 + b"]" * 200_000, OCI_MANIFEST, "nested too deeply"),
        (b"null", OCI_MANIFEST, "JSON object"),
        (b'"text"', OCI_MANIFEST, "JSON object"),
        (image(schemaVersion=None), OCI_MANIFEST, "schemaVersion must be 2, got None"),
        (image(schemaVersion="2"), OCI_MANIFEST, "schemaVersion must be 2, got '2'"),
        (image(schemaVersion=3), OCI_MANIFEST, "schemaVersion must be 2, got 3"),
        (image(mediaType=["x"]), OCI_MANIFEST, "mediaType must be a string"),
        (image(), DOCKER_MANIFEST, f"Content-Type {DOCKER_MANIFEST} does not match the manifest's mediaType"),
        (image(mediaType=OCI_INDEX), OCI_MANIFEST, "does not match"),
        (image(), "text/plain", "unsupported manifest media type 'text/plain'"),
        (image(mediaType="application/vnd.example+json"), "", "unsupported manifest media type"),
        ({"schemaVersion": 2}, "", "neither an image manifest nor an index"),
        (image(config=None), OCI_MANIFEST, "config must be a descriptor object"),
        (image(config="sha256:abc"), OCI_MANIFEST, "config must be a descriptor object"),
        (image(config={"digest": CONFIG, "size": 1}), OCI_MANIFEST, "config has no mediaType"),
        (image(config={"mediaType": "", "digest": CONFIG, "size": 1}), OCI_MANIFEST, "config has no mediaType"),
        (image(config={"mediaType": OCI_CONFIG, "size": 1}), OCI_MANIFEST, "config has no digest"),
        (image(config=desc(OCI_CONFIG, "sha256:abc")), OCI_MANIFEST, "config: invalid sha256 digest"),
        (image(config=desc(OCI_CONFIG, "md5:" + "0" * 32)), OCI_MANIFEST, "config: unsupported digest algorithm"),
        (image(config=desc(OCI_CONFIG, CONFIG, -1)), OCI_MANIFEST, "config size must be a non-negative integer"),
        (image(config=desc(OCI_CONFIG, CONFIG, 1.5)), OCI_MANIFEST, "config size must be a non-negative integer"),
        (image(config=desc(OCI_CONFIG, CONFIG, True)), OCI_MANIFEST, "config size must be a non-negative integer"),
        (image(config={"mediaType": OCI_CONFIG, "digest": CONFIG}), OCI_MANIFEST, "config size"),
        (image(config=desc("x/" + "y" * 254, CONFIG)), OCI_MANIFEST, "config mediaType is 256 characters long"),
        (image(layers=None), OCI_MANIFEST, "image manifest must have a layers array"),
        (image(layers=desc(OCI_LAYER, LAYER_A)), OCI_MANIFEST, "layers array"),
        (image(layers=[desc(OCI_LAYER, LAYER_A), 5]), OCI_MANIFEST, "layers[1] must be a descriptor object"),
        (image(layers=[desc(OCI_LAYER, "sha256:ABC")]), OCI_MANIFEST, "layers[0]: invalid sha256 digest"),
        (image(artifactType=1), OCI_MANIFEST, "artifactType must be a string"),
        (image(artifactType="a/" + "b" * 300), OCI_MANIFEST, "artifactType is 302 characters long"),
        (image(annotations=["a"]), OCI_MANIFEST, "annotations must be an object of strings"),
        (image(annotations={"a": 1}), OCI_MANIFEST, "annotations must be an object of strings"),
        (image(annotations={"a": None}), OCI_MANIFEST, "annotations must be an object of strings"),
        (image(subject=SUBJECT), OCI_MANIFEST, "subject must be a descriptor object"),
        (image(subject={"mediaType": OCI_MANIFEST, "digest": SUBJECT}), OCI_MANIFEST, "subject size"),
        (index(manifests=None), OCI_INDEX, "index must have a manifests array"),
        (index(manifests={}), OCI_INDEX, "index must have a manifests array"),
        (index(manifests=[{"mediaType": OCI_MANIFEST, "size": 1}]), OCI_INDEX, "manifests[0] has no digest"),
        (index(artifactType=["x"]), OCI_INDEX, "artifactType must be a string"),
    ],
)
def test_refused_with_a_reason(doc: dict[str, Any] | bytes, content_type: str, mention: str) -> None:
    assert mention in refused(doc, content_type)


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        ({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}, ""),
        ({"schemaVersion": 1}, OCI_MANIFEST),
        (image(), "application/vnd.docker.distribution.manifest.v1+json"),
        (image(), "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        (b"not even json", "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        (image(mediaType="application/vnd.docker.distribution.manifest.v1+json"), ""),
    ],
)
def test_schema1_is_refused_with_a_clear_message(doc: dict[str, Any] | bytes, content_type: str) -> None:
    message = refused(doc, content_type)
    assert message == SCHEMA1_MESSAGE
    assert "schema 1 is not supported" in message
    assert "schema 2 or OCI" in message
