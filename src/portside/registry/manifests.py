"""Parsing and validating pushed manifests: OCI and Docker schema 2 images, indexes and artifacts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from portside.metadata.schema import MEDIA_TYPE_LENGTH
from portside.registry.errors import DigestInvalid, ManifestInvalid
from portside.registry.references import Digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = IMAGE_TYPES + INDEX_TYPES
CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")
GENERIC_TYPES = ("", "application/json", "application/octet-stream")

# Layers that live outside the registry (Windows base layers and the like) need not be pushed.
FOREIGN_LAYER_TYPES = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)

SCHEMA1_MESSAGE = (
    "Docker image manifest schema 1 is not supported (it was deprecated in 2017); "
    "push with a current client, which sends schema 2 or OCI manifests"
)


@dataclass(slots=True)
class ParsedManifest:
    media_type: str
    digest: Digest
    payload: bytes
    blob_digests: list[str] = field(default_factory=list)
    child_digests: list[str] = field(default_factory=list)
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    config_digest: str | None = None  # an image's config blob, where its labels and platform are

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def parse_manifest(payload: bytes, content_type: str, algorithm: str = "sha256") -> ParsedManifest:
    header_type = content_type.split(";", 1)[0].strip().lower()
    if header_type in SCHEMA1:
        raise ManifestInvalid(SCHEMA1_MESSAGE)
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from None
    except RecursionError:
        raise ManifestInvalid("manifest is not valid JSON: it is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    if doc.get("schemaVersion") == 1:
        raise ManifestInvalid(SCHEMA1_MESSAGE)
    if doc.get("schemaVersion") != 2:
        raise ManifestInvalid(f"manifest schemaVersion must be 2, got {doc.get('schemaVersion')!r}")

    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestInvalid("manifest mediaType must be a string")
    media_type = _media_type(header_type, body_type, doc)

    parsed = ParsedManifest(media_type=media_type, digest=Digest.of(payload, algorithm), payload=payload)
    if media_type in INDEX_TYPES:
        _parse_index(doc, parsed)
    else:
        _parse_image(doc, parsed)
    subject = doc.get("subject")
    if subject is not None:
        parsed.subject = _descriptor(subject, "subject")["digest"]
    annotations = doc.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ManifestInvalid("manifest annotations must be an object of strings")
        parsed.annotations = annotations
    return parsed


def _media_type(header_type: str, body_type: str | None, doc: dict[str, Any]) -> str:
    if header_type in MANIFEST_TYPES:
        if body_type is not None and body_type != header_type:
            raise ManifestInvalid(f"Content-Type {header_type} does not match the manifest's mediaType {body_type}")
        return header_type
    if header_type not in GENERIC_TYPES:
        raise ManifestInvalid(
            f"unsupported manifest media type {header_type!r}; supported: {', '.join(MANIFEST_TYPES)}"
        )
    if body_type in SCHEMA1:
        raise ManifestInvalid(SCHEMA1_MESSAGE)
    if body_type in MANIFEST_TYPES:
        return body_type
    if body_type is not None:
        raise ManifestInvalid(f"unsupported manifest media type {body_type!r}")
    # OCI makes mediaType optional; tell an index from an image by its shape.
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc:
        return OCI_MANIFEST
    raise ManifestInvalid("manifest has no mediaType and is neither an image manifest nor an index")


def _descriptor(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where} has no mediaType")
    _check_media_type_length(media_type, f"{where} mediaType")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where} has no digest")
    try:
        Digest.parse(digest)
    except DigestInvalid as exc:
        raise ManifestInvalid(f"{where}: {exc.message}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where} size must be a non-negative integer")
    return value


def _parse_image(doc: dict[str, Any], parsed: ParsedManifest) -> None:
    config = _descriptor(doc.get("config"), "config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestInvalid("image manifest must have a layers array")
    parsed.blob_digests.append(config["digest"])
    if config["mediaType"] in CONFIG_TYPES:
        parsed.config_digest = config["digest"]
    for i, layer in enumerate(layers):
        layer = _descriptor(layer, f"layers[{i}]")
        if layer["mediaType"] not in FOREIGN_LAYER_TYPES:
            parsed.blob_digests.append(layer["digest"])
    # The referrers API reports the config's media type when an image has no artifactType.
    parsed.artifact_type = _artifact_type(doc) or config["mediaType"]


def _parse_index(doc: dict[str, Any], parsed: ParsedManifest) -> None:
    children = doc.get("manifests")
    if not isinstance(children, list):
        raise ManifestInvalid("index must have a manifests array")
    for i, child in enumerate(children):
        parsed.child_digests.append(_descriptor(child, f"manifests[{i}]")["digest"])
    parsed.artifact_type = _artifact_type(doc)


def _artifact_type(doc: dict[str, Any]) -> str | None:
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    if artifact_type:
        _check_media_type_length(artifact_type, "artifactType")
    return artifact_type or None


def _check_media_type_length(media_type: str, where: str) -> None:
    if len(media_type) > MEDIA_TYPE_LENGTH:
        raise ManifestInvalid(
            f"{where} is {len(media_type)} characters long; a media type has at most {MEDIA_TYPE_LENGTH}"
        )
