"""Immutable tags with real clients: a push that would move one fails, and the client shows our message."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.registry_api import head_digest
from tests.support.commands import run, run_failing
from tests.support.dockerd import Dockerd
from tests.support.images import ImageLayout
from tests.support.server import Server

pytestmark = pytest.mark.e2e

API = "/api/v3/portside"


def immutable(registry: Server, repo: str, *patterns: str) -> None:
    """Set the package's patterns through the management API, as its admin (the site admin here)."""
    with registry.client() as client:
        answer = client.put(f"{API}/packages/{repo}/immutable-tags", json={"patterns": list(patterns)})
    assert answer.status_code == 200, answer.text


def message(repo: str, tag: str, pattern: str) -> str:
    return (
        f'tag {tag} of {repo} is immutable (rule "{pattern}" set on package {repo}); push a new tag, or ask a '
        f"package admin to change the rule: PUT {API}/packages/{repo}/immutable-tags"
    )


def test_docker_cannot_move_an_immutable_tag(
    registry: Server, dockerd: Dockerd, scratch_context: Path, tmp_path: Path, repo: str
) -> None:
    name = f"{registry.host}/{repo}"
    run(["docker", "build", "-t", f"{name}:v1", scratch_context], env=dockerd.env)
    run(["docker", "push", f"{name}:v1"], env=dockerd.env)
    first = head_digest(registry, repo, "v1")
    immutable(registry, repo, "v*")

    again = run(["docker", "push", f"{name}:v1"], env=dockerd.env)  # the same image: accepted
    assert f"digest: {first}" in again.stdout

    other = tmp_path / "other"
    other.mkdir()
    (other / "hello.txt").write_text("another image\n", encoding="utf-8")
    (other / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n", encoding="utf-8")
    run(["docker", "build", "-t", f"{name}:v1", other], env=dockerd.env)
    failed = run_failing(["docker", "push", f"{name}:v1"], env=dockerd.env)
    assert f"denied: {message(repo, 'v1', 'v*')}" in failed.stderr, failed.describe()
    assert head_digest(registry, repo, "v1") == first

    run(["docker", "tag", f"{name}:v1", f"{name}:v2"], env=dockerd.env)  # a new tag: accepted
    run(["docker", "push", f"{name}:v2"], env=dockerd.env)
    assert head_digest(registry, repo, "v2") not in (None, first)
    run(["docker", "rmi", f"{name}:v1", f"{name}:v2"], env=dockerd.env)


def test_skopeo_cannot_move_an_immutable_tag(
    registry: Server, containers_env: dict[str, str], image_layout: ImageLayout, repo: str
) -> None:
    remote = f"docker://{registry.host}/{repo}:v1"
    copy = ["skopeo", "copy", "--dest-tls-verify=false"]
    run([*copy, image_layout.ref("v1"), remote], env=containers_env)
    immutable(registry, repo, "v*")
    run([*copy, image_layout.ref("v1"), remote], env=containers_env)  # the same image: accepted
    assert head_digest(registry, repo, "v1") == image_layout.amd64.manifest_digest

    failed = run_failing([*copy, "--all", image_layout.ref("multi"), remote], env=containers_env)
    said = failed.stderr.replace('\\"', '"')  # skopeo logs the error as a quoted string
    assert f"denied: {message(repo, 'v1', 'v*')}" in said, failed.describe()
    assert head_digest(registry, repo, "v1") == image_layout.amd64.manifest_digest

    deleted = run_failing(
        ["skopeo", "delete", "--tls-verify=false", f"docker://{registry.host}/{repo}:v1"], env=containers_env
    )
    assert "is immutable" in deleted.stderr and "cannot be deleted" in deleted.stderr, deleted.describe()
