"""Real GitHub API clients against Portside's /api/v3: githubkit, PyGithub, and the docker engine.

githubkit validates every answer against GitHub's published schema (its pydantic models), so these
tests also check that Portside's JSON is what GitHub's own clients accept. PyGithub has no typed
package calls: scripts use its requester, and its PaginatedList follows the Link headers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import github
import httpx
import pytest
from github.GithubObject import NonCompletableGithubObject
from github.PaginatedList import PaginatedList
from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import RequestFailed
from sqlalchemy import Connection

from portside.access import accounts
from tests.e2e.test_docker import docker, push
from tests.support.blobs import digest_of, image_manifest, push_blob
from tests.support.commands import run_failing
from tests.support.dockerd import Dockerd
from tests.support.server import Server, running_server

pytestmark = pytest.mark.e2e

FULL = ("read:packages", "write:packages", "delete:packages")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DESCRIPTION = "org.opencontainers.image.description"
LICENSES = "org.opencontainers.image.licenses"


@dataclass
class Site:
    server: Server
    admin: httpx.Client  # the bootstrap site admin on /v2, for pushes and pulls
    tokens: dict[str, str]  # "user" or "user:read" -> personal access token

    def push(self, package: str, tag: str, seed: str, labels: dict[str, str] | None = None) -> str:
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "config": {"Labels": labels or {}}, "seed": seed}
        ).encode()
        layer = f"layer {package} {seed}".encode()
        push_blob(self.admin, package, config)
        push_blob(self.admin, package, layer)
        manifest = image_manifest(config, [layer])
        response = self.admin.put(
            f"/v2/{package}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert response.status_code == 201, response.text
        return digest_of(manifest)

    def pull(self, package: str, reference: str) -> httpx.Response:
        return self.admin.get(f"/v2/{package}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})

    def githubkit(self, who: str) -> GitHub[Any]:
        return GitHub(TokenAuthStrategy(self.tokens[who]), base_url=f"{self.server.url}/api/v3/")

    def pygithub(self, who: str) -> github.Github:
        return github.Github(auth=github.Auth.Token(self.tokens[who]), base_url=f"{self.server.url}/api/v3")


def _people(conn: Connection) -> dict[str, str]:
    """kit owns the user namespace kit and the organization kitorg; member belongs to kitorg."""
    accounts.create_user(conn, "kit")
    accounts.create_user(conn, "member")
    accounts.create_org(conn, "kitorg", "kit")
    accounts.set_org_member(conn, "kitorg", "member", "member")
    return {
        "kit": accounts.create_token(conn, "kit", FULL)[0],
        "kit:read": accounts.create_token(conn, "kit", ("read:packages",))[0],
        "member": accounts.create_token(conn, "member", FULL)[0],
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    env = {"PORTSIDE_FSYNC": "false", "PORTSIDE_DOWNLOAD_FLUSH_SECONDS": "0.2"}
    with running_server(
        tmp_path_factory.mktemp("github-clients"), "github-clients", extra_args=["--workers", "1"], env=env
    ) as server:
        db = server.database()
        try:
            tokens = db.write_sync(_people)
        finally:
            db.close()
        with server.client() as admin:
            yield Site(server, admin, tokens)


def failed(call: Any, *args: Any, **kwargs: Any) -> RequestFailed:
    with pytest.raises(RequestFailed) as caught:
        call(*args, **kwargs)
    return caught.value


# -- githubkit --------------------------------------------------------------------------------------


def test_githubkit_lists_reads_deletes_and_restores_the_authenticated_users_packages(site: Site) -> None:
    app = f"app-{uuid.uuid4().hex[:6]}"
    nested = f"tools/cli-{uuid.uuid4().hex[:6]}"
    first = site.push(f"kit/{app}", "v1", "app-1", {DESCRIPTION: "first build", LICENSES: "MIT"})
    second = site.push(f"kit/{app}", "v2", "app-2")
    site.push(f"kit/{nested}", "latest", "cli")
    gh = site.githubkit("kit")
    packages = gh.rest.packages

    listed = packages.list_packages_for_authenticated_user(package_type="container").parsed_data
    by_name = {p.name: p for p in listed}
    assert {app, nested} <= set(by_name)
    assert by_name[app].package_type == "container"
    assert by_name[app].version_count == 2
    assert by_name[app].visibility == "private"
    assert by_name[app].owner is not None and by_name[app].owner.login == "kit"
    assert isinstance(by_name[app].created_at, datetime)
    assert packages.list_packages_for_authenticated_user(package_type="npm").parsed_data == []

    package = packages.get_package_for_authenticated_user("container", app).parsed_data
    assert (package.id, package.name) == (by_name[app].id, app)
    assert packages.get_package_for_authenticated_user("container", quote(nested, safe="")).parsed_data.name == nested

    versions = packages.get_all_package_versions_for_package_owned_by_authenticated_user("container", app).parsed_data
    assert [v.name for v in versions] == [second, first]
    old = versions[1]
    assert old.metadata and old.metadata.container and old.metadata.container.tags == ["v1"]
    assert (old.description, old.license_) == ("first build", "MIT")
    paged = list(
        gh.rest.paginate(
            packages.get_all_package_versions_for_package_owned_by_authenticated_user,
            package_type="container",
            package_name=app,
            per_page=1,
        )
    )
    assert [v.id for v in paged] == [v.id for v in versions]
    one = packages.get_package_version_for_authenticated_user("container", app, old.id).parsed_data
    assert one.name == first

    assert packages.delete_package_version_for_authenticated_user("container", app, old.id).status_code == 204
    assert site.pull(f"kit/{app}", first).status_code == 404
    deleted = packages.get_all_package_versions_for_package_owned_by_authenticated_user(
        "container", app, state="deleted"
    ).parsed_data
    assert [v.id for v in deleted] == [old.id]
    assert isinstance(deleted[0].deleted_at, datetime)
    assert packages.restore_package_version_for_authenticated_user("container", app, old.id).status_code == 204
    assert site.pull(f"kit/{app}", "v1").headers["docker-content-digest"] == first

    assert packages.delete_package_for_authenticated_user("container", app).status_code == 204
    assert site.pull(f"kit/{app}", "v2").json()["errors"][0]["code"] == "NAME_UNKNOWN"
    missing = failed(packages.get_package_for_authenticated_user, "container", app)
    assert missing.response.status_code == 404
    assert set(missing.response.json()) == {"message", "documentation_url"}
    assert app not in {
        p.name for p in packages.list_packages_for_authenticated_user(package_type="container").parsed_data
    }
    assert packages.restore_package_for_authenticated_user("container", app).status_code == 204
    assert packages.get_package_for_authenticated_user("container", app).parsed_data.version_count == 2
    assert site.pull(f"kit/{app}", "v2").headers["docker-content-digest"] == second


def test_githubkit_organization_and_user_calls_and_their_refusals(site: Site) -> None:
    name = f"svc-{uuid.uuid4().hex[:6]}"
    package = f"kitorg/{name}"
    digest = site.push(package, "v1", "svc-1")
    site.push(package, "v2", "svc-2")
    # githubkit's namespaces live only as long as their client: keep the clients.
    kit, someone = site.githubkit("kit"), site.githubkit("member")
    owner, member = kit.rest.packages, someone.rest.packages

    listed = owner.list_packages_for_organization("kitorg", package_type="container").parsed_data
    assert name in {p.name for p in listed}
    got = owner.get_package_for_organization("container", name, "kitorg").parsed_data
    assert got.owner is not None and got.owner.login == "kitorg" and got.owner.type == "Organization"
    versions = owner.get_all_package_versions_for_package_owned_by_org("container", name, "kitorg").parsed_data
    target = next(v for v in versions if v.name == digest)
    assert owner.get_package_version_for_organization("container", name, "kitorg", target.id).parsed_data.name == digest

    # A member may not see a private package of the organization; then may read it, but not delete it.
    assert failed(member.get_package_for_organization, "container", name, "kitorg").response.status_code == 404
    assert name not in {
        p.name for p in member.list_packages_for_organization("kitorg", package_type="container").parsed_data
    }
    db = site.server.database()
    try:
        db.write_sync(lambda conn: accounts.set_visibility(conn, package, "internal"))
    finally:
        db.close()
    assert member.get_package_for_organization("container", name, "kitorg").parsed_data.name == name
    refused = failed(member.delete_package_version_for_org, "container", name, "kitorg", target.id)
    assert refused.response.status_code == 403
    assert failed(member.delete_package_for_org, "container", name, "kitorg").response.status_code == 403
    # A token with read:packages alone cannot delete either, even the owner's.
    read_only = site.githubkit("kit:read")
    reader = read_only.rest.packages
    refused = failed(reader.delete_package_version_for_org, "container", name, "kitorg", target.id)
    assert refused.response.status_code == 403 and "delete:packages" in refused.response.json()["message"]
    assert site.pull(package, digest).status_code == 200

    assert owner.delete_package_version_for_org("container", name, "kitorg", target.id).status_code == 204
    assert site.pull(package, digest).status_code == 404
    assert owner.restore_package_version_for_org("container", name, "kitorg", target.id).status_code == 204
    assert site.pull(package, digest).status_code == 200
    assert failed(member.restore_package_for_org, "container", name, "kitorg").response.status_code == 403
    assert owner.delete_package_for_org("container", name, "kitorg").status_code == 204
    assert failed(member.restore_package_for_org, "container", name, "kitorg").response.status_code == 403
    assert owner.restore_package_for_org("container", name, "kitorg").status_code == 204
    assert site.pull(package, "v2").status_code == 200

    # The /users/{username} forms, as somebody else than the owner would use them.
    mine = f"mine-{uuid.uuid4().hex[:6]}"
    first = site.push(f"kit/{mine}", "v1", "mine")
    users = kit.rest.packages
    assert mine in {p.name for p in users.list_packages_for_user("kit", package_type="container").parsed_data}
    mine_owner = users.get_package_for_user("container", mine, "kit").parsed_data.owner
    assert mine_owner is not None and mine_owner.type == "User"
    (version,) = users.get_all_package_versions_for_package_owned_by_user("container", mine, "kit").parsed_data
    assert users.get_package_version_for_user("container", mine, version.id, "kit").parsed_data.name == first
    assert users.delete_package_version_for_user("container", mine, "kit", version.id).status_code == 204
    assert site.pull(f"kit/{mine}", first).status_code == 404
    assert users.restore_package_version_for_user("container", mine, "kit", version.id).status_code == 204
    assert users.delete_package_for_user("container", mine, "kit").status_code == 204
    assert users.restore_package_for_user("container", mine, "kit").status_code == 204
    assert site.pull(f"kit/{mine}", "v1").status_code == 200
    assert failed(member.get_package_for_user, "container", mine, "kit").response.status_code == 404


# -- PyGithub -----------------------------------------------------------------------------------------


class RawObject(NonCompletableGithubObject):
    """What PyGithub would make of one JSON object from a list: the object itself, in raw_data."""

    def _initAttributes(self) -> None:
        pass

    def _useAttributes(self, attributes: dict[str, Any]) -> None:
        pass


def test_pygithub_lists_pages_deletes_and_restores_versions(site: Site) -> None:
    name = f"py-{uuid.uuid4().hex[:6]}"
    digests = [site.push(f"kit/{name}", f"v{i}", f"py-{i}") for i in range(5)]
    g = site.pygithub("kit")
    requester = g.requester
    try:
        headers, listed = requester.requestJsonAndCheck(
            "GET", "/user/packages", parameters={"package_type": "container"}
        )
        assert headers["content-type"].startswith("application/json")
        assert name in {p["name"] for p in listed}
        _, package = requester.requestJsonAndCheck("GET", f"/user/packages/container/{name}")
        assert (package["name"], package["version_count"]) == (name, 5)

        # PaginatedList follows the Link headers, page after page.
        pages = PaginatedList(RawObject, requester, f"/user/packages/container/{name}/versions", {"per_page": 2})
        versions = [item.raw_data for item in pages]
        assert [v["name"] for v in versions] == list(reversed(digests))
        assert len({v["id"] for v in versions}) == 5

        oldest = versions[-1]
        path = f"/user/packages/container/{name}/versions/{oldest['id']}"
        requester.requestJsonAndCheck("DELETE", path)
        assert site.pull(f"kit/{name}", digests[0]).status_code == 404
        _, deleted = requester.requestJsonAndCheck(
            "GET", f"/user/packages/container/{name}/versions", parameters={"state": "deleted"}
        )
        assert [v["id"] for v in deleted] == [oldest["id"]]
        with pytest.raises(github.GithubException) as caught:
            requester.requestJsonAndCheck("DELETE", path)
        assert caught.value.status == 404
        requester.requestJsonAndCheck("POST", f"{path}/restore")
        assert site.pull(f"kit/{name}", "v0").headers["docker-content-digest"] == digests[0]

        with pytest.raises(github.UnknownObjectException):
            requester.requestJsonAndCheck("GET", "/user/packages/container/no-such-package")
        with pytest.raises(github.GithubException) as caught:
            requester.requestJsonAndCheck("GET", "/user/packages")
        assert caught.value.status == 400 and "package_type" in caught.value.data["message"]  # type: ignore[index]
    finally:
        g.close()


def test_pygithub_recognises_bad_credentials(site: Site) -> None:
    """PyGithub raises BadCredentialsException only for GitHub's exact message, "Bad credentials"."""
    stranger = github.Github(auth=github.Auth.Token("ghp_not_a_real_token"), base_url=f"{site.server.url}/api/v3")
    try:
        with pytest.raises(github.BadCredentialsException) as caught:
            stranger.requester.requestJsonAndCheck("GET", "/user/packages", parameters={"package_type": "container"})
        assert caught.value.status == 401
    finally:
        stranger.close()


