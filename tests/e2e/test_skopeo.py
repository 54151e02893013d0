"""skopeo (containers/image) against the registry: copies in and out, multi-arch, tags, delete, mount."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.registry_api import get_blob, get_manifest, head_digest
from tests.support.accesslog import AccessLogWindow
from tests.support.commands import Result, run, run_failing
from tests.support.images import BuiltImage, ImageLayout, sha256_digest
from tests.support.server import Server

pytestmark = pytest.mark.e2e

NO_TLS = "--tls-verify=false"
SRC_NO_TLS = "--src-tls-verify=false"
DEST_NO_TLS = "--dest-tls-verify=false"


def skopeo(env: dict[str, str], *args: str | Path) -> Result:
    return run(["skopeo", *args], env=env)


def oci_blobs(layout: Path) -> dict[str, bytes]:
    return {f"sha256:{p.name}": p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def assert_image_in_layout(blobs: dict[str, bytes], image: BuiltImage) -> None:
    for digest, data in [
        (image.manifest_digest, image.manifest),
        (image.config_digest, image.config),
        (image.layer_digest, image.layer),
    ]:
        assert blobs.get(digest) == data, f"{digest} missing or changed"
        assert sha256_digest(blobs[digest]) == digest


def test_copy_in_by_tag_and_out_to_oci_layout_and_dir(
    registry: Server, containers_env: dict[str, str], image_layout: ImageLayout, repo: str, tmp_path: Path
) -> None:
    image = image_layout.amd64
    remote = f"docker://{registry.host}/{repo}:v1"
    skopeo(containers_env, "copy", DEST_NO_TLS, image_layout.ref("v1"), remote)

    assert head_digest(registry, repo, "v1") == image.manifest_digest
    digest = skopeo(containers_env, "inspect", NO_TLS, "--format", "{{.Digest}}", remote).stdout.strip()
    assert digest == image.manifest_digest
    assert skopeo(containers_env, "inspect", NO_TLS, "--raw", remote).output.rstrip(b"\n") == image.manifest
    assert json.loads(skopeo(containers_env, "inspect", NO_TLS, "--config", remote).output) == json.loads(image.config)

    skopeo(containers_env, "copy", SRC_NO_TLS, remote, f"oci:{tmp_path / 'out-oci'}:v1")
    assert_image_in_layout(oci_blobs(tmp_path / "out-oci"), image)

    skopeo(containers_env, "copy", SRC_NO_TLS, remote, f"dir:{tmp_path / 'out-dir'}")
    out_dir = tmp_path / "out-dir"
    assert (out_dir / "manifest.json").read_bytes() == image.manifest
    for digest, data in [(image.config_digest, image.config), (image.layer_digest, image.layer)]:
        assert (out_dir / digest.removeprefix("sha256:")).read_bytes() == data


def test_copy_in_and_out_by_digest(
    registry: Server, containers_env: dict[str, str], image_layout: ImageLayout, repo: str, tmp_path: Path
) -> None:
    image = image_layout.amd64
    remote = f"docker://{registry.host}/{repo}@{image.manifest_digest}"
    skopeo(containers_env, "copy", DEST_NO_TLS, image_layout.ref("v1"), remote)

    assert get_manifest(registry, repo, image.manifest_digest).content == image.manifest
    skopeo(containers_env, "copy", SRC_NO_TLS, remote, f"oci:{tmp_path / 'out'}:pulled")
    assert_image_in_layout(oci_blobs(tmp_path / "out"), image)


def test_copy_all_of_a_two_platform_index(
    registry: Server, containers_env: dict[str, str], image_layout: ImageLayout, repo: str, tmp_path: Path
) -> None:
    remote = f"docker://{registry.host}/{repo}:1.0"
    skopeo(containers_env, "copy", "--all", DEST_NO_TLS, image_layout.ref("multi"), remote)

    assert skopeo(containers_env, "inspect", NO_TLS, "--raw", remote).output.rstrip(b"\n") == image_layout.index
    assert get_manifest(registry, repo, "1.0").content == image_layout.index
    assert head_digest(registry, repo, "1.0") == image_layout.index_digest
    # skopeo reports the index's digest, and the arm64 image's layers and config.
    arm64 = json.loads(skopeo(containers_env, "inspect", NO_TLS, "--override-arch", "arm64", remote).output)
    assert arm64["Digest"] == image_layout.index_digest
    assert arm64["Architecture"] == "arm64"
    assert arm64["Layers"] == [image_layout.arm64.layer_digest]
    config = skopeo(containers_env, "inspect", NO_TLS, "--override-arch", "arm64", "--config", "--raw", remote)
    assert config.output.rstrip(b"\n") == image_layout.arm64.config
    for image in (image_layout.amd64, image_layout.arm64):
        assert get_manifest(registry, repo, image.manifest_digest).content == image.manifest
        assert get_blob(registry, repo, image.layer_digest) == image.layer

    # And back out, whole: the layout written by skopeo holds the same index and both images.
    skopeo(containers_env, "copy", "--all", SRC_NO_TLS, remote, f"oci:{tmp_path / 'out'}:multi")
    blobs = oci_blobs(tmp_path / "out")
    assert blobs[image_layout.index_digest] == image_layout.index
    assert_image_in_layout(blobs, image_layout.amd64)
    assert_image_in_layout(blobs, image_layout.arm64)


def test_list_tags(registry: Server, containers_env: dict[str, str], image_layout: ImageLayout, repo: str) -> None:
    base = f"docker://{registry.host}/{repo}"
    skopeo(containers_env, "copy", DEST_NO_TLS, image_layout.ref("v1"), f"{base}:v1")
    skopeo(containers_env, "copy", SRC_NO_TLS, DEST_NO_TLS, f"{base}:v1", f"{base}:latest")
    skopeo(containers_env, "copy", DEST_NO_TLS, image_layout.ref("multi"), f"{base}:single-arch")

    listed = json.loads(skopeo(containers_env, "list-tags", NO_TLS, base).output)
    assert listed["Repository"] == f"{registry.host}/{repo}"
    assert sorted(listed["Tags"]) == ["latest", "single-arch", "v1"]
    assert head_digest(registry, repo, "latest") == image_layout.amd64.manifest_digest


def test_delete_by_digest_then_inspect_says_manifest_unknown(
    registry: Server, containers_env: dict[str, str], image_layout: ImageLayout, repo: str
) -> None:
    digest = image_layout.amd64.manifest_digest
    by_tag = f"docker://{registry.host}/{repo}:v1"
    by_digest = f"docker://{registry.host}/{repo}@{digest}"
    skopeo(containers_env, "copy", DEST_NO_TLS, image_layout.ref("v1"), by_tag)
    skopeo(containers_env, "inspect", NO_TLS, by_digest)

    skopeo(containers_env, "delete", NO_TLS, by_digest)

    for reference in (by_digest, by_tag):
        failed = run_failing(["skopeo", "inspect", NO_TLS, reference], env=containers_env)
        assert "manifest unknown" in failed.stderr, failed.describe()


def test_cross_repo_copy_mounts_blobs_instead_of_uploading(
    registry: Server, containers_env: dict[str, str], image_layout: ImageLayout, repo: str
) -> None:
    image = image_layout.amd64
    source, target = f"{repo}-src", f"{repo}-dst"
    skopeo(containers_env, "copy", DEST_NO_TLS, image_layout.ref("v1"), f"docker://{registry.host}/{source}:v1")
    window = AccessLogWindow.mark(registry.log_path)

    skopeo(
        containers_env,
        "copy",
        SRC_NO_TLS,
        DEST_NO_TLS,
        f"docker://{registry.host}/{source}:v1",
        f"docker://{registry.host}/{target}:v1",
    )

    assert get_manifest(registry, target, "v1").content == get_manifest(registry, source, "v1").content
    assert get_blob(registry, target, image.layer_digest) == image.layer
    # containers/image tries a mount for layers it has seen elsewhere (not for the config): the
    # POST that follows the layer's HEAD must be answered 201 Created, i.e. no upload session.
    requests = window.requests(f"/v2/{target}/blobs/")
    transcript = window.describe(f"/v2/{target}/")
    layer_head = next(i for i, r in enumerate(requests) if r.path.endswith(image.layer_digest))
    post = next(r for r in requests[layer_head:] if r.method == "POST")
    assert post.status == 201, f"the layer was not mounted:\n{transcript}"
