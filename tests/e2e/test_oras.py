"""oras-py 0.2.43 (Python API): OCI artifacts, chunked uploads, subjects/referrers, tag deletion."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import oras.client
import oras.oci
import pytest

from tests.e2e.registry_api import get_manifest, head_digest
from tests.support.accesslog import AccessLogWindow
from tests.support.blobs import digest_of, push_blob
from tests.support.images import OCI_INDEX, OCI_MANIFEST
from tests.support.server import Server

pytestmark = pytest.mark.e2e

PAYLOAD_TYPE = "application/vnd.portside.e2e.payload"
SIGNATURE_TYPE = "application/vnd.portside.e2e.signature.v1+json"
SBOM_TYPE = "application/vnd.portside.e2e.sbom.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"


def signed_in(registry: Server, auth_backend: str) -> oras.client.OrasClient:
    client = oras.client.OrasClient(hostname=registry.host, insecure=True, auth_backend=auth_backend)
    user, token = registry.admin
    client.login(username=user, password=token, hostname=registry.host, tls_verify=False)
    return client


@pytest.fixture
def oras_client(registry: Server) -> oras.client.OrasClient:
    # oras-py 0.2.43's token backend keeps one bearer token for every later request, whatever scope a
    # 401 asks for, so a push that starts with a pull-scoped request fails on any registry that follows
    # the token spec. Its basic backend sends user:token on each request, which Portside accepts.
    return signed_in(registry, "basic")


def payload(seed: str, size: int) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    blocks = (hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def push_file(client: oras.client.OrasClient, target: str, path: Path, **kwargs: object) -> str:
    response = client.push(
        target=target, files=[f"{path}:{PAYLOAD_TYPE}"], disable_path_validation=True, quiet=True, **kwargs
    )
    assert response.status_code == 201, response.text
    return response.headers["Docker-Content-Digest"]


def test_push_and_pull_an_artifact(
    registry: Server, oras_client: oras.client.OrasClient, repo: str, tmp_path: Path
) -> None:
    data = payload("artifact", 4096)
    target = f"{registry.host}/{repo}:v1"
    digest = push_file(oras_client, target, write(tmp_path / "in" / "data.bin", data))

    assert head_digest(registry, repo, "v1") == digest
    assert oras_client.get_tags(f"{registry.host}/{repo}") == ["v1"]
    manifest = oras_client.get_manifest(target)
    assert [(layer["digest"], layer["mediaType"]) for layer in manifest["layers"]] == [(digest_of(data), PAYLOAD_TYPE)]
    pulled = oras_client.pull(target=target, outdir=str(tmp_path / "out"))
    assert [Path(p).name for p in pulled] == ["data.bin"]
    assert Path(pulled[0]).read_bytes() == data

    # Pulling needs one scope only, so oras-py's bearer-token flow (the /token endpoint) works too.
    token_client = signed_in(registry, "token")
    pulled = token_client.pull(target=target, outdir=str(tmp_path / "out-token"))
    assert Path(pulled[0]).read_bytes() == data


def test_chunked_push(registry: Server, oras_client: oras.client.OrasClient, repo: str, tmp_path: Path) -> None:
    data = payload("chunked", 300_000)
    target = f"{registry.host}/{repo}:chunked"
    window = AccessLogWindow.mark(registry.log_path)
    digest = push_file(oras_client, target, write(tmp_path / "big.bin", data), do_chunked=True, chunk_size=64 * 1024)

    patches = [r for r in window.requests(f"/v2/{repo}/blobs/uploads/") if r.method == "PATCH"]
    # The basic backend sends each request once without credentials (401), then again with them.
    accepted = [r for r in patches if r.status == 202]
    assert len(accepted) == 5, window.describe(f"/v2/{repo}/")  # ceil(300000 / 65536)
    assert all(r.status in (202, 401) for r in patches), window.describe(f"/v2/{repo}/")
    assert head_digest(registry, repo, "chunked") == digest
    pulled = oras_client.pull(target=target, outdir=str(tmp_path / "out"))
    assert Path(pulled[0]).read_bytes() == data


def test_delete_tag(registry: Server, oras_client: oras.client.OrasClient, repo: str, tmp_path: Path) -> None:
    container = f"{registry.host}/{repo}"
    kept = push_file(oras_client, f"{container}:keep", write(tmp_path / "a" / "a.bin", payload("keep", 100)))
    push_file(oras_client, f"{container}:drop", write(tmp_path / "b" / "b.bin", payload("drop", 100)))

    assert oras_client.delete_tag(container, "drop") is True

    assert oras_client.get_tags(container) == ["keep"]
    gone = registry.client().get(f"/v2/{repo}/manifests/drop", headers={"Accept": OCI_MANIFEST})
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert head_digest(registry, repo, "keep") == kept


def push_sbom_referrer(server: Server, repo: str, subject: dict[str, object]) -> str:
    """A referrer with an explicit artifactType and the empty config, built by hand (oras-py 0.2.43 can't)."""
    sbom = b'{"spdxVersion": "SPDX-2.3"}'
    with server.client() as http:
        push_blob(http, repo, b"{}")
        push_blob(http, repo, sbom)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": SBOM_TYPE,
                "config": {"mediaType": EMPTY_CONFIG, "digest": digest_of(b"{}"), "size": 2},
                "layers": [{"mediaType": "application/spdx+json", "digest": digest_of(sbom), "size": len(sbom)}],
                "subject": subject,
                "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
            }
        ).encode()
        response = http.put(f"/v2/{repo}/manifests/sbom", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    assert response.headers.get("OCI-Subject") == subject["digest"]
    return digest_of(manifest)


def referrers(server: Server, repo: str, digest: str, **params: str) -> httpx.Response:
    response = server.client().get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == OCI_INDEX
    return response


def test_referrers_of_a_subject(
    registry: Server, oras_client: oras.client.OrasClient, repo: str, tmp_path: Path
) -> None:
    target = f"{registry.host}/{repo}"
    subject_digest = push_file(oras_client, f"{target}:v1", write(tmp_path / "subject" / "app.bin", payload("s", 64)))
    subject_bytes = get_manifest(registry, repo, subject_digest).content
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=len(subject_bytes))

    # The signature's artifact type is its config's media type (it has no artifactType field).
    signature_config = write(tmp_path / "sig-config.json", b'{"signed": true}')
    signature_response = oras_client.push(
        target=f"{target}:sig",
        files=[f"{write(tmp_path / 'sig' / 'sig.json', b'{}')}:application/vnd.portside.e2e.sig"],
        manifest_config=f"{signature_config}:{SIGNATURE_TYPE}",
        manifest_annotations={"org.example.signed-by": "e2e"},
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )
    assert signature_response.status_code == 201, signature_response.text
    assert signature_response.headers.get("OCI-Subject") == subject_digest
    signature_digest = signature_response.headers["Docker-Content-Digest"]
    sbom_digest = push_sbom_referrer(
        registry, repo, {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_bytes)}
    )

    listed = referrers(registry, repo, subject_digest)
    assert "OCI-Filters-Applied" not in listed.headers
    index = listed.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {signature_digest, sbom_digest}
    signature = by_digest[signature_digest]
    assert signature["artifactType"] == SIGNATURE_TYPE
    assert signature["mediaType"] == OCI_MANIFEST
    assert signature["size"] == len(get_manifest(registry, repo, signature_digest).content)
    assert signature["annotations"] == {"org.example.signed-by": "e2e"}
    assert by_digest[sbom_digest]["artifactType"] == SBOM_TYPE

    filtered = referrers(registry, repo, subject_digest, artifactType=SIGNATURE_TYPE)
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in filtered.json()["manifests"]] == [signature_digest]

    nothing = referrers(registry, repo, digest_of(b"no such manifest"))
    assert nothing.json()["manifests"] == []