# -- the docker engine ----------------------------------------------------------------------------------


def test_docker_pull_by_digest_fails_after_an_api_delete_and_works_after_restore(
    registry: Server, dockerd: Dockerd, tmp_path: Path
) -> None:
    name = f"gh-docker-{uuid.uuid4().hex[:8]}"
    image = f"{registry.host}/e2e/{name}"
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "hello.txt").write_text(f"hello from {name}\n", encoding="utf-8")
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY hello.txt /hello.txt\n"
        'LABEL org.opencontainers.image.description="built by docker" org.opencontainers.image.licenses=MIT\n',
        encoding="utf-8",
    )
    docker(dockerd, "build", "-t", f"{image}:v1", context)
    digest = push(dockerd, f"{image}:v1")
    docker(dockerd, "rmi", f"{image}:v1")

    _, token = registry.admin
    package = f"/api/v3/users/e2e/packages/container/{name}"
    api = httpx.Client(base_url=registry.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    with api:
        (version,) = [v for v in api.get(f"{package}/versions").json() if v["name"] == digest]
        assert version["metadata"]["container"]["tags"] == ["v1"]
        # The labels of the Dockerfile, read from the config docker pushed (Docker schema2).
        assert (version["description"], version["license"]) == ("built by docker", "MIT")
        assert version["portside"]["platform"] == "linux/amd64"
        assert api.delete(f"{package}/versions/{version['id']}").status_code == 204

        failure = run_failing(["docker", "pull", f"{image}@{digest}"], env=dockerd.env)
        assert re.search(r"manifest unknown|not found", failure.stderr, re.IGNORECASE), failure.describe()
        run_failing(["docker", "pull", f"{image}:v1"], env=dockerd.env)

        assert api.post(f"{package}/versions/{version['id']}/restore").status_code == 204
        docker(dockerd, "pull", f"{image}@{digest}")
        docker(dockerd, "rmi", f"{image}@{digest}")
        docker(dockerd, "pull", f"{image}:v1")
        docker(dockerd, "rmi", f"{image}:v1")

        # The whole package, the same way round.
        assert api.delete(package).status_code == 204
        failure = run_failing(["docker", "pull", f"{image}:v1"], env=dockerd.env)
        assert re.search(r"not found|name unknown|does not exist", failure.stderr, re.IGNORECASE), failure.describe()
        assert api.post(f"{package}/restore").status_code == 204
        pulled = docker(dockerd, "pull", f"{image}:v1")
        assert digest in pulled.stdout
        docker(dockerd, "rmi", f"{image}:v1")
