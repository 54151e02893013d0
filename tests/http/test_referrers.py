"""The referrers API: GET /v2/<name>/referrers/<digest>[?artifactType=...], and the OCI-Subject header."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import pytest

from tests.http.helpers import (
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    UNKNOWN_DIGEST,
    assert_error,
    descriptor,
    oci_image,
    push_manifest,
)
from tests.support.blobs import digest_of, push_blob

SBOM = "application/vnd.example.sbom.v1"
SIGNATURE_CONFIG = "application/vnd.example.signature.config.v1+json"
BUNDLE = "application/vnd.example.bundle.v1"


@dataclass
class Referred:
    name: str
    subject: str
    sbom: bytes
    signature: bytes
    bundle: bytes
    plain_index: bytes


def referrer(subject: bytes | str, **fields: object) -> bytes:
    subject_descriptor = (
        descriptor(OCI_MANIFEST, subject)
        if isinstance(subject, bytes)
        else {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1234}
    )
    doc: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, **fields, "subject": subject_descriptor}
    return json.dumps(doc).encode()


def push_referrer(client: httpx.Client, name: str, manifest: bytes, media_type: str = OCI_MANIFEST) -> None:
    response = push_manifest(client, name, digest_of(manifest), manifest, media_type)
    assert response.headers["oci-subject"] == json.loads(manifest)["subject"]["digest"]


def referrers(client: httpx.Client, name: str, digest: str, **params: str) -> httpx.Response:
    response = client.get(f"/v2/{name}/referrers/{digest}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == OCI_INDEX
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return response


def by_digest(response: httpx.Response) -> dict[str, dict[str, object]]:
    manifests = response.json()["manifests"]
    found = {entry["digest"]: entry for entry in manifests}
    assert len(found) == len(manifests), "duplicate referrers"
    return found


@pytest.fixture
def referred(client: httpx.Client, repo: str) -> Referred:
    image = oci_image(repo, client, "subject")
    push_manifest(client, repo, "v1", image)
    push_blob(client, repo, EMPTY_JSON)
    signature_config = b'{"signer":"someone"}'
    push_blob(client, repo, signature_config)
    sbom_layer = b'{"packages":[]}'
    push_blob(client, repo, sbom_layer)

    sbom = referrer(
        image,
        artifactType=SBOM,
        config=descriptor(OCI_EMPTY, EMPTY_JSON),
        layers=[descriptor("application/spdx+json", sbom_layer)],
        annotations={"org.example.kind": "sbom", "org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    signature = referrer(  # no artifactType: the config's media type stands in for it
        image,
        config=descriptor(SIGNATURE_CONFIG, signature_config),
        layers=[],
        annotations={"org.example.kind": "signature"},
    )
    bundle = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": BUNDLE,
            "manifests": [],
            "subject": descriptor(OCI_MANIFEST, image),
        }
    ).encode()
    plain_index = json.dumps(  # an index without artifactType: its descriptor has none either
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "subject": descriptor(OCI_MANIFEST, image)}
    ).encode()
    push_referrer(client, repo, sbom)
    push_referrer(client, repo, signature)
    push_referrer(client, repo, bundle, OCI_INDEX)
    push_referrer(client, repo, plain_index, OCI_INDEX)
    # Neither of these refers to the image.
    push_manifest(client, repo, "unrelated", oci_image(repo, client, "unrelated"))
    push_referrer(
        client, repo, referrer(UNKNOWN_DIGEST, artifactType=SBOM, config=descriptor(OCI_EMPTY, EMPTY_JSON), layers=[])
    )
    return Referred(repo, digest_of(image), sbom, signature, bundle, plain_index)


def test_referrers_lists_every_referrer_with_its_descriptor(client: httpx.Client, referred: Referred) -> None:
    response = referrers(client, referred.name, referred.subject)
    assert "oci-filters-applied" not in response.headers
    assert by_digest(response) == {
        digest_of(referred.sbom): {
            "mediaType": OCI_MANIFEST,
            "digest": digest_of(referred.sbom),
            "size": len(referred.sbom),
            "artifactType": SBOM,
            "annotations": {"org.example.kind": "sbom", "org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        },
        digest_of(referred.signature): {
            "mediaType": OCI_MANIFEST,
            "digest": digest_of(referred.signature),
            "size": len(referred.signature),
            "artifactType": SIGNATURE_CONFIG,
            "annotations": {"org.example.kind": "signature"},
        },
        digest_of(referred.bundle): {
            "mediaType": OCI_INDEX,
            "digest": digest_of(referred.bundle),
            "size": len(referred.bundle),
            "artifactType": BUNDLE,
        },
        digest_of(referred.plain_index): {
            "mediaType": OCI_INDEX,
            "digest": digest_of(referred.plain_index),
            "size": len(referred.plain_index),
        },
    }


@pytest.mark.parametrize(
    ("artifact_type", "expected"), [(SBOM, "sbom"), (SIGNATURE_CONFIG, "signature"), (BUNDLE, "bundle")]
)
def test_referrers_filtered_by_artifact_type(
    client: httpx.Client, referred: Referred, artifact_type: str, expected: str
) -> None:
    response = referrers(client, referred.name, referred.subject, artifactType=artifact_type)
    assert response.headers["oci-filters-applied"] == "artifactType"
    assert list(by_digest(response)) == [digest_of(getattr(referred, expected))]


def test_referrers_filter_that_matches_nothing(client: httpx.Client, referred: Referred) -> None:
    response = referrers(client, referred.name, referred.subject, artifactType="application/vnd.example.none")
    assert response.headers["oci-filters-applied"] == "artifactType"
    assert response.json()["manifests"] == []


def test_referrers_of_an_unknown_digest(client: httpx.Client, referred: Referred) -> None:
    other = digest_of(b"nothing refers to this")
    response = referrers(client, referred.name, other)
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_referrers_of_a_manifest_that_was_never_pushed(client: httpx.Client, referred: Referred) -> None:
    """A referrer may be pushed before its subject, and is listed all the same."""
    response = referrers(client, referred.name, UNKNOWN_DIGEST)
    assert [entry["artifactType"] for entry in response.json()["manifests"]] == [SBOM]


def test_referrers_in_an_unknown_repository(client: httpx.Client, repo: str) -> None:
    """The spec forbids a 404 here: clients would take it to mean the registry lacks the API."""
    response = referrers(client, repo, UNKNOWN_DIGEST)
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_referrers_are_per_repository(client: httpx.Client, referred: Referred) -> None:
    other = f"{referred.name}-other"
    push_blob(client, other, EMPTY_JSON)
    foreign = referrer(referred.subject, artifactType=SBOM, config=descriptor(OCI_EMPTY, EMPTY_JSON), layers=[])
    push_referrer(client, other, foreign)
    assert list(by_digest(referrers(client, other, referred.subject))) == [digest_of(foreign)]
    assert digest_of(foreign) not in by_digest(referrers(client, referred.name, referred.subject))


def test_deleted_referrer_is_no_longer_listed(client: httpx.Client, referred: Referred) -> None:
    assert client.delete(f"/v2/{referred.name}/manifests/{digest_of(referred.sbom)}").status_code == 202
    listed = by_digest(referrers(client, referred.name, referred.subject))
    assert digest_of(referred.sbom) not in listed
    assert len(listed) == 3


def test_referrers_survive_deleting_the_subject(client: httpx.Client, referred: Referred) -> None:
    assert client.delete(f"/v2/{referred.name}/manifests/{referred.subject}").status_code == 202
    assert len(by_digest(referrers(client, referred.name, referred.subject))) == 4


@pytest.mark.parametrize("digest", ["sha256:abc", "latest", "sha256:" + "G" * 64, "foo:" + "0" * 64])
def test_referrers_of_an_invalid_digest(client: httpx.Client, referred: Referred, digest: str) -> None:
    assert_error(client.get(f"/v2/{referred.name}/referrers/{digest}"), 400, "DIGEST_INVALID", digest)


def test_referrers_of_a_sha512_subject(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, EMPTY_JSON)
    subject = "sha512:" + "ab" * 64
    manifest = referrer(subject, artifactType=SBOM, config=descriptor(OCI_EMPTY, EMPTY_JSON), layers=[])
    push_referrer(client, repo, manifest)
    assert list(by_digest(referrers(client, repo, subject))) == [digest_of(manifest)]
