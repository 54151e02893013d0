"""buildah 1.28: from scratch / copy / commit / push (OCI and Docker formats) and `bud`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.registry_api import get_blob, get_manifest, head_digest, layer_files
from tests.support.commands import Result, run
from tests.support.images import OCI_CONFIG, OCI_MANIFEST
from tests.support.server import Server

pytestmark = pytest.mark.e2e

NO_TLS = "--tls-verify=false"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
SOURCE_LABEL = "org.opencontainers.image.source"


def buildah(env: dict[str, str], *args: str | Path) -> Result:
    return run(["buildah", *args], env=env)


def config_of(server: Server, repo: str, reference: str) -> tuple[str, dict[str, Any]]:
    """The config descriptor's media type and the config document itself."""
    manifest = json.loads(get_manifest(server, repo, reference).content)
    descriptor = manifest["config"]
    return descriptor["mediaType"], json.loads(get_blob(server, repo, descriptor["digest"]))


def test_from_scratch_copy_commit_push_oci_and_docker_formats(
    registry: Server, containers_env: dict[str, str], scratch_context: Path, repo: str, tmp_path: Path
) -> None:
    name = f"{registry.host}/{repo}"
    hello = (scratch_context / "hello.txt").read_bytes()
    container = buildah(containers_env, "from", "scratch").stdout.strip()
    try:
        buildah(containers_env, "copy", container, scratch_context / "hello.txt", "/hello.txt")
        label = f"{SOURCE_LABEL}=https://e.invalid/o/r"
        buildah(containers_env, "config", "--cmd", '["/hello"]', "--label", label, container)
        buildah(containers_env, "commit", container, f"{name}:v1")
    finally:
        buildah(containers_env, "rm", container)

    buildah(containers_env, "push", NO_TLS, "--digestfile", tmp_path / "digest", f"{name}:v1")
    digest = (tmp_path / "digest").read_text(encoding="utf-8").strip()
    assert head_digest(registry, repo, "v1") == digest
    assert get_manifest(registry, repo, "v1").headers["content-type"] == OCI_MANIFEST
    media_type, config = config_of(registry, repo, "v1")
    assert media_type == OCI_CONFIG
    assert config["config"]["Labels"][SOURCE_LABEL] == "https://e.invalid/o/r"
    assert layer_files(registry, repo, "v1")["hello.txt"] == hello

    buildah(containers_env, "push", NO_TLS, "--format", "docker", f"{name}:v1", f"docker://{name}:v1-docker")
    docker_manifest = get_manifest(registry, repo, "v1-docker")
    assert docker_manifest.headers["content-type"] == DOCKER_MANIFEST
    assert json.loads(docker_manifest.content)["mediaType"] == DOCKER_MANIFEST
    assert config_of(registry, repo, "v1-docker")[0] == DOCKER_CONFIG
    assert layer_files(registry, repo, "v1-docker")["hello.txt"] == hello
    buildah(containers_env, "rmi", f"{name}:v1")


def test_bud_with_run_steps_in_chroot_and_push(
    registry: Server, containers_env: dict[str, str], busybox: Path, repo: str, tmp_path: Path
) -> None:
    name = f"{registry.host}/{repo}"
    buildah(containers_env, "bud", "--isolation", "chroot", "-t", f"{name}:bud", busybox)
    buildah(containers_env, "push", NO_TLS, "--digestfile", tmp_path / "digest", f"{name}:bud")

    digest = (tmp_path / "digest").read_text(encoding="utf-8").strip()
    assert head_digest(registry, repo, "bud") == digest
    assert layer_files(registry, repo, digest)["built.txt"] == b"built-by-portside-e2e\n"
    _, config = config_of(registry, repo, digest)
    assert config["config"]["Cmd"] == ["/bin/sh", "-c", "cat /built.txt"]
