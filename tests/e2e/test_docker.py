"""The real docker engine (dockerd 20.10, Docker schema2, HEAD-then-GET pulls, chunked PATCH)."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.registry_api import get_manifest, head_digest, layer_files, tags
from tests.support.commands import Result, run
from tests.support.dockerd import Dockerd
from tests.support.server import Server

pytestmark = pytest.mark.e2e

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def docker(daemon: Dockerd, *args: str | Path) -> Result:
    return run(["docker", *args], env=daemon.env)


def push(daemon: Dockerd, reference: str) -> str:
    """`docker push`, returning the digest it reports ("<tag>: digest: sha256:… size: N")."""
    output = docker(daemon, "push", reference).stdout
    match = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", output)
    assert match, f"no digest in docker push output:\n{output}"
    return match[1]


def inspect(daemon: Dockerd, reference: str) -> dict[str, Any]:
    return json.loads(docker(daemon, "image", "inspect", "--format", "{{json .}}", reference).stdout)


def read_file_from_image(daemon: Dockerd, reference: str, path: str) -> bytes:
    """The file's bytes, through a created (never started) container, so no command is run."""
    container = docker(daemon, "create", reference, "/nonexistent").stdout.strip()
    try:
        archive = docker(daemon, "cp", f"{container}:{path}", "-").output
    finally:
        docker(daemon, "rm", container)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        assert member is not None
        return member.read()


def test_build_push_and_pull_by_tag_default_tag_and_digest(
    registry: Server, dockerd: Dockerd, scratch_context: Path
) -> None:
    repo = "octo/hello_docker"
    name = f"{registry.host}/{repo}"
    hello = (scratch_context / "hello.txt").read_bytes()
    docker(dockerd, "build", "-t", f"{name}:latest", scratch_context)
    image_id = inspect(dockerd, f"{name}:latest")["Id"]
    docker(dockerd, "tag", f"{name}:latest", f"{name}:2.5")

    digest = push(dockerd, f"{name}:latest")
    assert push(dockerd, f"{name}:2.5") == digest
    assert head_digest(registry, repo, "latest") == digest
    assert head_digest(registry, repo, "2.5") == digest
    assert {"latest", "2.5"} <= set(tags(registry, repo))
    manifest = get_manifest(registry, repo, digest)
    assert manifest.headers["content-type"] == DOCKER_MANIFEST
    assert json.loads(manifest.content)["mediaType"] == DOCKER_MANIFEST
    assert layer_files(registry, repo, digest)["hello.txt"] == hello

    docker(dockerd, "rmi", f"{name}:latest", f"{name}:2.5")
    docker(dockerd, "pull", f"{name}:2.5")
    pulled = inspect(dockerd, f"{name}:2.5")
    assert pulled["Id"] == image_id
    assert f"{name}@{digest}" in pulled["RepoDigests"]

    docker(dockerd, "rmi", f"{name}:2.5")
    default = docker(dockerd, "pull", name)
    assert "Using default tag: latest" in default.stdout
    assert f"{name}@{digest}" in inspect(dockerd, f"{name}:latest")["RepoDigests"]

    docker(dockerd, "rmi", f"{name}:latest")
    docker(dockerd, "pull", f"{name}@{digest}")
    by_digest = inspect(dockerd, f"{name}@{digest}")
    assert by_digest["Id"] == image_id
    assert read_file_from_image(dockerd, f"{name}@{digest}", "/hello.txt") == hello


def test_busybox_image_with_run_steps_round_trips_and_runs(
    registry: Server, dockerd: Dockerd, busybox: Path, repo: str
) -> None:
    name = f"{registry.host}/{repo}"
    docker(dockerd, "build", "-t", f"{name}:v1", busybox)
    digest = push(dockerd, f"{name}:v1")
    assert head_digest(registry, repo, "v1") == digest
    assert layer_files(registry, repo, "v1")["built.txt"] == b"built-by-portside-e2e\n"

    docker(dockerd, "rmi", f"{name}:v1")
    docker(dockerd, "pull", f"{name}@{digest}")
    assert f"{name}@{digest}" in inspect(dockerd, f"{name}@{digest}")["RepoDigests"]
    ran = docker(dockerd, "run", "--rm", f"{name}@{digest}")
    assert ran.stdout == "built-by-portside-e2e\n"
