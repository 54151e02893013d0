"""Real clients signing in as ordinary users: docker login/push/pull, skopeo --creds, podman login.

The session's docker engine and containers environment are signed in as the site admin; these tests
keep their own logins (a DOCKER_CONFIG or auth file of their own), so the admin's never helps them.
dora is an ordinary user and a member of the organization auth-org; eve is another user.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection

from portside.access import accounts
from tests.support.commands import Result, run, run_failing
from tests.support.dockerd import Dockerd
from tests.support.images import ImageLayout
from tests.support.server import Server

pytestmark = pytest.mark.e2e

NO_TLS = "--tls-verify=false"


@dataclass(frozen=True)
class People:
    dora: str  # dora's personal access token (read and write)
    eve: str  # eve's


@pytest.fixture(scope="module")
def people(registry: Server) -> People:
    def create(conn: Connection) -> People:
        for user in ("auth-dora", "auth-eve"):
            accounts.create_user(conn, user)
        accounts.create_org(conn, "auth-org", "auth-eve")
        accounts.set_org_member(conn, "auth-org", "auth-dora", "member")
        scopes = ("read:packages", "write:packages")
        return People(
            accounts.create_token(conn, "auth-dora", scopes, note="e2e")[0],
            accounts.create_token(conn, "auth-eve", scopes, note="e2e")[0],
        )

    db = registry.database()
    try:
        return db.write_sync(create)
    finally:
        db.close()


def package(registry: Server, name: str) -> tuple[accounts.PackageInfo, list[tuple[str, str, str]]]:
    db = registry.database()
    try:
        return db.read_sync(accounts.get_package, name), db.read_sync(accounts.grants_of, name)
    finally:
        db.close()


# -- docker ---------------------------------------------------------------------------------------


class Docker:
    """The session's docker engine, driven with a DOCKER_CONFIG (and so a login) of the test's own."""

    def __init__(self, daemon: Dockerd, config: Path) -> None:
        config.mkdir(parents=True, exist_ok=True)
        self.env = {**daemon.env, "DOCKER_CONFIG": str(config)}

    def __call__(self, *args: str | Path) -> Result:
        return run(["docker", *args], env=self.env)

    def fails(self, *args: str | Path) -> Result:
        return run_failing(["docker", *args], env=self.env)

    def login(self, registry: Server, user: str, token: str) -> None:
        result = run(
            ["docker", "login", "-u", user, "--password-stdin", registry.host], env=self.env, stdin=token.encode()
        )
        assert "Login Succeeded" in result.stdout

    def push(self, reference: str) -> str:
        output = self("push", reference).stdout
        match = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", output)
        assert match, f"no digest in docker push output:\n{output}"
        return match[1]


@pytest.fixture
def docker(dockerd: Dockerd, tmp_path: Path) -> Docker:
    return Docker(dockerd, tmp_path / "docker-config")


def test_docker_login_push_to_own_namespace_and_to_an_organization(
    registry: Server, docker: Docker, people: People, scratch_context: Path
) -> None:
    docker.login(registry, "auth-dora", people.dora)
    config = json.loads(Path(docker.env["DOCKER_CONFIG"], "config.json").read_text())
    assert registry.host in config["auths"]

    own = f"{registry.host}/auth-dora/app:v1"
    docker("build", "-t", own, scratch_context)
    digest = docker.push(own)
    info, grants = package(registry, "auth-dora/app")
    assert (info.owner, info.visibility) == ("auth-dora", "private")  # the first push creates it, private
    assert ("user", "auth-dora", "admin") in grants

    in_org = f"{registry.host}/auth-org/app:v1"
    docker("tag", own, in_org)
    assert docker.push(in_org) == digest
    info, grants = package(registry, "auth-org/app")
    assert (info.owner, info.visibility) == ("auth-org", "private")
    assert ("user", "auth-dora", "admin") in grants

    # Pull back by digest, with the login.
    docker("rmi", own, in_org)
    docker("pull", f"{registry.host}/auth-dora/app@{digest}")
    docker("rmi", f"{registry.host}/auth-dora/app@{digest}")


def test_docker_push_to_another_users_namespace_is_denied_with_the_reason(
    registry: Server, docker: Docker, people: People, scratch_context: Path
) -> None:
    docker.login(registry, "auth-dora", people.dora)
    stolen = f"{registry.host}/auth-eve/stolen:v1"
    docker("build", "-t", stolen, scratch_context)
    try:
        failed = docker.fails("push", stolen)
    finally:
        docker("rmi", stolen)
    assert "denied: only auth-eve can publish packages to the auth-eve namespace" in failed.stdout + failed.stderr
    db = registry.database()
    try:
        assert db.read_sync(lambda conn: accounts.list_packages(conn, "auth-eve")) == []  # nothing was created
    finally:
        db.close()


def test_docker_pulls_after_logout_public_yes_private_no(
    registry: Server, dockerd: Dockerd, people: People, scratch_context: Path, tmp_path: Path
) -> None:
    eve = Docker(dockerd, tmp_path / "eve-config")
    eve.login(registry, "auth-eve", people.eve)
    public, secret = f"{registry.host}/auth-eve/public", f"{registry.host}/auth-eve/secret"
    eve("build", "-t", f"{public}:v1", scratch_context)
    eve("tag", f"{public}:v1", f"{secret}:v1")
    digest = eve.push(f"{public}:v1")
    eve.push(f"{secret}:v1")
    registry.cli("package", "visibility", "auth-eve/public", "public")
    eve("rmi", f"{public}:v1", f"{secret}:v1")

    assert "Removing login credentials" in eve("logout", registry.host).stdout
    assert registry.host not in json.loads(Path(eve.env["DOCKER_CONFIG"], "config.json").read_text())["auths"]
    eve("pull", f"{public}:v1")
    eve("pull", f"{public}@{digest}")
    eve("rmi", f"{public}:v1")  # and with it the digest reference: one image

    # The engine words a refused pull itself (as for Docker Hub), whatever the registry's message.
    denied = eve.fails("pull", f"{secret}:v1")
    assert (
        f"pull access denied for {secret}, repository does not exist or may require 'docker login'" in denied.stderr
    ), denied.describe()

    # Signed in as someone without a role, the private package does not exist, as far as they know.
    dora = Docker(dockerd, tmp_path / "dora-config")
    dora.login(registry, "auth-dora", people.dora)
    hidden = dora.fails("pull", f"{secret}:v1")
    assert "repository auth-eve/secret not found" in hidden.stdout + hidden.stderr, hidden.describe()
    registry.cli("package", "grant", "auth-eve/secret", "--user", "auth-dora", "--role", "read")
    dora("pull", f"{secret}:v1")
    dora("rmi", f"{secret}:v1")


# -- skopeo and podman ----------------------------------------------------------------------------


@pytest.fixture
def own_auth(containers_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The containers environment with an auth file of the test's own instead of the admin's."""
    return {**containers_env, "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}


def test_skopeo_with_creds_and_a_denied_one(
    registry: Server, own_auth: dict[str, str], people: People, image_layout: ImageLayout
) -> None:
    remote = f"docker://{registry.host}/auth-dora/skopeo:v1"
    dora, eve = f"auth-dora:{people.dora}", f"auth-eve:{people.eve}"
    run(
        ["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", dora, image_layout.ref("v1"), remote],
        env=own_auth,
    )
    inspected = run(["skopeo", "inspect", NO_TLS, "--creds", dora, "--format", "{{.Digest}}", remote], env=own_auth)
    assert inspected.stdout.strip() == image_layout.amd64.manifest_digest

    hidden = run_failing(["skopeo", "inspect", NO_TLS, "--creds", eve, remote], env=own_auth)
    assert "repository auth-dora/skopeo not found" in hidden.stderr, hidden.describe()
    # Pushing to dora's private package: it does not exist, as far as eve knows.
    copy = ["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", eve, image_layout.ref("v1")]
    pushed = run_failing([*copy, remote], env=own_auth)
    assert "name unknown: repository auth-dora/skopeo not found" in pushed.stderr, pushed.describe()
    # Creating a package in dora's namespace: only dora may.
    created = run_failing([*copy, f"docker://{registry.host}/auth-dora/from-eve:v1"], env=own_auth)
    assert "denied: only auth-dora can publish packages to the auth-dora namespace" in created.stderr, (
        created.describe()
    )
    wrong = run_failing(["skopeo", "inspect", NO_TLS, "--creds", "auth-dora:not-my-token", remote], env=own_auth)
    assert "the registry accepts personal access tokens, not passwords" in wrong.stderr, wrong.describe()


def test_podman_login_push_pull_and_logout(
    registry: Server, own_auth: dict[str, str], people: People, scratch_context: Path, tmp_path: Path
) -> None:
    authfile = tmp_path / "podman-auth.json"
    name = f"{registry.host}/auth-dora/podman"

    def podman(*args: str | Path) -> Result:
        return run(["podman", *args], env=own_auth)

    login = run(
        ["podman", "login", NO_TLS, "--authfile", authfile, "-u", "auth-dora", "--password-stdin", registry.host],
        env=own_auth,
        stdin=people.dora.encode(),
    )
    assert "Login Succeeded" in login.stdout
    assert registry.host in json.loads(authfile.read_text())["auths"]
    podman("build", "-t", f"{name}:v1", scratch_context)
    podman("push", NO_TLS, "--authfile", authfile, "--digestfile", tmp_path / "digest", f"{name}:v1")
    digest = (tmp_path / "digest").read_text().strip()
    assert package(registry, "auth-dora/podman")[0].visibility == "private"
    podman("rmi", f"{name}:v1")
    podman("pull", NO_TLS, "--authfile", authfile, f"{name}@{digest}")
    podman("rmi", f"{name}@{digest}")

    podman("logout", "--authfile", authfile, registry.host)
    denied = run_failing(["podman", "pull", NO_TLS, "--authfile", authfile, f"{name}:v1"], env=own_auth)
    assert "authentication required to pull auth-dora/podman" in denied.stderr, denied.describe()
