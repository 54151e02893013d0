"""podman 4.3: build, push (OCI manifests, gzip on push), pull by tag and digest, manifest lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.registry_api import get_manifest, head_digest, layer_files
from tests.support.commands import Result, run
from tests.support.images import OCI_INDEX, OCI_MANIFEST, ImageLayout
from tests.support.server import Server

pytestmark = pytest.mark.e2e

NO_TLS = "--tls-verify=false"


def podman(env: dict[str, str], *args: str | Path) -> Result:
    return run(["podman", *args], env=env)


def push(env: dict[str, str], reference: str, digest_file: Path) -> str:
    """Push and return the registry's digest (the local one differs: layers are gzipped on push)."""
    podman(env, "push", NO_TLS, "--digestfile", digest_file, reference)
    return digest_file.read_text(encoding="utf-8").strip()


def repo_digests(env: dict[str, str], reference: str) -> list[str]:
    return json.loads(podman(env, "image", "inspect", "--format", "{{json .RepoDigests}}", reference).stdout)


def test_build_push_and_pull_by_tag_and_digest(
    registry: Server, containers_env: dict[str, str], scratch_context: Path, repo: str, tmp_path: Path
) -> None:
    name = f"{registry.host}/{repo}"
    podman(containers_env, "build", "-t", f"{name}:v1", scratch_context)
    digest = push(containers_env, f"{name}:v1", tmp_path / "digest")

    assert head_digest(registry, repo, "v1") == digest
    manifest = get_manifest(registry, repo, "v1")
    assert manifest.headers["content-type"] == OCI_MANIFEST
    assert layer_files(registry, repo, "v1")["hello.txt"] == (scratch_context / "hello.txt").read_bytes()

    podman(containers_env, "rmi", f"{name}:v1")
    podman(containers_env, "pull", NO_TLS, f"{name}:v1")
    assert f"{name}@{digest}" in repo_digests(containers_env, f"{name}:v1")

    podman(containers_env, "rmi", f"{name}:v1")
    podman(containers_env, "pull", NO_TLS, f"{name}@{digest}")
    assert podman(containers_env, "image", "inspect", "--format", "{{.Digest}}", f"{name}@{digest}").stdout.strip() == (
        digest
    )
    podman(containers_env, "rmi", f"{name}@{digest}")


def test_build_with_run_steps_in_chroot_and_push(
    registry: Server, containers_env: dict[str, str], busybox: Path, repo: str, tmp_path: Path
) -> None:
    name = f"{registry.host}/{repo}"
    podman(containers_env, "build", "--isolation", "chroot", "-t", f"{name}:v1", busybox)
    digest = push(containers_env, f"{name}:v1", tmp_path / "digest")

    assert head_digest(registry, repo, "v1") == digest
    files = layer_files(registry, repo, digest)
    assert files["built.txt"] == b"built-by-portside-e2e\n"
    assert files["bin/busybox"] == (busybox / "busybox").read_bytes()


def test_manifest_list_create_add_push_all(
    registry: Server, containers_env: dict[str, str], image_layout: ImageLayout, repo: str, tmp_path: Path
) -> None:
    source = f"{registry.host}/{repo}-src"
    run(
        ["skopeo", "copy", "--all", "--dest-tls-verify=false", image_layout.ref("multi"), f"docker://{source}:1.0"],
        env=containers_env,
    )
    name = f"{registry.host}/{repo}"
    children = {image_layout.amd64.manifest_digest: "amd64", image_layout.arm64.manifest_digest: "arm64"}

    podman(containers_env, "manifest", "create", f"{name}:list")
    try:
        for digest in children:
            podman(containers_env, "manifest", "add", NO_TLS, f"{name}:list", f"docker://{source}@{digest}")
        podman(
            containers_env,
            *("manifest", "push", "--all", NO_TLS, "--digestfile", tmp_path / "digest"),
            *(f"{name}:list", f"docker://{name}:list"),
        )
    finally:
        podman(containers_env, "manifest", "rm", f"{name}:list")

    pushed = get_manifest(registry, repo, "list")
    assert head_digest(registry, repo, "list") == (tmp_path / "digest").read_text(encoding="utf-8").strip()
    index = json.loads(pushed.content)
    assert pushed.headers["content-type"] == index["mediaType"] == OCI_INDEX
    assert {m["digest"]: m["platform"]["architecture"] for m in index["manifests"]} == children
    for digest in children:
        assert get_manifest(registry, repo, digest).content == get_manifest(registry, f"{repo}-src", digest).content
