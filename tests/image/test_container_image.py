"""Portside's container image, built from the Containerfile and run the way most people first try a
registry: `docker run -p`, on the embedded default (SQLite and blobs in the volume).

The base image is made here from Debian's mirror (scripts/base-image.sh: debootstrap, or its cached
tarball); the image is built with `--network host` because this engine's bridge routes nowhere and
pip must reach PyPI. Everything started is removed again; logs go to test-output/logs/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.commands import Result, require, run
from tests.support.dockerd import Dockerd
from tests.support.server import OUTPUT, ROOT, free_port

IMAGE = "localhost/portside:image-test"
BASE = "localhost/portside-base:bookworm"
DATA = "/var/lib/portside"


def docker(engine: Dockerd, *args: str | Path, timeout: float = 300, check: bool = True) -> Result:
    return run(["docker", *args], env=engine.env, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def image(image_engine: Dockerd) -> str:
    """The base (made or imported by scripts/base-image.sh), then the image from the Containerfile."""
    env = {**image_engine.env, "BASE_LOG": str(OUTPUT / "logs" / "base-image.log")}
    run(["bash", ROOT / "scripts" / "base-image.sh"], env=env, timeout=600)
    docker(image_engine, "image", "inspect", BASE)
    docker(image_engine, "build", "--network", "host", "-f", ROOT / "Containerfile", "-t", IMAGE, ROOT, timeout=600)
    return IMAGE


def test_the_image_runs_as_portside_on_port_5000_with_its_data_in_a_volume(image_engine: Dockerd, image: str) -> None:
    config: dict[str, Any] = json.loads(
        docker(image_engine, "image", "inspect", "--format", "{{json .Config}}", image).stdout
    )
    assert config["User"] == "portside"
    assert list(config["ExposedPorts"]) == ["5000/tcp"]
    assert list(config["Volumes"]) == [DATA]
    assert config["Entrypoint"] == ["portside"] and config["Cmd"] == ["serve"]
    assert {"PORTSIDE_HOST=0.0.0.0", "PORTSIDE_PORT=5000", f"PORTSIDE_DATA_DIR={DATA}"} <= set(config["Env"])
    assert config["Healthcheck"]["Test"] == ["CMD", "python3", "/opt/portside/healthcheck.py"]
    assert config["Labels"]["org.opencontainers.image.title"] == "Portside"
    assert config["Labels"]["org.opencontainers.image.base.name"] == BASE
    # The base is 123 MB, the venv under 200 MB: a budget, so that a heavy dependency is a decision.
    size = int(docker(image_engine, "image", "inspect", "--format", "{{.Size}}", image).stdout)
    assert size < 350_000_000, f"the image grew to {size / 1e6:.0f} MB"
    # Only the venv left the build stage: no pip or setuptools in it, no source tree beside it.
    listing = docker(
        image_engine,
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "id -u; ls /opt/portside/lib/python3.11/site-packages; test ! -e /src && echo no-src",
    ).stdout.split()
    assert listing[0] == "10001"
    assert "portside" in listing and "pip" not in listing and "setuptools" not in listing
    assert listing[-1] == "no-src"


@dataclass
class Container:
    name: str
    port: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def volume(image_engine: Dockerd) -> Iterator[str]:
    name = f"portside-image-test-{os.getpid()}"
    docker(image_engine, "volume", "create", name)
    yield name
    docker(image_engine, "volume", "rm", "--force", name, check=False)


def start(engine: Dockerd, image: str, volume: str, name: str) -> Container:
    """`docker run -d -p 127.0.0.1:PORT:5000 -v VOLUME:/var/lib/portside`, healthcheck every second."""
    container = Container(name, free_port())
    docker(
        engine,
        "run",
        "-d",
        "--name",
        name,
        "-p",
        f"{container.host}:5000",
        "-v",
        f"{volume}:{DATA}",
        "--health-interval",
        "1s",
        "--health-start-period",
        "0s",
        image,
    )
    return container


def wait_healthy(engine: Dockerd, container: Container, timeout: float = 60) -> None:
    """/healthz through the published port, then docker's own verdict from the image's HEALTHCHECK."""
    deadline = time.monotonic() + timeout
    status = "none"
    while time.monotonic() < deadline:
        try:
            answered = httpx.get(f"http://{container.host}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            answered = False
        status = docker(engine, "inspect", "--format", "{{.State.Health.Status}}", container.name).stdout.strip()
        if answered and status == "healthy":
            return
        time.sleep(0.5)
    logs = docker(engine, "logs", container.name, check=False)
    pytest.fail(f"{container.name} not healthy within {timeout}s (health: {status}):\n{logs.describe()}")


def stop_and_remove(engine: Dockerd, name: str) -> None:
    """Keep the container's output in test-output/logs, then remove it."""
    logs = docker(engine, "logs", name, check=False)
    log = OUTPUT / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(logs.stdout + logs.stderr, encoding="utf-8")
    docker(engine, "rm", "--force", name, check=False)


