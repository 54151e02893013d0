"""The GitHub-compatible packages REST API (/api/v3) over real HTTP.

One server for the module, with these people (set up in its database, as the CLI would):

    alice   owns the user namespace alice
    olga    owns the organizations acme and listco
    mike    is a member of acme and listco
    rita    is granted read, wanda write, adam admin on the packages made by `Api.package`
    oscar   belongs to nothing and is granted nothing
    sam     is a site admin
    lena, paige  own user namespaces used by the listing and paging tests

Every user has tokens with the scopes in SCOPES; an actor is written `user:scope` (or `anonymous`).
The expected status of every permission case is written out by hand from GitHub's rules (reads: the
read:packages scope and the read role; deletes: delete:packages and admin; restores: write:packages
and admin, and for deleted packages the namespace's owner, an org owner or a site admin; private
packages are 404 to those who cannot read them), never computed from the server's policy code.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Connection, select, update

from portside.access import accounts
from portside.clock import now
from portside.metadata.database import Database
from portside.metadata.schema import manifests, repositories
from tests.support.blobs import (
    Pushed,
    digest_of,
    image_manifest,
    push_blob,
    push_labelled_image,
    push_platform_index,
    put_manifest,
)
from tests.support.github import assert_github_error as assert_error
from tests.support.server import Server, no_server_error, running_server

FULL = "read:packages,write:packages,delete:packages"
SCOPES = {
    "all": FULL,
    "R": "read:packages",
    "RW": "read:packages,write:packages",
    "RD": "read:packages,delete:packages",
    "D": "delete:packages",
}
USERS = ("alice", "olga", "mike", "rita", "wanda", "adam", "oscar", "sam", "lena", "paige")
ORGS = ("acme", "listco")
GRANTS = {"rita": "read", "wanda": "write", "adam": "admin"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ENV = {
    "PORTSIDE_DOWNLOAD_FLUSH_SECONDS": "0.2",
    "PORTSIDE_FSYNC": "false",
    # A few tests present bad credentials on purpose: keep them from locking out 127.0.0.1.
    "PORTSIDE_AUTH_MAX_FAILURES": "1000",
}


# -- the scenario ---------------------------------------------------------------------------------


@dataclass
class Api:
    server: Server
    tokens: dict[tuple[str, str], str]  # (user, scope name) -> personal access token
    http: httpx.Client  # no credentials of its own: every call names its actor
    admin: httpx.Client  # the bootstrap site admin, Basic auth, for /v2 pushes and pulls
    db: Database

    # -- calling the API -----------------------------------------------------------------------

    def auth(self, who: str) -> dict[str, str]:
        if who == "anonymous":
            return {}
        user, scope = who.split(":")
        return {"Authorization": f"Bearer {self.tokens[user, scope]}"}

    def call(self, method: str, path: str, who: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(who), **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, who: str = "sam:all", **kwargs: Any) -> httpx.Response:
        return self.call("GET", path, who, **kwargs)

    def ok(self, path: str, who: str = "sam:all", **kwargs: Any) -> Any:
        response = self.get(path, who, **kwargs)
        assert response.status_code == 200, f"GET {path} as {who}: {response.status_code} {response.text}"
        return response.json()

    def delete(self, path: str, who: str = "sam:all", **kwargs: Any) -> httpx.Response:
        return self.call("DELETE", path, who, **kwargs)

    def post(self, path: str, who: str = "sam:all", **kwargs: Any) -> httpx.Response:
        return self.call("POST", path, who, **kwargs)

    # -- set-up through the registry and the database -------------------------------------------

    def push(
        self,
        package: str,
        tag: str,
        *,
        seed: str,
        labels: dict[str, str] | None = None,
        architecture: str = "amd64",
        variant: str | None = None,
    ) -> Pushed:
        """An image whose config carries `labels` (config.Labels), pushed as `tag`."""
        return push_labelled_image(
            self.admin, package, tag, seed=seed, labels=labels, architecture=architecture, variant=variant
        )

    def push_index(
        self, package: str, tag: str, children: list[tuple[Pushed, str]], annotations: dict[str, str] | None = None
    ) -> Pushed:
        return push_platform_index(self.admin, package, tag, children, annotations)

    def put(self, package: str, reference: str, pushed: Pushed) -> None:
        put_manifest(self.admin, package, reference, pushed)

    def pull(self, package: str, reference: str, method: str = "GET") -> httpx.Response:
        accept = f"{OCI_MANIFEST}, {OCI_INDEX}"
        return self.admin.request(method, f"/v2/{package}/manifests/{reference}", headers={"Accept": accept})

    def tags(self, package: str) -> list[str]:
        response = self.admin.get(f"/v2/{package}/tags/list")
        assert response.status_code == 200, response.text
        return sorted(response.json()["tags"] or [])

    def package(self, owner: str, prefix: str, visibility: str = "private", *, seed: str | None = None) -> str:
        """A new package OWNER/PREFIX-<random> with one version tagged v1, and the usual grants."""
        name = f"{owner}/{prefix}-{uuid.uuid4().hex[:8]}"
        self.push(name, "v1", seed=seed or name)
        self.setup(name, visibility)
        return name

    def setup(self, name: str, visibility: str = "private", grants: dict[str, str] | None = None) -> None:
        def change(conn: Connection) -> None:
            accounts.set_visibility(conn, name, visibility)
            for user, role in (GRANTS if grants is None else grants).items():
                accounts.grant(conn, name, role, user=user)

        self.db.write_sync(change)

    # -- paths and lookups ---------------------------------------------------------------------

    @staticmethod
    def path(package: str, *rest: str) -> str:
        """The API path of a package (its /orgs/ or /users/ form), with more segments after it."""
        owner, name = package.split("/", 1)
        kind = "orgs" if owner in ORGS else "users"
        return "/".join([f"/api/v3/{kind}/{owner}/packages/container/{quote(name, safe='')}", *rest])

    def versions(self, package: str, state: str = "active", who: str = "sam:all") -> list[dict[str, Any]]:
        return self.ok(self.path(package, "versions"), who, params={"state": state, "per_page": 100})

    def version(self, package: str, digest: str, state: str = "active") -> dict[str, Any]:
        found = [v for v in self.versions(package, state) if v["name"] == digest]
        assert len(found) == 1, f"{digest} is not among the {state} versions of {package}"
        return found[0]

    def version_path(self, package: str, digest: str, *rest: str) -> str:
        return self.path(package, "versions", str(self.version(package, digest)["id"]), *rest)


def _accounts(conn: Connection) -> dict[tuple[str, str], str]:
    for user in USERS:
        accounts.create_user(conn, user, admin=user == "sam")
    for org in ORGS:
        accounts.create_org(conn, org, "olga")
        accounts.set_org_member(conn, org, "mike", "member")
    return {
        (user, scope): accounts.create_token(conn, user, accounts.parse_scopes(value), note=f"api {scope}")[0]
        for user in USERS
        for scope, value in SCOPES.items()
    }


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_server(
        tmp_path_factory.mktemp("packages-api"), "packages-api", extra_args=["--workers", "1"], env=dict(ENV)
    ) as server:
        db = server.database()
        try:
            tokens = db.write_sync(_accounts)
            hooks = {"response": [no_server_error]}
            with (
                httpx.Client(base_url=server.url, timeout=60, event_hooks=hooks) as http,
                server.client(event_hooks=hooks) as admin,
            ):
                yield Api(server, tokens, http, admin, db)
        finally:
            db.close()


def assert_outcome(response: httpx.Response, expected: int, label: str) -> None:
    """`expected` is the status; a refusal must also have GitHub's error shape."""
    if expected >= 400:
        assert_error(response, expected)
    else:
        assert response.status_code == expected, f"{label}: {response.status_code} {response.text}"


