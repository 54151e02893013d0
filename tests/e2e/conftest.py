"""Fixtures for end-to-end tests with real, unmodified registry clients.

Every client runs with private state: podman/buildah use their own storage (graphroot, runroot),
auth file and registries.conf; the docker engine is a private dockerd with its own DOCKER_CONFIG.
Nothing here reads or writes the machine's default image stores.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.commands import require, run
from tests.support.dockerd import Dockerd, running_dockerd
from tests.support.images import ImageLayout, build_test_layout
from tests.support.server import Server


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name of the test's own (the session registry is shared by all tests)."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return f"e2e/{name[:60]}"


@pytest.fixture(scope="session")
def containers_env(tmp_path_factory: pytest.TempPathFactory, registry: Server) -> Iterator[dict[str, str]]:
    """Environment for skopeo, podman and buildah: private storage, registries.conf, and an auth file
    signed in to the session registry as its site admin."""
    base = tmp_path_factory.mktemp("containers")
    storage = base / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{base / "graph"}"\nrunroot = "{base / "run"}"\n',
        encoding="utf-8",
    )
    registries = base / "registries.conf"
    registries.write_text("unqualified-search-registries = []\n", encoding="utf-8")
    auth = base / "auth.json"
    user, token = registry.admin
    login = base64.b64encode(f"{user}:{token}".encode()).decode()
    auth.write_text(json.dumps({"auths": {registry.host: {"auth": login}}}), encoding="utf-8")
    env = {
        "CONTAINERS_STORAGE_CONF": str(storage),
        "CONTAINERS_REGISTRIES_CONF": str(registries),
        "REGISTRY_AUTH_FILE": str(auth),
    }
    yield env
    _clean_containers_storage(env)


def _clean_containers_storage(env: dict[str, str]) -> None:
    """Remove working containers and images, so no overlay mount outlives the session."""
    if shutil.which("buildah"):
        run(["buildah", "rm", "--all"], env=env, check=False)
    if shutil.which("podman"):
        run(["podman", "rmi", "--all", "--force"], env=env, check=False)


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory, registry: Server) -> Iterator[Dockerd]:
    """A real docker engine for the session, logged in to the session registry, always stopped at the end."""
    binary = require("dockerd")
    require("docker")
    with running_dockerd(tmp_path_factory.mktemp("dockerd"), binary, name="dockerd-e2e") as daemon:
        user, token = registry.admin
        run(["docker", "login", "-u", user, "--password-stdin", registry.host], env=daemon.env, stdin=token.encode())
        yield daemon


@pytest.fixture(scope="session")
def image_layout(tmp_path_factory: pytest.TempPathFactory) -> ImageLayout:
    """The hand-made OCI layout (refs `v1` and `multi`); read-only for tests."""
    return build_test_layout(tmp_path_factory.mktemp("layout") / "oci")


@pytest.fixture(scope="session")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build context whose image has RUN steps, thanks to busybox-static (real-clients.md 'b')."""
    binary = Path(require("busybox"))
    context = tmp_path_factory.mktemp("busybox-ctx")
    shutil.copy(binary, context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "RUN echo built-by-portside-e2e > /built.txt\n"
        'CMD ["/bin/sh", "-c", "cat /built.txt"]\n',
        encoding="utf-8",
    )
    return context


@pytest.fixture
def scratch_context(tmp_path: Path) -> Path:
    """A FROM scratch + COPY build context, with content unique to the test."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "hello.txt").write_text(f"hello from {tmp_path.name}\n", encoding="utf-8")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n", encoding="utf-8")
    return context