@pytest.fixture
def containers(image_engine: Dockerd) -> Iterator[list[str]]:
    """Names of the containers a test starts; each is stopped and removed at the end, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        stop_and_remove(image_engine, name)


def skopeo_digest(reference: str, user: str, token: str) -> str:
    args = ["skopeo", "inspect", "--tls-verify=false", "--creds", f"{user}:{token}", "--format", "{{.Digest}}"]
    return run([*args, reference]).stdout.strip()


def busybox_context(directory: Path) -> Path:
    """A tiny runnable image to push: busybox-static and one RUN step."""
    directory.mkdir()
    shutil.copy(require("busybox"), directory / "busybox")
    (directory / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "RUN echo pushed-through-the-portside-image > /hello.txt\n"
        'CMD ["/bin/cat", "/hello.txt"]\n',
        encoding="utf-8",
    )
    return directory


def test_docker_run_p_then_push_and_pull_by_digest_and_keep_it_across_a_new_container(
    image_engine: Dockerd, image: str, volume: str, containers: list[str], tmp_path: Path
) -> None:
    first_name = f"portside-image-test-{os.getpid()}-1"
    containers.append(first_name)
    first = start(image_engine, image, volume, first_name)
    wait_healthy(image_engine, first)

    # The first admin: printed once to the log (`docker logs`), kept in the volume (`docker exec`).
    credentials = docker(image_engine, "exec", first.name, "cat", f"{DATA}/initial-admin-credentials").stdout
    fields = dict(line.split(": ", 1) for line in credentials.splitlines())
    user, token = fields["user"], fields["token"]
    assert user == "admin" and token.startswith("psp_")
    logs = docker(image_engine, "logs", first.name)
    assert token in logs.stderr
    # It names an address to connect to, not the 0.0.0.0 it listens on.
    assert "docker login 127.0.0.1:5000 -u admin" in logs.stderr

    # The CLI runs beside the server, on the same data, as the docs say.
    docker(image_engine, "exec", first.name, "portside", "user", "create", "alice")
    alice = docker(
        image_engine, "exec", first.name, "portside", "token", "create", "--user", "alice", "--scopes", "read:packages"
    ).stdout.strip()
    assert alice.startswith("psp_")

    # docker, the engine beside it, pushes through the published port and pulls back by digest.
    run(["docker", "login", "-u", user, "--password-stdin", first.host], env=image_engine.env, stdin=token.encode())
    reference = f"{first.host}/admin/hello-container:v1"
    docker(image_engine, "build", "-t", reference, busybox_context(tmp_path / "ctx"))
    pushed = docker(image_engine, "push", reference).stdout
    match = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", pushed)
    assert match, f"no digest in docker push output:\n{pushed}"
    digest = match[1]
    # An independent client sees the same digest under the tag.
    assert skopeo_digest(f"docker://{reference}", user, token) == digest
    docker(image_engine, "rmi", reference)
    by_digest = f"{first.host}/admin/hello-container@{digest}"
    docker(image_engine, "pull", by_digest)
    assert docker(image_engine, "run", "--rm", by_digest).stdout == "pushed-through-the-portside-image\n"
    docker(image_engine, "rmi", by_digest)

    # docker stop sends SIGTERM to `portside serve` (PID 1): it must exit by itself, not be killed at 10 s.
    started = time.monotonic()
    docker(image_engine, "stop", first.name)
    assert time.monotonic() - started < 8
    assert docker(image_engine, "inspect", "--format", "{{.State.ExitCode}}", first.name).stdout.strip() == "0"

    # An upgrade is a new container on the same volume: the image and the admin's token are still there,
    # and no second admin is made.
    second_name = f"portside-image-test-{os.getpid()}-2"
    containers.append(second_name)
    second = start(image_engine, image, volume, second_name)
    wait_healthy(image_engine, second)
    assert "Created the site admin" not in docker(image_engine, "logs", second.name).stderr
    assert skopeo_digest(f"docker://{second.host}/admin/hello-container:v1", user, token) == digest
    # alice's token, made by the CLI in the first container, signs in to the second.
    login = ["skopeo", "login", "--tls-verify=false", "--authfile", tmp_path / "auth.json", "-u", "alice"]
    assert "Login Succeeded" in run([*login, "--password-stdin", second.host], stdin=alice.encode()).stdout