# -- authentication -------------------------------------------------------------------------------


def test_every_endpoint_refuses_anonymous_callers_with_401(api: Api) -> None:
    package = api.package("acme", "anon", "public")
    version = str(api.version(package, api.pull(package, "v1").headers["docker-content-digest"])["id"])
    paths = [
        ("GET", "/api/v3/user/packages?package_type=container"),
        ("GET", "/api/v3/users/alice/packages?package_type=container"),
        ("GET", "/api/v3/orgs/acme/packages?package_type=container"),
        ("GET", "/api/v3/user/packages"),  # 401 comes before the missing package_type
        ("GET", api.path(package)),
        ("DELETE", api.path(package)),
        ("POST", api.path(package, "restore")),
        ("GET", api.path(package, "versions")),
        ("GET", api.path(package, "versions", version)),
        ("DELETE", api.path(package, "versions", version)),
        ("POST", api.path(package, "versions", version, "restore")),
    ]
    for method, path in paths:
        message = assert_error(api.call(method, path, "anonymous"), 401)
        assert "authentication" in message.lower(), (method, path, message)
    # Nothing was deleted by all that.
    assert api.pull(package, "v1").status_code == 200


def test_bearer_token_and_basic_credentials_are_accepted_and_bad_ones_get_401(api: Api) -> None:
    package = api.package("alice", "schemes")
    token = api.tokens["alice", "R"]
    basic = httpx.BasicAuth("alice", token)
    for headers, auth in (
        ({"Authorization": f"Bearer {token}"}, None),
        ({"Authorization": f"token {token}"}, None),
        ({}, basic),
    ):
        response = api.http.get(api.path(package), headers=headers, auth=auth)
        assert response.status_code == 200, (headers, response.text)
        assert response.json()["name"] == package.split("/", 1)[1]

    assert_error(
        api.http.get(api.path(package), headers={"Authorization": "Bearer not-a-token"}), 401, "Bad credentials"
    )
    # A real token under somebody else's user name.
    wrong_user = api.http.get(api.path(package), auth=httpx.BasicAuth("oscar", token))
    assert_error(wrong_user, 401, "Bad credentials")
    assert_error(api.http.get(api.path(package), headers={"Authorization": "Basic !!!"}), 401, "Bad credentials")

    secret, info = api.db.write_sync(lambda conn: accounts.create_token(conn, "alice", ("read:packages",)))
    assert api.http.get(api.path(package), headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    api.db.write_sync(lambda conn: accounts.revoke_token(conn, info.id))
    assert_error(api.http.get(api.path(package), headers={"Authorization": f"Bearer {secret}"}), 401, "revoked")


def test_repeated_bad_credentials_are_answered_429_with_retry_after(tmp_path: Any) -> None:
    env = {**ENV, "PORTSIDE_AUTH_MAX_FAILURES": "2"}
    with (
        running_server(tmp_path, "packages-api-ratelimit", extra_args=["--workers", "1"], env=env) as server,
        httpx.Client(base_url=server.url, event_hooks={"response": [no_server_error]}) as http,
    ):
        url = "/api/v3/user/packages?package_type=container"
        for _ in range(2):
            assert_error(http.get(url, headers={"Authorization": "Bearer wrong"}), 401, "Bad credentials")
        limited = http.get(url, headers={"Authorization": "Bearer wrong"})
        assert_error(limited, 429, "too many failed sign-in attempts")
        assert int(limited.headers["retry-after"]) > 0


# -- permissions ----------------------------------------------------------------------------------

# The four packages of a permission case, in the order of the columns below.
KINDS = (("acme", "private"), ("acme", "internal"), ("acme", "public"), ("alice", "private"))

# GET package, GET its versions, GET one version.   acme-private  acme-internal  acme-public  alice-private
READS = {
    "anonymous": (401, 401, 401, 401),
    "alice:all": (404, 404, 200, 200),
    "olga:all": (200, 200, 200, 404),
    "olga:RW": (200, 200, 200, 404),  # write:packages implies read:packages
    "olga:D": (403, 403, 403, 404),  # no read:packages; alice's private package stays hidden
    "mike:all": (404, 200, 200, 404),
    "rita:R": (200, 200, 200, 200),
    "rita:D": (403, 403, 403, 403),
    "wanda:R": (200, 200, 200, 200),
    "adam:R": (200, 200, 200, 200),
    "oscar:all": (404, 404, 200, 404),
    "oscar:D": (404, 404, 403, 404),
    "sam:R": (200, 200, 200, 200),
}

# DELETE a package, or DELETE its only version.
DELETES = {
    "anonymous": (401, 401, 401, 401),
    "alice:all": (404, 404, 403, 204),
    "olga:all": (204, 204, 204, 404),
    "olga:RD": (204, 204, 204, 404),
    "olga:RW": (403, 403, 403, 404),  # no delete:packages
    "olga:D": (403, 403, 403, 404),  # GitHub wants read:packages too
    "mike:all": (404, 403, 403, 404),
    "rita:all": (403, 403, 403, 403),
    "wanda:all": (403, 403, 403, 403),
    "adam:RD": (204, 204, 204, 204),
    "adam:RW": (403, 403, 403, 403),
    "oscar:all": (404, 404, 403, 404),
    "sam:all": (204, 204, 204, 204),
}

# POST .../restore of a deleted package.     acme/...  alice/...
RESTORES = {
    "anonymous": (401, 401),
    "olga:all": (204, 403),
    "olga:RW": (204, 403),
    "olga:RD": (403, 403),  # no write:packages
    "alice:all": (403, 204),
    "alice:RD": (403, 403),
    "mike:all": (403, 403),  # a member, not an owner
    "adam:all": (403, 403),  # admin of the package, but not of the namespace
    "oscar:all": (403, 403),
    "sam:all": (204, 204),
}

# POST .../versions/ID/restore of a deleted version.   acme-private  acme-internal  alice-private
VERSION_RESTORES = {
    "anonymous": (401, 401, 401),
    "olga:all": (204, 204, 404),
    "olga:RD": (403, 403, 404),
    "alice:all": (404, 404, 204),
    "mike:all": (404, 403, 404),
    "rita:all": (403, 403, 403),
    "wanda:all": (403, 403, 403),
    "adam:RW": (204, 204, 204),
    "adam:RD": (403, 403, 403),
    "oscar:all": (404, 404, 404),
    "sam:all": (204, 204, 204),
}


@pytest.fixture(scope="module")
def read_packages(api: Api) -> list[tuple[str, Pushed]]:
    made = []
    for owner, visibility in KINDS:
        name = f"{owner}/read-{visibility}"
        pushed = api.push(name, "v1", seed=name)
        api.setup(name, visibility)
        made.append((name, pushed))
    return made


def test_the_permission_tables_cover_the_actors() -> None:
    for table in (READS, DELETES, RESTORES, VERSION_RESTORES):
        assert "anonymous" in table
        assert {who.split(":")[0] for who in table if who != "anonymous"} >= {"olga", "mike", "oscar", "sam"}
    assert {who.split(":")[0] for who in DELETES} >= {"rita", "wanda", "adam", "alice"}


@pytest.mark.parametrize("who", READS)
def test_reading_packages_and_versions_needs_the_read_role_and_read_scope(
    api: Api, read_packages: list[tuple[str, Pushed]], who: str
) -> None:
    for (package, pushed), expected in zip(read_packages, READS[who], strict=True):
        version_id = api.version(package, pushed.digest)["id"]
        answers = {
            "package": api.get(api.path(package), who),
            "versions": api.get(api.path(package, "versions"), who),
            "version": api.get(api.path(package, "versions", str(version_id)), who),
        }
        for what, response in answers.items():
            assert_outcome(response, expected, f"{who} GET {what} of {package}")
            if expected == 403 and who.endswith(":D"):
                assert "read:packages" in response.json()["message"]
        if expected == 200:
            assert answers["package"].json()["name"] == package.split("/", 1)[1]
            assert [v["name"] for v in answers["versions"].json()] == [pushed.digest]
            assert answers["version"].json()["id"] == version_id
            assert answers["version"].json()["metadata"]["container"]["tags"] == ["v1"]


def _refused_and_untouched(api: Api, package: str, pushed: Pushed, response: httpx.Response, expected: int) -> None:
    assert_outcome(response, expected, f"{response.request.method} {response.request.url}")
    assert api.pull(package, pushed.digest).status_code == 200


@pytest.mark.parametrize("who", DELETES)
def test_deleting_a_package_needs_the_admin_role_and_delete_scope(api: Api, who: str) -> None:
    for (owner, visibility), expected in zip(KINDS, DELETES[who], strict=True):
        package = api.package(owner, "del", visibility)
        pushed = Pushed(api.pull(package, "v1").headers["docker-content-digest"], b"")
        response = api.delete(api.path(package), who)
        if expected != 204:
            _refused_and_untouched(api, package, pushed, response, expected)
            if expected == 403 and who == "olga:RW":
                assert "delete:packages" in response.json()["message"]
            continue
        assert response.status_code == 204, f"{who} DELETE {package}: {response.text}"
        assert response.content == b""
        assert api.pull(package, "v1").status_code == 404
        assert_error(api.get(api.path(package)), 404)


@pytest.mark.parametrize("who", DELETES)
def test_deleting_a_version_needs_the_admin_role_and_delete_scope(api: Api, who: str) -> None:
    for (owner, visibility), expected in zip(KINDS, DELETES[who], strict=True):
        package = api.package(owner, "delv", visibility)
        pushed = Pushed(api.pull(package, "v1").headers["docker-content-digest"], b"")
        response = api.delete(api.version_path(package, pushed.digest), who)
        if expected != 204:
            _refused_and_untouched(api, package, pushed, response, expected)
            continue
        assert response.status_code == 204, f"{who} DELETE version of {package}: {response.text}"
        assert api.pull(package, pushed.digest).status_code == 404
        assert api.versions(package) == []


@pytest.mark.parametrize("who", RESTORES)
def test_restoring_a_package_needs_write_scope_and_to_be_a_namespace_admin(api: Api, who: str) -> None:
    for owner, expected in zip(("acme", "alice"), RESTORES[who], strict=True):
        package = api.package(owner, "res")
        assert api.delete(api.path(package)).status_code == 204
        response = api.post(api.path(package, "restore"), who)
        assert_outcome(response, expected, f"{who} restore {package}")
        assert api.pull(package, "v1").status_code == (200 if expected == 204 else 404)
        if expected == 403:
            # The refusal is the same for a name that never existed: it tells nothing about what was there.
            never_name = f"{owner}/never-{uuid.uuid4().hex[:8]}"
            never = assert_error(api.post(api.path(never_name, "restore"), who), 403)
            assert never.replace(never_name, "NAME") == response.json()["message"].replace(package, "NAME")


@pytest.mark.parametrize("who", VERSION_RESTORES)
def test_restoring_a_version_needs_write_scope_and_the_admin_role(api: Api, who: str) -> None:
    kinds = (("acme", "private"), ("acme", "internal"), ("alice", "private"))
    for (owner, visibility), expected in zip(kinds, VERSION_RESTORES[who], strict=True):
        package = api.package(owner, "resv", visibility)
        digest = api.pull(package, "v1").headers["docker-content-digest"]
        path = api.version_path(package, digest)
        assert api.delete(path).status_code == 204
        response = api.post(f"{path}/restore", who)
        assert_outcome(response, expected, f"{who} restore a version of {package}")
        assert api.pull(package, digest).status_code == (200 if expected == 204 else 404)
        # Listing deleted versions takes the same rights as restoring them.
        listed = api.get(api.path(package, "versions"), who, params={"state": "deleted"})
        if expected == 204:
            assert listed.status_code == 200 and listed.json() == [], listed.text
        else:
            assert_error(listed, expected)


def test_a_token_limited_to_other_packages_cannot_use_this_one(api: Api) -> None:
    package, other = api.package("acme", "only"), api.package("acme", "only-other")
    secret = api.db.write_sync(
        lambda conn: accounts.create_token(conn, "olga", tuple(FULL.split(",")), only=(other,))[0]
    )
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.http.get(api.path(other), headers=headers).status_code == 200
    assert_error(api.http.get(api.path(package), headers=headers), 403, "limited to")
    assert_error(api.http.delete(api.path(package), headers=headers), 403, "limited to")
    assert api.pull(package, "v1").status_code == 200
    listed = api.http.get("/api/v3/orgs/acme/packages", params={"package_type": "container"}, headers=headers)
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()] == [other.split("/", 1)[1]]


