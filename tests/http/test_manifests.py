"""Manifests: PUT/GET/HEAD/DELETE /v2/<name>/manifests/<reference>, for every kind a client pushes."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.http.helpers import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    UNKNOWN_DIGEST,
    assert_error,
    descriptor,
    location_path,
    oci_image,
    push_manifest,
    raw_request,
    server_log,
    sha512_of,
    wait_for_access_log,
)
from tests.support.blobs import digest_of, push_blob
from tests.support.server import Server

MAX_MANIFEST = 4 * 1024 * 1024


def assert_pulls(client: httpx.Client, name: str, reference: str, manifest: bytes, media_type: str) -> None:
    """GET and HEAD by `reference` give back exactly what was pushed, with its own type and digest."""
    digest = digest_of(manifest) if not reference.startswith("sha512:") else sha512_of(manifest)
    response = client.get(f"/v2/{name}/manifests/{reference}")
    assert response.status_code == 200, response.text
    assert response.content == manifest
    assert response.headers["content-type"] == media_type
    assert response.headers["docker-content-digest"] == digest
    assert response.headers["content-length"] == str(len(manifest))
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    head = client.head(f"/v2/{name}/manifests/{reference}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == media_type
    assert head.headers["docker-content-digest"] == digest
    assert head.headers["content-length"] == str(len(manifest))


def assert_pushed(response: httpx.Response, name: str, manifest: bytes) -> None:
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == digest_of(manifest)
    assert location_path(response) == f"/v2/{name}/manifests/{digest_of(manifest)}"
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def put(client: httpx.Client, name: str, reference: str, manifest: bytes, media_type: str | None) -> httpx.Response:
    headers = {"Content-Type": media_type} if media_type else {}
    return client.put(f"/v2/{name}/manifests/{reference}", content=manifest, headers=headers)


def docker_image(client: httpx.Client, name: str, seed: str) -> bytes:
    config = json.dumps({"architecture": "arm64", "os": "linux", "seed": seed}).encode()
    layer = f"docker layer {seed}".encode()
    push_blob(client, name, config)
    push_blob(client, name, layer)
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER, layer)],
    }
    return json.dumps(doc, indent=3).encode()


# -- the kinds of manifest -----------------------------------------------------------------------


def test_oci_image_manifest_by_tag(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(repo, client, "oci")
    response = put(client, repo, "v1", manifest, OCI_MANIFEST)
    assert_pushed(response, repo, manifest)
    assert "oci-subject" not in response.headers
    assert_pulls(client, repo, "v1", manifest, OCI_MANIFEST)
    assert_pulls(client, repo, digest_of(manifest), manifest, OCI_MANIFEST)


def test_oci_index(client: httpx.Client, repo: str) -> None:
    amd64 = oci_image(repo, client, "amd64")
    arm64 = oci_image(repo, client, "arm64")
    push_manifest(client, repo, digest_of(amd64), amd64)
    push_manifest(client, repo, digest_of(arm64), arm64)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                descriptor(OCI_MANIFEST, amd64, platform={"architecture": "amd64", "os": "linux"}),
                descriptor(OCI_MANIFEST, arm64, platform={"architecture": "arm64", "os": "linux"}),
            ],
            "annotations": {"org.opencontainers.image.version": "1.0"},
        }
    ).encode()
    assert_pushed(put(client, repo, "multi", index, OCI_INDEX), repo, index)
    assert_pulls(client, repo, "multi", index, OCI_INDEX)
    assert_pulls(client, repo, digest_of(amd64), amd64, OCI_MANIFEST)


def test_docker_schema2_manifest(client: httpx.Client, repo: str) -> None:
    manifest = docker_image(client, repo, "docker")
    assert_pushed(put(client, repo, "latest", manifest, DOCKER_MANIFEST), repo, manifest)
    assert_pulls(client, repo, "latest", manifest, DOCKER_MANIFEST)


def test_docker_manifest_list(client: httpx.Client, repo: str) -> None:
    children = [docker_image(client, repo, arch) for arch in ("amd64", "arm64", "s390x")]
    for child in children:
        push_manifest(client, repo, digest_of(child), child, DOCKER_MANIFEST)
    manifest_list = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                descriptor(DOCKER_MANIFEST, child, platform={"architecture": arch, "os": "linux"})
                for child, arch in zip(children, ("amd64", "arm64", "s390x"), strict=True)
            ],
        }
    ).encode()
    assert_pushed(put(client, repo, "multi", manifest_list, DOCKER_LIST), repo, manifest_list)
    assert_pulls(client, repo, "multi", manifest_list, DOCKER_LIST)


def test_oci_artifact_with_the_empty_config(client: httpx.Client, repo: str) -> None:
    assert (
        push_blob(client, repo, EMPTY_JSON) == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    payload = b"# Hello\nan arbitrary file\n"
    push_blob(client, repo, payload)
    artifact = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.readme.v1",
            "config": descriptor(OCI_EMPTY, EMPTY_JSON, data="e30="),
            "layers": [
                descriptor(
                    "text/markdown",
                    payload,
                    annotations={"org.opencontainers.image.title": "README.md"},
                )
            ],
        }
    ).encode()
    assert_pushed(put(client, repo, "readme", artifact, OCI_MANIFEST), repo, artifact)
    assert_pulls(client, repo, "readme", artifact, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/blobs/{digest_of(payload)}").content == payload
    assert client.get(f"/v2/{repo}/blobs/{digest_of(EMPTY_JSON)}").content == b"{}"


def test_artifact_without_the_empty_config_blob_is_refused(client: httpx.Client, repo: str) -> None:
    payload = b"content"
    push_blob(client, repo, payload)
    artifact = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.thing",
            "config": descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [descriptor("application/vnd.example.thing.layer", payload)],
        }
    ).encode()
    assert_error(put(client, repo, "t", artifact, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN", digest_of(EMPTY_JSON))


def test_oci_manifest_without_media_type_fields(client: httpx.Client, repo: str) -> None:
    """OCI makes mediaType optional in both the header and the body: the registry goes by the shape."""
    doc = json.loads(oci_image(repo, client, "bare"))
    del doc["mediaType"]
    manifest = json.dumps(doc).encode()
    assert_pushed(put(client, repo, "bare", manifest, None), repo, manifest)
    assert_pulls(client, repo, "bare", manifest, OCI_MANIFEST)


def test_content_type_from_the_body_when_the_header_is_generic(client: httpx.Client, repo: str) -> None:
    manifest = docker_image(client, repo, "generic")
    assert_pushed(put(client, repo, "generic", manifest, "application/json"), repo, manifest)
    assert_pulls(client, repo, "generic", manifest, DOCKER_MANIFEST)


def test_content_type_parameters_are_ignored(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(repo, client, "params")
    assert_pushed(put(client, repo, "p", manifest, f"{OCI_MANIFEST}; charset=utf-8"), repo, manifest)
    assert_pulls(client, repo, "p", manifest, OCI_MANIFEST)


def test_exact_bytes_are_kept(client: httpx.Client, repo: str) -> None:
    """Whitespace, key order and escapes are part of the digest: the registry must not re-serialise."""
    doc = json.loads(oci_image(repo, client, "exact"))
    manifest = (
        b'{\n\t"layers" :  ' + json.dumps(doc["layers"]).encode() + b',\n"schemaVersion":2,\r\n'
        b'  "config":'
        + json.dumps(doc["config"], indent=7).encode()
        + b',"mediaType":"'
        + OCI_MANIFEST.encode()
        + b'",'
        b'"annotations":{"note":"caf\\u00e9 \xe2\x98\x95"}}\n\n'
    )
    assert_pushed(put(client, repo, "exact", manifest, OCI_MANIFEST), repo, manifest)
    assert_pulls(client, repo, "exact", manifest, OCI_MANIFEST)


def test_foreign_layers_need_not_be_pushed(client: httpx.Client, repo: str) -> None:
    config = b'{"os":"windows"}'
    push_blob(client, repo, config)
    foreign = b"windows base layer that lives elsewhere"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(DOCKER_CONFIG, config),
            "layers": [
                descriptor(
                    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                    foreign,
                    urls=["https://example.com/layer.tar.gz"],
                )
            ],
        }
    ).encode()
    assert_pushed(put(client, repo, "win", manifest, DOCKER_MANIFEST), repo, manifest)


# -- references ----------------------------------------------------------------------------------


def test_put_by_digest(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(repo, client, "untagged")
    digest = digest_of(manifest)
    assert_pushed(put(client, repo, digest, manifest, OCI_MANIFEST), repo, manifest)
    assert_pulls(client, repo, digest, manifest, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/tags/list").json() == {"name": repo, "tags": []}


def test_put_by_sha512_digest(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(repo, client, "sha512")
    digest = sha512_of(manifest)
    response = put(client, repo, digest, manifest, OCI_MANIFEST)
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == digest
    assert location_path(response) == f"/v2/{repo}/manifests/{digest}"
    assert_pulls(client, repo, digest, manifest, OCI_MANIFEST)


def test_put_by_the_wrong_digest(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(repo, client, "mismatch")
    wrong = digest_of(manifest + b" ")
    error = assert_error(put(client, repo, wrong, manifest, OCI_MANIFEST), 400, "DIGEST_INVALID", wrong)
    assert error["detail"] == {"expected": wrong, "computed": digest_of(manifest)}
    assert_error(client.get(f"/v2/{repo}/manifests/{digest_of(manifest)}"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("reference", ["sha256:totallywrong", "sha256:" + "0" * 65, "md5:" + "0" * 32])
def test_put_by_a_malformed_digest(client: httpx.Client, repo: str, reference: str) -> None:
    manifest = oci_image(repo, client, "malformed-digest")
    assert_error(put(client, repo, reference, manifest, OCI_MANIFEST), 400, "DIGEST_INVALID", reference)


def test_retag_moves_the_tag(client: httpx.Client, repo: str) -> None:
    first = oci_image(repo, client, "first")
    second = oci_image(repo, client, "second")
    push_manifest(client, repo, "latest", first)
    push_manifest(client, repo, "latest", second)
    assert_pulls(client, repo, "latest", second, OCI_MANIFEST)
    assert_pulls(client, repo, digest_of(first), first, OCI_MANIFEST)  # the old manifest stays, untagged


def test_pushing_the_same_manifest_twice(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(repo, client, "twice")
    assert_pushed(put(client, repo, "a", manifest, OCI_MANIFEST), repo, manifest)
    assert_pushed(put(client, repo, "a", manifest, OCI_MANIFEST), repo, manifest)
    assert_pushed(put(client, repo, "b", manifest, OCI_MANIFEST), repo, manifest)
    assert_pushed(put(client, repo, digest_of(manifest), manifest, OCI_MANIFEST), repo, manifest)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["a", "b"]


def test_several_accept_header_lines(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(repo, client, "accept")
    push_manifest(client, repo, "v1", manifest)
    accept = [
        ("Accept", DOCKER_MANIFEST),
        ("Accept", DOCKER_LIST),
        ("Accept", f"{OCI_INDEX}, {OCI_MANIFEST}"),
        ("Accept", "application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5"),
    ]
    response = client.get(f"/v2/{repo}/manifests/v1", headers=httpx.Headers(accept))
    assert response.request.headers.get_list("accept") == [value for _, value in accept]
    assert response.status_code == 200
    assert response.content == manifest
    assert response.headers["content-type"] == OCI_MANIFEST


@pytest.mark.parametrize("tag", ["1.0", "v1.2.3-rc.1", "_under", "A" * 128, "latest", "Mixed_Case-9"])
def test_valid_tags(client: httpx.Client, repo: str, tag: str) -> None:
    manifest = oci_image(repo, client, "tags")
    assert_pushed(put(client, repo, tag, manifest, OCI_MANIFEST), repo, manifest)
    assert_pulls(client, repo, tag, manifest, OCI_MANIFEST)


@pytest.mark.parametrize("tag", ["-dash", ".dot", "A" * 129, "has+plus", "t%40g"])
def test_invalid_tag(client: httpx.Client, repo: str, tag: str) -> None:
    manifest = oci_image(repo, client, "bad-tag")
    push_manifest(client, repo, "good", manifest)
    shown = httpx.URL(f"/v2/{repo}/manifests/{tag}").path.rsplit("/", 1)[-1]  # as the server decodes it
    pattern = "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
    # Pushing to it is a mistake the client must hear about: 400 naming the bad part.
    response = client.put(f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert assert_error(response, 400, "MANIFEST_INVALID", shown, pattern)["detail"] == {"reference": shown}
    # Asking for it: something that cannot be a tag names nothing (the OCI conformance suite's
    # "nonexistent manifest" specs use such a reference).
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/v2/{repo}/manifests/{tag}")
        error = assert_error(response, 404, "MANIFEST_UNKNOWN", shown, "does not exist", pattern)
        assert error["detail"] == {"reference": shown}
    head = client.head(f"/v2/{repo}/manifests/{tag}")
    assert head.status_code == 404
    assert head.content == b""
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["good"]


@pytest.mark.parametrize("reference", [".INVALID_MANIFEST_NAME", "missing-tag"])
def test_a_nonexistent_manifest_is_404_whether_or_not_it_could_be_a_tag(
    client: httpx.Client, repo: str, reference: str
) -> None:
    push_manifest(client, repo, "good", oci_image(repo, client, "nonexistent"))
    response = client.get(f"/v2/{repo}/manifests/{reference}")
    assert_error(response, 404, "MANIFEST_UNKNOWN", reference)
    head = client.head(f"/v2/{repo}/manifests/{reference}")
    assert head.status_code == 404
    assert "docker-content-digest" not in head.headers


# -- refusals ------------------------------------------------------------------------------------


def test_missing_blob(client: httpx.Client, repo: str) -> None:
    config = b'{"config":"pushed"}'
    push_blob(client, repo, config)
    missing = [b"layer one, never pushed", b"layer two, never pushed"]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in missing],
        }
    ).encode()
    response = put(client, repo, "broken", manifest, OCI_MANIFEST)
    wanted = sorted(digest_of(layer) for layer in missing)
    error = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN", wanted[0], "and 1 more", repo)
    assert error["detail"] == {"missing": wanted}
    assert_error(client.get(f"/v2/{repo}/manifests/broken"), 404, "MANIFEST_UNKNOWN")


def test_missing_config_blob(client: httpx.Client, repo: str) -> None:
    layer = b"layer"
    push_blob(client, repo, layer)
    config = b'{"never":"pushed"}'
    manifest = json.dumps(
        {"schemaVersion": 2, "config": descriptor(OCI_CONFIG, config), "layers": [descriptor(OCI_LAYER, layer)]}
    ).encode()
    assert_error(put(client, repo, "x", manifest, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN", digest_of(config))


def test_blob_in_another_repository_does_not_count(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(f"{repo}-other", client, "elsewhere")
    assert_error(put(client, repo, "x", manifest, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")


def test_index_with_a_missing_child(client: httpx.Client, repo: str) -> None:
    present = oci_image(repo, client, "present")
    push_manifest(client, repo, digest_of(present), present)
    absent = oci_image(repo, client, "absent")  # its blobs are pushed, the manifest itself is not
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, present), descriptor(OCI_MANIFEST, absent)],
        }
    ).encode()
    response = put(client, repo, "multi", index, OCI_INDEX)
    error = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN", digest_of(absent), "push the platform manifests")
    assert error["detail"] == {"missing": [digest_of(absent)]}
    assert_error(client.get(f"/v2/{repo}/manifests/multi"), 404, "MANIFEST_UNKNOWN")


def test_index_child_in_another_repository_does_not_count(client: httpx.Client, repo: str) -> None:
    other = f"{repo}-other"
    child = oci_image(other, client, "child")
    push_manifest(client, other, digest_of(child), child)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, child)]})
    assert_error(put(client, repo, "x", index.encode(), OCI_INDEX), 400, "MANIFEST_BLOB_UNKNOWN", digest_of(child))


def _image_doc(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": UNKNOWN_DIGEST, "size": 2},
        "layers": [],
    }
    doc.update(changes)
    return {key: value for key, value in doc.items() if value is not None}


INVALID_MANIFESTS = [
    pytest.param(b"{not json", OCI_MANIFEST, "not valid JSON", id="malformed-json"),
    pytest.param(b"\xff\xfe{}", OCI_MANIFEST, "not valid JSON", id="not-utf8"),
    pytest.param(b"", OCI_MANIFEST, "not valid JSON", id="empty"),
    pytest.param(b"[1, 2]", OCI_MANIFEST, "JSON object", id="array"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, OCI_MANIFEST, "not valid JSON", id="deeply-nested"),
    pytest.param(_image_doc(schemaVersion=None), OCI_MANIFEST, "schemaVersion must be 2", id="no-schema-version"),
    pytest.param(_image_doc(schemaVersion=3), OCI_MANIFEST, "schemaVersion must be 2", id="schema-version-3"),
    pytest.param(_image_doc(config=None), OCI_MANIFEST, "config must be a descriptor", id="no-config"),
    pytest.param(_image_doc(layers=None), OCI_MANIFEST, "layers array", id="no-layers"),
    pytest.param(_image_doc(layers={"a": 1}), OCI_MANIFEST, "layers array", id="layers-not-array"),
    pytest.param(
        _image_doc(config={"mediaType": OCI_CONFIG, "size": 2}), OCI_MANIFEST, "config has no digest", id="no-digest"
    ),
    pytest.param(
        _image_doc(config={"digest": UNKNOWN_DIGEST, "size": 2}), OCI_MANIFEST, "config has no mediaType", id="no-type"
    ),
    pytest.param(
        _image_doc(config={"mediaType": OCI_CONFIG, "digest": "sha256:short", "size": 2}),
        OCI_MANIFEST,
        "config: invalid sha256 digest",
        id="bad-digest",
    ),
    pytest.param(
        _image_doc(layers=[{"mediaType": OCI_LAYER, "digest": UNKNOWN_DIGEST, "size": -1}]),
        OCI_MANIFEST,
        "layers[0] size must be a non-negative integer",
        id="negative-size",
    ),
    pytest.param(
        _image_doc(layers=[{"mediaType": OCI_LAYER, "digest": UNKNOWN_DIGEST, "size": "12"}]),
        OCI_MANIFEST,
        "layers[0] size",
        id="string-size",
    ),
    pytest.param(_image_doc(layers=["sha256:abc"]), OCI_MANIFEST, "layers[0] must be a descriptor", id="layer-string"),
    pytest.param(_image_doc(annotations={"a": 1}), OCI_MANIFEST, "annotations", id="annotations-not-strings"),
    pytest.param(_image_doc(artifactType=7), OCI_MANIFEST, "artifactType must be a string", id="artifact-type"),
    pytest.param(_image_doc(mediaType=7), OCI_MANIFEST, "mediaType must be a string", id="media-type-number"),
    pytest.param(_image_doc(subject="sha256:abc"), OCI_MANIFEST, "subject must be a descriptor", id="subject"),
    pytest.param(_image_doc(), DOCKER_MANIFEST, "does not match", id="header-body-mismatch"),
    pytest.param(_image_doc(), "application/vnd.example.unknown+json", "unsupported manifest media type", id="type"),
    pytest.param(_image_doc(mediaType="text/plain"), "", "unsupported manifest media type", id="body-type"),
    pytest.param({"schemaVersion": 2}, "", "neither an image manifest nor an index", id="shapeless"),
    pytest.param({"schemaVersion": 2, "mediaType": OCI_INDEX}, OCI_INDEX, "manifests array", id="index-no-list"),
    pytest.param(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST}]},
        OCI_INDEX,
        "manifests[0] has no digest",
        id="index-bad-child",
    ),
]


@pytest.mark.parametrize(("body", "media_type", "mention"), INVALID_MANIFESTS)
def test_invalid_manifest(
    client: httpx.Client, repo: str, body: bytes | dict[str, object], media_type: str, mention: str
) -> None:
    push_blob(client, repo, b"the repository exists")
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert_error(put(client, repo, "bad", payload, media_type), 400, "MANIFEST_INVALID", mention)
    assert_error(client.get(f"/v2/{repo}/manifests/bad"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/vnd.docker.distribution.manifest.v1+prettyjws", {"schemaVersion": 1, "name": "x", "tag": "y"}),
        ("application/vnd.docker.distribution.manifest.v1+json", {"schemaVersion": 1, "name": "x", "tag": "y"}),
        ("application/json", {"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}),
        ("", {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v1+json"}),
    ],
)
def test_schema1_is_refused_with_a_clear_message(
    client: httpx.Client, repo: str, content_type: str, body: dict[str, object]
) -> None:
    response = put(client, repo, "old", json.dumps(body).encode(), content_type)
    assert_error(response, 400, "MANIFEST_INVALID", "schema 1 is not supported", "schema 2 or OCI")


def _padded_manifest(client: httpx.Client, repo: str, size: int) -> bytes:
    """An image manifest of exactly `size` bytes, padded with an annotation."""
    base = oci_image(repo, client, "big")
    doc = json.loads(base)
    doc["annotations"] = {"padding": ""}
    filler = size - len(json.dumps(doc).encode())
    doc["annotations"]["padding"] = "p" * filler
    manifest = json.dumps(doc).encode()
    assert len(manifest) == size
    return manifest


def test_manifest_of_exactly_the_limit_is_accepted(client: httpx.Client, repo: str) -> None:
    manifest = _padded_manifest(client, repo, MAX_MANIFEST)
    assert_pushed(put(client, repo, "big", manifest, OCI_MANIFEST), repo, manifest)
    assert client.get(f"/v2/{repo}/manifests/big").content == manifest


def test_manifest_over_the_limit_is_refused(client: httpx.Client, repo: str) -> None:
    manifest = _padded_manifest(client, repo, MAX_MANIFEST + 1)
    response = put(client, repo, "big", manifest, OCI_MANIFEST)
    assert_error(response, 413, "SIZE_INVALID", str(MAX_MANIFEST))
    assert_error(client.get(f"/v2/{repo}/manifests/big"), 404, "MANIFEST_UNKNOWN")


def test_manifest_over_the_limit_streamed_without_a_length_is_refused(client: httpx.Client, repo: str) -> None:
    manifest = _padded_manifest(client, repo, MAX_MANIFEST + 100_000)

    def body() -> object:
        for i in range(0, len(manifest), 65536):
            yield manifest[i : i + 65536]

    response = client.put(f"/v2/{repo}/manifests/big", content=body(), headers={"Content-Type": OCI_MANIFEST})
    assert_error(response, 413, "SIZE_INVALID", str(MAX_MANIFEST))


# -- subject -------------------------------------------------------------------------------------


def test_subject_gives_oci_subject_header(client: httpx.Client, repo: str) -> None:
    image = oci_image(repo, client, "subject")
    push_manifest(client, repo, "v1", image)
    push_blob(client, repo, EMPTY_JSON)
    signature = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [],
            "subject": descriptor(OCI_MANIFEST, image),
        }
    ).encode()
    response = put(client, repo, digest_of(signature), signature, OCI_MANIFEST)
    assert_pushed(response, repo, signature)
    assert response.headers["oci-subject"] == digest_of(image)
    assert_pulls(client, repo, digest_of(signature), signature, OCI_MANIFEST)


def test_subject_may_be_pushed_before_its_target(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, EMPTY_JSON)
    target = digest_of(b"a manifest that is not here yet")
    signature = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": target, "size": 31},
        }
    ).encode()
    response = put(client, repo, digest_of(signature), signature, OCI_MANIFEST)
    assert_pushed(response, repo, signature)
    assert response.headers["oci-subject"] == target


# -- deleting ------------------------------------------------------------------------------------


def test_delete_by_tag_removes_only_the_tag(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(repo, client, "untag")
    push_manifest(client, repo, "keep", manifest)
    push_manifest(client, repo, "drop", manifest)
    response = client.delete(f"/v2/{repo}/manifests/drop")
    assert response.status_code == 202
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    assert_error(client.get(f"/v2/{repo}/manifests/drop"), 404, "MANIFEST_UNKNOWN", "drop", repo)
    assert client.head(f"/v2/{repo}/manifests/drop").status_code == 404
    assert_pulls(client, repo, "keep", manifest, OCI_MANIFEST)
    assert_pulls(client, repo, digest_of(manifest), manifest, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["keep"]
    assert_error(client.delete(f"/v2/{repo}/manifests/drop"), 404, "MANIFEST_UNKNOWN", "drop")


def test_delete_by_digest_removes_the_manifest_and_its_tags(client: httpx.Client, repo: str) -> None:
    doomed = oci_image(repo, client, "doomed")
    kept = oci_image(repo, client, "kept")
    push_manifest(client, repo, "a", doomed)
    push_manifest(client, repo, "b", doomed)
    push_manifest(client, repo, "c", kept)
    digest = digest_of(doomed)
    assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
    for reference in (digest, "a", "b"):
        assert_error(client.get(f"/v2/{repo}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN", reference)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["c"]
    assert_pulls(client, repo, "c", kept, OCI_MANIFEST)
    assert_error(client.delete(f"/v2/{repo}/manifests/{digest}"), 404, "MANIFEST_UNKNOWN", digest)
    # The blobs stay: deleting a manifest is not deleting what it refers to.
    config = json.loads(doomed)["config"]["digest"]
    assert client.head(f"/v2/{repo}/blobs/{config}").status_code == 200


def test_deleted_manifest_can_be_pushed_again(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(repo, client, "again")
    push_manifest(client, repo, "v1", manifest)
    assert client.delete(f"/v2/{repo}/manifests/{digest_of(manifest)}").status_code == 202
    push_manifest(client, repo, "v1", manifest)
    assert_pulls(client, repo, "v1", manifest, OCI_MANIFEST)


def test_unknown_manifest(client: httpx.Client, repo: str) -> None:
    push_manifest(client, repo, "exists", oci_image(repo, client, "exists"))
    for reference in ("missing", UNKNOWN_DIGEST):
        error = assert_error(client.get(f"/v2/{repo}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN", reference, repo)
        assert error["detail"] == {"name": repo, "reference": reference}
        head = client.head(f"/v2/{repo}/manifests/{reference}")
        assert head.status_code == 404
        assert head.content == b""
        assert_error(client.delete(f"/v2/{repo}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN", reference)


def test_unknown_repository(client: httpx.Client, repo: str) -> None:
    for reference in ("latest", UNKNOWN_DIGEST):
        for method in ("GET", "DELETE"):
            response = client.request(method, f"/v2/{repo}/manifests/{reference}")
            error = assert_error(response, 404, "NAME_UNKNOWN", repo)
            assert error["detail"] == {"name": repo}
        assert client.head(f"/v2/{repo}/manifests/{reference}").status_code == 404


def test_manifest_in_another_repository_is_not_visible(client: httpx.Client, repo: str) -> None:
    manifest = oci_image(repo, client, "private")
    push_manifest(client, repo, "v1", manifest)
    other = f"{repo}-other"
    push_blob(client, other, b"exists")
    for reference in ("v1", digest_of(manifest)):
        assert_error(client.get(f"/v2/{other}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
        assert_error(client.delete(f"/v2/{other}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
    assert_pulls(client, repo, "v1", manifest, OCI_MANIFEST)


@pytest.mark.parametrize("name", ["octo/tools/hello", "a/b/c/d/e", "x.y_z__w/a-b--c", "9/0"])
def test_nested_names(client: httpx.Client, repo: str, name: str) -> None:
    name = f"{repo}/{name}"
    manifest = oci_image(name, client, "nested")
    assert_pushed(put(client, name, "v1", manifest, OCI_MANIFEST), name, manifest)
    assert_pulls(client, name, "v1", manifest, OCI_MANIFEST)
    assert client.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": ["v1"]}
    assert_error(client.get(f"/v2/{repo}/manifests/v1"), 404, "NAME_UNKNOWN")  # the parent is another repository


def test_client_disconnects_mid_put(client: httpx.Client, registry: Server, repo: str) -> None:
    manifest = oci_image(repo, client, "disconnect")
    head = (
        f"PUT /v2/{repo}/manifests/v1 HTTP/1.1\r\nHost: {registry.host}\r\nContent-Type: {OCI_MANIFEST}\r\n"
        f"Content-Length: {len(manifest)}\r\n"
    )
    raw_request(registry, head, manifest[: len(manifest) // 2])
    # The server answers a vanished client quietly: no "unhandled error" in its log.
    assert wait_for_access_log(registry, "PUT", f"/v2/{repo}/manifests/v1") == [400]
    assert f"unhandled error in PUT /v2/{repo}/" not in server_log(registry)
    assert_error(client.get(f"/v2/{repo}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    push_manifest(client, repo, "v1", manifest)
    assert_pulls(client, repo, "v1", manifest, OCI_MANIFEST)


def test_refused_push_leaves_no_repository_behind(client: httpx.Client, repo: str) -> None:
    missing = json.dumps(_image_doc()).encode()  # its config blob was never pushed
    assert_error(put(client, repo, "v1", missing, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")
    assert repo not in client.get("/v2/_catalog").json()["repositories"]
