"""Real clients refused by a storage quota show Portside's message (docs/lifecycle.md)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.commands import run, run_failing
from tests.support.dockerd import Dockerd
from tests.support.images import ImageLayout
from tests.support.server import Server

pytestmark = pytest.mark.e2e


def full_org(registry: Server) -> str:
    """An organization of the session registry's site admin with a quota of 0 bytes: every push
    that brings a new blob is refused. (Its own organization: other tests' namespaces keep none.)"""
    org = f"quota-{uuid.uuid4().hex[:8]}"
    with registry.client() as admin:
        assert admin.post("/api/v3/portside/orgs", json={"name": org}).status_code == 201
        answer = admin.patch(f"/api/v3/portside/orgs/{org}", json={"storage_quota_bytes": 0})
        assert answer.status_code == 200, answer.text
    return org


def message(org: str) -> str:
    return f"quota exceeded for {org}: "


def test_skopeo_copy_refused_by_quota(
    registry: Server, containers_env: dict[str, str], image_layout: ImageLayout
) -> None:
    org = full_org(registry)
    remote = f"docker://{registry.host}/{org}/app:v1"
    copy = ["skopeo", "copy", "--dest-tls-verify=false", image_layout.ref("v1"), remote]
    failed = run_failing(copy, env=containers_env)
    assert message(org) in failed.stderr, failed.describe()
    assert "used of 0 B; delete versions or ask an administrator" in failed.stderr, failed.describe()
    with registry.client() as admin:
        assert admin.get(f"/v2/{org}/app/manifests/v1").status_code == 404


def test_docker_push_refused_by_quota(registry: Server, dockerd: Dockerd, scratch_context: Path) -> None:
    org = full_org(registry)
    name = f"{registry.host}/{org}/hello:latest"
    run(["docker", "build", "-t", name, scratch_context], env=dockerd.env)
    failed = run_failing(["docker", "push", name], env=dockerd.env)
    output = failed.stdout + failed.stderr
    assert message(org) in output, failed.describe()
    assert "used of 0 B; delete versions or ask an administrator" in output, failed.describe()
    run(["docker", "rmi", name], env=dockerd.env)