# -- listing packages -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listco(api: Api) -> None:
    """listco: priv (rita may read), int (internal), pub (public), gone (deleted)."""
    for name, visibility in (("priv", "private"), ("int", "internal"), ("pub", "public"), ("gone", "private")):
        api.push(f"listco/{name}", "v1", seed=f"listco-{name}")
        api.setup(f"listco/{name}", visibility, {"rita": "read"} if name == "priv" else {})
    assert api.delete(api.path("listco/gone")).status_code == 204
    api.push("lena/mine-pub", "v1", seed="lena-pub")
    api.setup("lena/mine-pub", "public", {})
    api.push("lena/mine-priv", "v1", seed="lena-priv")
    api.setup("lena/mine-priv", "private", {"rita": "read"})


LISTS = {
    "olga:all": ["int", "priv", "pub"],
    "olga:R": ["int", "priv", "pub"],
    "mike:all": ["int", "pub"],
    "rita:R": ["priv", "pub"],
    "wanda:R": ["pub"],
    "oscar:all": ["pub"],
    "sam:R": ["int", "priv", "pub"],
}
DELETED_LISTS = {"olga:all": 200, "olga:RW": 200, "sam:all": 200, "olga:RD": 403, "mike:all": 403, "oscar:all": 403}


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [p["name"] for p in response.json()]


@pytest.mark.parametrize("who", LISTS)
def test_an_organizations_list_shows_exactly_what_the_actor_can_read(api: Api, listco: None, who: str) -> None:
    listed = api.get("/api/v3/orgs/listco/packages", who, params={"package_type": "container"})
    assert names(listed) == LISTS[who]
    assert all(p["owner"]["login"] == "listco" and p["owner"]["type"] == "Organization" for p in listed.json())


def test_listing_filters_by_visibility_and_refuses_bad_parameters(api: Api, listco: None) -> None:
    url = "/api/v3/orgs/listco/packages"
    assert names(api.get(url, "olga:all", params={"package_type": "container", "visibility": "public"})) == ["pub"]
    assert names(api.get(url, "olga:all", params={"package_type": "container", "visibility": "internal"})) == ["int"]
    assert names(api.get(url, "olga:all", params={"package_type": "container", "visibility": "private"})) == ["priv"]
    assert_error(api.get(url, "olga:all", params={"package_type": "container", "visibility": "secret"}), 400)
    assert_error(api.get(url, "olga:all"), 400, "package_type")
    assert_error(api.get(url, "olga:all", params={"package_type": "container", "state": "gone"}), 400, "state")
    for other in ("npm", "maven", "docker"):
        listed = api.get(url, "olga:all", params={"package_type": other})
        assert listed.status_code == 200 and listed.json() == [], listed.text
    for path in ("/api/v3/orgs/nosuch/packages", "/api/v3/orgs/alice/packages", "/api/v3/users/listco/packages"):
        assert_error(api.get(path, "sam:all", params={"package_type": "container"}), 404)


def test_a_token_without_read_scope_cannot_list_packages(api: Api, listco: None) -> None:
    """GitHub answers 403 ("You need at least read:packages scope to list packages"), not an empty list."""
    for path in ("/api/v3/orgs/listco/packages", "/api/v3/users/lena/packages", "/api/v3/user/packages"):
        assert_error(api.get(path, "olga:D", params={"package_type": "container"}), 403, "read:packages")


@pytest.mark.parametrize("who", DELETED_LISTS)
def test_deleted_packages_are_listed_only_to_namespace_admins(api: Api, listco: None, who: str) -> None:
    params = {"package_type": "container", "state": "deleted"}
    listed = api.get("/api/v3/orgs/listco/packages", who, params=params)
    if DELETED_LISTS[who] == 403:
        assert_error(listed, 403)
        return
    assert names(listed) == ["gone"]
    gone = listed.json()[0]
    assert gone["portside"]["deleted_at"] is not None
    assert gone["version_count"] == 1
    # The active list never shows it.
    active = names(api.get("/api/v3/orgs/listco/packages", who, params={"package_type": "container"}))
    assert "gone" not in active


def test_user_namespaces_are_listed_by_owner_and_to_others(api: Api, listco: None) -> None:
    params = {"package_type": "container"}
    assert names(api.get("/api/v3/user/packages", "lena:R", params=params)) == ["mine-priv", "mine-pub"]
    assert names(api.get("/api/v3/users/lena/packages", "lena:R", params=params)) == ["mine-priv", "mine-pub"]
    assert names(api.get("/api/v3/users/lena/packages", "oscar:all", params=params)) == ["mine-pub"]
    assert names(api.get("/api/v3/users/lena/packages", "rita:R", params=params)) == ["mine-priv", "mine-pub"]
    assert names(api.get("/api/v3/users/lena/packages", "sam:R", params=params)) == ["mine-priv", "mine-pub"]
    assert names(api.get("/api/v3/user/packages", "oscar:all", params=params)) == []
    owner = api.get("/api/v3/user/packages", "lena:R", params=params).json()[0]["owner"]
    assert (owner["login"], owner["type"], owner["site_admin"]) == ("lena", "User", False)
    assert_error(api.get("/api/v3/users/nosuch/packages", "sam:R", params=params), 404)


# -- paging ---------------------------------------------------------------------------------------


def links(response: httpx.Response) -> dict[str, httpx.URL]:
    """rel -> URL from a Link header."""
    found = {}
    for part in filter(None, response.headers.get("link", "").split(",")):
        target, rel = part.split(";")
        found[rel.strip().removeprefix('rel="').removesuffix('"')] = httpx.URL(target.strip()[1:-1])
    return found


def test_package_lists_page_with_github_link_headers(api: Api) -> None:
    everything = [f"p{i}" for i in range(1, 6)]
    for name in everything:
        api.push(f"paige/{name}", "v1", seed=f"paige-{name}")
    url = "/api/v3/user/packages"
    first = api.get(url, "paige:R", params={"package_type": "container", "per_page": 2})
    assert names(first) == ["p1", "p2"]
    rels = links(first)
    assert set(rels) == {"next", "last"}
    assert rels["next"].params["page"] == "2" and rels["last"].params["page"] == "3"
    assert rels["next"].params["per_page"] == "2" and rels["next"].params["package_type"] == "container"

    seen, page = [], first
    while True:
        seen += names(page)
        if "next" not in links(page):
            break
        page = api.get(str(links(page)["next"]), "paige:R")
    assert seen == everything
    assert set(links(page)) == {"first", "prev"}
    assert links(page)["prev"].params["page"] == "2" and links(page)["first"].params["page"] == "1"

    middle = api.get(url, "paige:R", params={"package_type": "container", "per_page": 2, "page": 2})
    assert names(middle) == ["p3", "p4"] and set(links(middle)) == {"next", "last", "first", "prev"}
    beyond = api.get(url, "paige:R", params={"package_type": "container", "per_page": 2, "page": 4})
    assert names(beyond) == []
    one_page = api.get(url, "paige:R", params={"package_type": "container"})
    assert names(one_page) == everything and "link" not in one_page.headers


BAD_PAGES = [
    ("101", "100", "10000"),
    ("10001", "1", "10000"),
    ("0", "10", "page"),
    ("1", "0", "per_page"),
    ("1", "101", "per_page"),
    ("x", "10", "page"),
    ("1", "-3", "per_page"),
]


@pytest.mark.parametrize(("page", "per_page", "mention"), BAD_PAGES)
def test_paging_parameters_out_of_range_are_400(api: Api, page: str, per_page: str, mention: str) -> None:
    package = api.package("alice", "paging")
    for path, extra in (("/api/v3/user/packages", {"package_type": "container"}), (api.path(package, "versions"), {})):
        response = api.get(path, "alice:R", params={**extra, "page": page, "per_page": per_page})
        assert_error(response, 400, mention)
    # The largest window GitHub allows is fine.
    largest = {"package_type": "container", "page": 100, "per_page": 100}
    assert api.get("/api/v3/user/packages", "alice:R", params=largest).status_code == 200


def test_versions_page_newest_first_and_links_keep_the_state(api: Api) -> None:
    package = f"acme/tools/paged-{uuid.uuid4().hex[:8]}"  # a nested name: %2F in the path
    pushed = [api.push(package, f"t{i}", seed=f"paged-{i}") for i in range(7)]
    api.setup(package)
    path = api.path(package, "versions")
    assert "tools%2Fpaged" in path
    first = api.get(path, "olga:R", params={"per_page": 3})
    assert first.status_code == 200, first.text
    assert set(links(first)) == {"next", "last"}
    assert links(first)["last"].params["page"] == "3"
    seen, page = [], first
    while True:
        assert page.status_code == 200, page.text
        seen += page.json()
        if "next" not in links(page):
            break
        page = api.get(str(links(page)["next"]), "olga:R")
    assert [v["name"] for v in seen] == [p.digest for p in reversed(pushed)]
    assert len({v["id"] for v in seen}) == 7
    assert [v["metadata"]["container"]["tags"] for v in seen] == [[f"t{i}"] for i in reversed(range(7))]

    for p in pushed[:4]:
        assert api.delete(api.version_path(package, p.digest), "olga:all").status_code == 204
    deleted = api.get(path, "olga:all", params={"state": "deleted", "per_page": 3})
    assert len(deleted.json()) == 3 and set(links(deleted)) == {"next", "last"}
    assert links(deleted)["next"].params["state"] == "deleted"
    rest = api.get(str(links(deleted)["next"]), "olga:all")
    assert rest.status_code == 200 and len(rest.json()) == 1
    assert {v["name"] for v in deleted.json() + rest.json()} == {p.digest for p in pushed[:4]}
    assert [v["name"] for v in api.versions(package)] == [p.digest for p in reversed(pushed[4:])]


# -- shapes and lookups ---------------------------------------------------------------------------


def test_package_and_version_json_follow_githubs_shapes(api: Api) -> None:
    short = f"tools/shape-{uuid.uuid4().hex[:8]}"
    package = f"acme/{short}"
    pushed = api.push(package, "v1", seed="shape")
    api.put(package, "latest", pushed)
    api.setup(package)
    body = api.ok(api.path(package), "olga:R")
    assert body["name"] == short
    assert body["package_type"] == "container"
    assert body["visibility"] == "private"
    assert body["version_count"] == 1
    assert body["repository"] is None
    assert body["url"] == f"{api.server.url}/api/v3/orgs/acme/packages/container/{quote(short, safe='')}"
    assert body["owner"]["login"] == "acme" and body["owner"]["type"] == "Organization"
    assert isinstance(body["id"], int) and isinstance(body["owner"]["id"], int)
    for stamp in (body["created_at"], body["updated_at"]):
        assert time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    assert body["portside"]["visibility"] == "private" and body["portside"]["deleted_at"] is None
    # The url is a working self link, and the /orgs/ and /users/ forms do not mix.
    assert api.ok(body["url"], "olga:R")["id"] == body["id"]
    assert_error(api.get(f"/api/v3/users/acme/packages/container/{quote(short, safe='')}", "olga:R"), 404)
    assert_error(api.get(f"/api/v3/orgs/alice/packages/container/{quote(short, safe='')}", "olga:R"), 404)

    (version,) = api.ok(api.path(package, "versions"), "olga:R")
    assert version["name"] == pushed.digest
    assert version["metadata"] == {"package_type": "container", "container": {"tags": ["latest", "v1"]}}
    assert version["url"] == f"{body['url']}/versions/{version['id']}"
    assert api.ok(version["url"], "olga:R") == version
    assert version["portside"]["media_type"] == OCI_MANIFEST
    assert version["portside"]["size"] == len(pushed.manifest)
    assert version["portside"]["platform"] == "linux/amd64"
    assert version["portside"]["indexes"] == []
    assert "deleted_at" not in version and "description" not in version and "license" not in version

    internal = api.package("acme", "internal-shape", "internal")
    assert api.ok(api.path(internal), "olga:R")["visibility"] == "private"  # GitHub knows no "internal"
    assert api.ok(api.path(internal), "olga:R")["portside"]["visibility"] == "internal"
    public = api.package("alice", "public-shape", "public")
    assert api.ok(api.path(public), "alice:R")["visibility"] == "public"
    assert api.ok(api.path(public), "alice:R")["owner"]["type"] == "User"


def test_unknown_packages_versions_and_package_types_are_404(api: Api) -> None:
    package = api.package("acme", "lookups")
    other = api.package("acme", "lookups-other")
    other_id = api.versions(other)[0]["id"]
    digest = api.pull(package, "v1").headers["docker-content-digest"]
    mine = api.version(package, digest)["id"]
    short = quote(package.split("/", 1)[1], safe="")
    for path in (
        f"/api/v3/orgs/acme/packages/npm/{short}",
        f"/api/v3/orgs/acme/packages/docker/{short}/versions",
        f"/api/v3/orgs/acme/packages/maven/{short}/versions/{mine}",
        "/api/v3/orgs/acme/packages/container/no-such-package",
        "/api/v3/orgs/acme/packages/container/no-such-package/versions",
        "/api/v3/orgs/nosuch/packages/container/x",
        api.path(package, "versions", "999999"),
        api.path(package, "versions", str(other_id)),  # another package's version
    ):
        assert_error(api.get(path, "olga:all"), 404)
    assert_error(api.delete(f"/api/v3/orgs/acme/packages/npm/{short}", "olga:all"), 404)
    assert_error(api.delete(api.path(package, "versions", str(other_id)), "olga:all"), 404)
    assert_error(api.post(api.path(package, "versions", str(other_id), "restore"), "olga:all"), 404)
    assert api.pull(other, "v1").status_code == 200
    # Restoring what is not deleted, or deleting what already is.
    assert_error(api.post(api.path(package, "versions", str(mine), "restore"), "olga:all"), 404)
    assert_error(api.post(api.path(package, "restore"), "olga:all"), 404)
    assert api.delete(api.path(package, "versions", str(mine)), "olga:all").status_code == 204
    assert_error(api.delete(api.path(package, "versions", str(mine)), "olga:all"), 404)
    deleted = api.ok(api.path(package, "versions", str(mine)), "olga:all")
    assert deleted["deleted_at"] and deleted["metadata"]["container"]["tags"] == ["v1"]
    assert_error(api.get(api.path(package, "versions"), "olga:all", params={"state": "all"}), 400, "state")


def test_a_version_id_too_large_for_the_database_is_404(api: Api) -> None:
    package = api.package("acme", "huge-id")
    huge = api.path(package, "versions", "9" * 30)  # matches {version_id:int}, fits no database integer
    assert_error(api.get(huge, "olga:all"), 404)
    assert_error(api.delete(huge, "olga:all"), 404)
    assert_error(api.post(f"{huge}/restore", "olga:all"), 404)


# -- round trips ----------------------------------------------------------------------------------


def test_deleting_and_restoring_a_package_through_the_user_endpoints(api: Api) -> None:
    name = f"round-{uuid.uuid4().hex[:8]}"
    package = f"alice/{name}"
    first = api.push(package, "v1", seed="round-1")
    second = api.push(package, "v2", seed="round-2")
    api.setup(package)
    mine = f"/api/v3/user/packages/container/{name}"
    before = api.ok(mine, "alice:R")
    assert before["version_count"] == 2

    assert api.delete(mine, "alice:all").status_code == 204
    pulled = api.pull(package, "v1")
    assert pulled.status_code == 404 and pulled.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert api.pull(package, first.digest).status_code == 404
    assert api.admin.get(f"/v2/{package}/tags/list").status_code == 404
    assert package not in api.admin.get("/v2/_catalog", params={"n": 10000}).json()["repositories"]
    assert_error(api.get(mine, "alice:R"), 404)
    assert_error(api.get(f"{mine}/versions", "alice:R"), 404)
    assert_error(api.delete(mine, "alice:all"), 404)
    params = {"package_type": "container", "per_page": 100}  # alice has many packages from other tests
    assert name not in names(api.get("/api/v3/user/packages", "alice:R", params=params))
    deleted = api.get("/api/v3/user/packages", "alice:RW", params={**params, "state": "deleted"})
    (listed,) = [p for p in deleted.json() if p["name"] == name]
    assert listed["id"] == before["id"] and listed["portside"]["deleted_at"]

    assert api.post(f"{mine}/restore", "alice:RW").status_code == 204
    assert api.pull(package, "v1").headers["docker-content-digest"] == first.digest
    assert api.pull(package, "v2").headers["docker-content-digest"] == second.digest
    assert api.tags(package) == ["v1", "v2"]
    after = api.ok(mine, "alice:R")
    assert (after["id"], after["version_count"], after["portside"]["deleted_at"]) == (before["id"], 2, None)
    assert name in names(api.get("/api/v3/user/packages", "alice:R", params=params))
    assert name not in names(api.get("/api/v3/user/packages", "alice:RW", params={**params, "state": "deleted"}))
    # The grants came back with it.
    assert api.get(mine.replace("/user/", "/users/alice/"), "rita:R").status_code == 200
    assert_error(api.post(f"{mine}/restore", "alice:RW"), 404)  # nothing deleted any more


def test_a_new_package_with_the_name_of_a_deleted_one_blocks_its_restore(api: Api) -> None:
    package = f"acme/reuse-{uuid.uuid4().hex[:8]}"
    old = api.push(package, "old", seed="reuse-old")
    old_id = api.ok(api.path(package), "olga:R")["id"]
    assert api.delete(api.path(package), "olga:all").status_code == 204

    new = api.push(package, "new", seed="reuse-new")
    assert api.pull(package, "old").status_code == 404
    blocked = api.post(api.path(package, "restore"), "olga:all")
    assert_error(blocked, 409, "delete the new package first")
    assert f"restore?id={old_id}" in blocked.json()["message"]
    current = api.ok(api.path(package), "olga:R")
    assert current["version_count"] == 1 and current["id"] != old_id
    assert [v["name"] for v in api.versions(package)] == [new.digest]
    assert api.pull(package, "new").headers["docker-content-digest"] == new.digest

    # As the 409 says: delete the new package, then restore the old one by its id.
    assert api.delete(api.path(package), "olga:all").status_code == 204
    ambiguous = api.post(api.path(package, "restore"), "olga:all")
    assert_error(ambiguous, 409, "2 deleted packages were named")
    assert f"id {old_id}" in ambiguous.json()["message"]
    assert api.post(api.path(package, "restore") + f"?id={old_id}", "olga:all").status_code == 204
    back = {tag: api.pull(package, tag).headers.get("docker-content-digest") for tag in ("old", "new")}
    assert back == {"old": old.digest, "new": None}
    assert api.ok(api.path(package), "olga:R")["id"] == old_id


def test_tag_lists_follow_a_package_name_through_deletion_and_reuse(api: Api) -> None:
    package = f"acme/retag-{uuid.uuid4().hex[:8]}"
    api.push(package, "old", seed="retag-old")
    assert api.tags(package) == ["old"]
    assert api.delete(api.path(package), "olga:all").status_code == 204
    assert api.admin.get(f"/v2/{package}/tags/list").status_code == 404

    api.push(package, "new", seed="retag-new")
    assert api.pull(package, "new").status_code == 200 and api.pull(package, "old").status_code == 404
    assert api.tags(package) == ["new"]  # the new package's own tags, not the deleted one's


def test_restoring_a_package_restores_that_name_only(api: Api) -> None:
    """Names are matched exactly: '_' in a name is not a wildcard (nor anything else)."""
    suffix = uuid.uuid4().hex[:8]
    underscore, letter = f"alice/u_{suffix}", f"alice/ua{suffix}"
    for package in (letter, underscore):  # the look-alike is deleted last, so it would be found first
        api.push(package, "v1", seed=package)
    for package in (underscore, letter):
        assert api.delete(api.path(package)).status_code == 204
    assert api.post(api.path(underscore, "restore"), "alice:RW").status_code == 204
    assert api.pull(underscore, "v1").status_code == 200
    assert api.pull(letter, "v1").status_code == 404
    assert api.post(api.path(letter, "restore"), "alice:RW").status_code == 204
    assert api.pull(letter, "v1").status_code == 200


def test_deleting_and_restoring_a_version_hides_it_and_brings_its_tags_back(api: Api) -> None:
    package = api.package("acme", "vround")
    first = Pushed(api.pull(package, "v1").headers["docker-content-digest"], b"")
    api.put(package, "stable", Pushed(first.digest, api.pull(package, "v1").content))
    second = api.push(package, "edge", seed="vround-2")
    assert api.ok(api.path(package))["version_count"] == 2
    version = api.version(package, first.digest)
    path = api.path(package, "versions", str(version["id"]))

    assert api.delete(path, "adam:RD").status_code == 204
    for reference in (first.digest, "v1", "stable"):
        response = api.pull(package, reference)
        assert response.status_code == 404, reference
        assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert api.pull(package, first.digest, "HEAD").status_code == 404
    assert api.tags(package) == ["edge"]
    assert [v["name"] for v in api.versions(package)] == [second.digest]
    (deleted,) = api.versions(package, "deleted")
    assert deleted["id"] == version["id"] and deleted["deleted_at"]
    assert deleted["metadata"]["container"]["tags"] == ["stable", "v1"]
    assert api.ok(api.path(package))["version_count"] == 1

    restored = api.post(f"{path}/restore", "adam:RW")
    assert restored.status_code == 204 and restored.content == b""
    assert "portside-tags-not-restored" not in restored.headers
    assert api.pull(package, first.digest).status_code == 200
    assert api.pull(package, "stable").headers["docker-content-digest"] == first.digest
    assert api.tags(package) == ["edge", "stable", "v1"]
    assert api.versions(package, "deleted") == []
    back = api.version(package, first.digest)
    assert "deleted_at" not in back and back["metadata"]["container"]["tags"] == ["stable", "v1"]
    assert api.ok(api.path(package))["version_count"] == 2


def test_restoring_a_version_leaves_tags_that_moved_and_names_them(api: Api) -> None:
    package = api.package("acme", "moved")
    first_manifest = api.pull(package, "v1")
    first = Pushed(first_manifest.headers["docker-content-digest"], first_manifest.content)
    api.put(package, "stable", first)
    api.put(package, "lts", first)
    path = api.version_path(package, first.digest)
    assert api.delete(path, "olga:all").status_code == 204
    second = api.push(package, "v1", seed="moved-2")  # v1 and lts now name another version
    api.put(package, "lts", second)

    restored = api.post(f"{path}/restore", "olga:all")
    assert restored.status_code == 204, restored.text
    assert restored.headers["portside-tags-not-restored"] == "lts, v1"
    assert api.pull(package, "v1").headers["docker-content-digest"] == second.digest
    assert api.pull(package, "lts").headers["docker-content-digest"] == second.digest
    assert api.pull(package, "stable").headers["docker-content-digest"] == first.digest
    assert api.version(package, first.digest)["metadata"]["container"]["tags"] == ["stable"]
    assert api.version(package, second.digest)["metadata"]["container"]["tags"] == ["lts", "v1"]


def test_pushing_a_deleted_version_again_revives_it(api: Api) -> None:
    package = api.package("acme", "revive")
    manifest = api.pull(package, "v1")
    pushed = Pushed(manifest.headers["docker-content-digest"], manifest.content)
    version_id = api.version(package, pushed.digest)["id"]
    assert api.delete(api.path(package, "versions", str(version_id)), "olga:all").status_code == 204
    assert api.pull(package, pushed.digest).status_code == 404

    api.put(package, "again", pushed)
    assert api.pull(package, pushed.digest).status_code == 200
    revived = api.version(package, pushed.digest)
    assert revived["id"] == version_id and "deleted_at" not in revived
    assert revived["metadata"]["container"]["tags"] == ["again"]
    assert api.versions(package, "deleted") == []
    assert_error(api.post(api.path(package, "versions", str(version_id), "restore"), "olga:all"), 404)


def test_an_index_protects_its_platform_manifests_unless_forced(api: Api) -> None:
    package = f"acme/multi-{uuid.uuid4().hex[:8]}"
    amd64 = api.push(package, "amd64", seed="multi-amd64")
    arm64 = api.push(package, "arm64", seed="multi-arm64", architecture="arm64", variant="v8")
    index = api.push_index(package, "multi", [(amd64, "amd64"), (arm64, "arm64")])
    api.setup(package)

    child = api.version(package, amd64.digest)
    assert child["portside"]["indexes"] == [index.digest]
    assert child["portside"]["platform"] == "linux/amd64"
    assert api.version(package, arm64.digest)["portside"]["platform"] == "linux/arm64/v8"
    whole = api.version(package, index.digest)
    assert whole["portside"]["media_type"] == OCI_INDEX and whole["portside"]["platform"] is None
    path = api.path(package, "versions", str(child["id"]))

    assert_error(api.delete(path, "olga:all"), 409, index.digest, "force=true")
    assert_error(api.delete(path, "olga:all", params={"force": "false"}), 409, index.digest)
    assert api.pull(package, amd64.digest).status_code == 200
    assert api.delete(path, "olga:all", params={"force": "true"}).status_code == 204
    assert api.pull(package, amd64.digest).status_code == 404
    assert api.pull(package, "multi").headers["docker-content-digest"] == index.digest

    # Without the index, its platform manifests are free to go.
    assert api.delete(api.version_path(package, index.digest), "olga:all").status_code == 204
    assert api.version(package, arm64.digest)["portside"]["indexes"] == []
    assert api.delete(api.version_path(package, arm64.digest), "olga:all").status_code == 204
    assert api.versions(package) == []

    # Restored, the index protects its platform manifests again.
    index_id = api.version(package, index.digest, "deleted")["id"]
    arm64_id = api.version(package, arm64.digest, "deleted")["id"]
    assert api.post(api.path(package, "versions", str(index_id), "restore"), "olga:all").status_code == 204
    assert api.post(api.path(package, "versions", str(arm64_id), "restore"), "olga:all").status_code == 204
    assert api.version(package, arm64.digest)["portside"]["indexes"] == [index.digest]
    assert_error(api.delete(api.path(package, "versions", str(arm64_id)), "olga:all"), 409, index.digest)


# -- downloads and labels -------------------------------------------------------------------------


def _wait_for(check: Any, deadline: float = 15.0) -> Any:
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value or time.monotonic() > end:
            return value
        time.sleep(0.1)


def test_a_manifest_get_counts_one_download_and_a_head_none(api: Api) -> None:
    package = api.package("acme", "downloads")
    manifest = api.pull(package, "v1")
    digest = manifest.headers["docker-content-digest"]  # that GET is one download
    other = api.push(package, "other", seed="downloads-other")
    for _ in range(3):
        assert api.pull(package, "v1", "HEAD").status_code == 200
        assert api.pull(package, digest, "HEAD").status_code == 200
    assert api.pull(package, digest).status_code == 200
    assert api.pull(package, "v1").status_code == 200
    assert api.pull(package, other.digest, "HEAD").status_code == 200

    def counts() -> tuple[int, int] | None:
        mine = api.version(package, digest)["portside"]["download_count"]
        return (mine, api.ok(api.path(package))["portside"]["download_count"]) if mine >= 3 else None

    assert _wait_for(counts) == (3, 3)
    time.sleep(1.0)  # five flush intervals: any HEAD wrongly counted would show by now
    assert counts() == (3, 3)
    assert api.version(package, other.digest)["portside"]["download_count"] == 0


def test_labels_come_from_the_image_config_and_are_cut_to_githubs_limits(api: Api) -> None:
    package = f"acme/labels-{uuid.uuid4().hex[:8]}"
    description = "d" * 600
    licenses = "MIT OR " + "x" * 300
    source = "https://example.com/portside/labels"
    labelled = api.push(
        package,
        "v1",
        seed="labels",
        labels={
            "org.opencontainers.image.description": f"  {description}  ",
            "org.opencontainers.image.licenses": licenses,
            "org.opencontainers.image.source": source,
            "org.opencontainers.image.title": "not shown",
        },
    )
    api.setup(package)
    version = api.version(package, labelled.digest)
    assert version["description"] == description[:512]
    assert version["license"] == licenses[:256]
    assert version["portside"]["source_url"] == source
    body = api.ok(api.path(package))
    assert body["portside"]["description"] == description[:512]
    assert body["portside"]["licenses"] == licenses[:256]
    assert body["portside"]["source_url"] == source

    # A later push without labels changes nothing at the package level and has none of its own.
    plain = api.push(package, "plain", seed="labels-plain")
    assert "description" not in api.version(package, plain.digest)
    assert api.ok(api.path(package))["portside"]["description"] == description[:512]


def test_a_multi_platform_images_labels_come_from_its_index_annotations(api: Api) -> None:
    package = f"acme/annotated-{uuid.uuid4().hex[:8]}"
    amd64 = api.push(
        package, "amd64", seed="ann-amd64", labels={"org.opencontainers.image.description": "the amd64 config"}
    )
    arm64 = api.push(package, "arm64", seed="ann-arm64", architecture="arm64")
    long = "i" * 700
    index = api.push_index(
        package,
        "multi",
        [(amd64, "amd64"), (arm64, "arm64")],
        annotations={
            "org.opencontainers.image.description": long,
            "org.opencontainers.image.licenses": "Apache-2.0",
            "org.opencontainers.image.source": "https://example.com/multi",
        },
    )
    api.setup(package)
    whole = api.version(package, index.digest)
    assert whole["description"] == long[:512]
    assert whole["license"] == "Apache-2.0"
    assert whole["portside"]["source_url"] == "https://example.com/multi"
    assert api.version(package, amd64.digest)["description"] == "the amd64 config"
    assert "description" not in api.version(package, arm64.digest)
    body = api.ok(api.path(package))
    assert body["portside"]["description"] == long[:512]
    assert body["portside"]["licenses"] == "Apache-2.0"
    assert body["portside"]["source_url"] == "https://example.com/multi"


# -- purge ----------------------------------------------------------------------------------------


def _backdate(server: Server, days: int, *, package: str | None = None, digest: str | None = None) -> None:
    def change(conn: Connection) -> None:
        moment = now() - timedelta(days=days)
        if package is not None:
            count = conn.execute(
                update(repositories)
                .where(repositories.c.name.like(f"{package}@%"), repositories.c.deleted_at.is_not(None))
                .values(deleted_at=moment)
            ).rowcount
        else:
            count = conn.execute(
                update(manifests)
                .where(manifests.c.digest == digest, manifests.c.deleted_at.is_not(None))
                .values(deleted_at=moment)
            ).rowcount
        assert count == 1, (package, digest)

    db = server.database()
    try:
        db.write_sync(change)
    finally:
        db.close()


def test_deletions_older_than_the_restore_window_are_purged_at_start(tmp_path: Any) -> None:
    with running_server(tmp_path, "packages-api-purge", extra_args=["--workers", "1"], env=dict(ENV)) as server:
        _, token = server.admin
        bearer = {"Authorization": f"Bearer {token}"}
        hooks = {"response": [no_server_error]}
        with server.client(event_hooks=hooks) as admin, httpx.Client(base_url=server.url, event_hooks=hooks) as http:

            def push(package: str, tag: str, seed: str) -> str:
                config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
                layer = f"layer {seed}".encode()
                push_blob(admin, package, config)
                push_blob(admin, package, layer)
                manifest = image_manifest(config, [layer])
                put = admin.put(
                    f"/v2/{package}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
                )
                assert put.status_code == 201, put.text
                return digest_of(manifest)

            def api_path(package: str, *rest: str) -> str:
                return "/".join([f"/api/v3/users/octo/packages/container/{package}", *rest])

            def version_id(package: str, digest: str, state: str) -> int:
                listed = http.get(api_path(package, "versions"), params={"state": state}, headers=bearer)
                return next(v["id"] for v in listed.json() if v["name"] == digest)

            push("octo/expired", "v1", "expired")
            push("octo/recent", "v1", "recent")
            old = push("octo/versions", "old", "old")
            young = push("octo/versions", "young", "young")
            push("octo/versions", "live", "live")
            for package in ("expired", "recent"):
                assert http.delete(api_path(package), headers=bearer).status_code == 204
            old_id, young_id = version_id("versions", old, "active"), version_id("versions", young, "active")
            for vid in (old_id, young_id):
                assert http.delete(api_path("versions", "versions", str(vid)), headers=bearer).status_code == 204

        # The default window is 30 days: 31 days ago is past it, 29 days ago is not.
        _backdate(server, 31, package="octo/expired")
        _backdate(server, 29, package="octo/recent")
        _backdate(server, 31, digest=old)
        _backdate(server, 29, digest=young)
        server.stop()
        server.start()

        with server.client(event_hooks=hooks) as admin, httpx.Client(base_url=server.url, event_hooks=hooks) as http:
            listed = http.get(
                "/api/v3/users/octo/packages", params={"package_type": "container", "state": "deleted"}, headers=bearer
            )
            assert listed.status_code == 200, listed.text
            assert [p["name"] for p in listed.json()] == ["recent"]
            assert_error(http.post(api_path("expired", "restore"), headers=bearer), 404)
            deleted_versions = http.get(api_path("versions", "versions"), params={"state": "deleted"}, headers=bearer)
            assert [v["name"] for v in deleted_versions.json()] == [young]
            assert_error(http.post(api_path("versions", "versions", str(old_id), "restore"), headers=bearer), 404)
            assert (
                http.post(api_path("versions", "versions", str(young_id), "restore"), headers=bearer).status_code == 204
            )
            assert http.post(api_path("recent", "restore"), headers=bearer).status_code == 204
            assert admin.get("/v2/octo/recent/manifests/v1").status_code == 200
            assert admin.get(f"/v2/octo/versions/manifests/{young}").status_code == 200
            assert admin.get(f"/v2/octo/versions/manifests/{old}").status_code == 404

            # Gone for good: no row is left, and the name starts afresh.
            db = server.database()
            try:
                left = db.read_sync(
                    lambda conn: (
                        conn.execute(
                            select(repositories.c.name).where(repositories.c.name.like("octo/expired%"))
                        ).all(),
                        conn.execute(select(manifests.c.id).where(manifests.c.digest == old)).all(),
                    )
                )
            finally:
                db.close()
            assert left == ([], [])
            fresh = push("octo/expired", "v2", "expired-again")
            body = http.get(api_path("expired"), headers=bearer).json()
            assert body["version_count"] == 1
            assert [v["name"] for v in http.get(api_path("expired", "versions"), headers=bearer).json()] == [fresh]
