"""The management API under /api/v3/portside, over real HTTP against a real server.

Every endpoint with its permission cases (site admin, organization owner, organization member, package
admin, read-only collaborator, outsider, anonymous, a token lacking the scope), its error bodies
(GitHub's {"message", "documentation_url"}), and that each change really takes effect where it
matters: on the registry (/v2/ pulls and pushes), in the command line's view of the database, and in
the audit log.

Who is who (set up once for the module, straight in the database):
  admin  the site admin the server created on its first start
  olga   owns the organization acme
  mike   is a member of acme
  tina   is a member of acme and of its team devs
  pete   is given admin on the packages a test makes (a package admin, in no organization)
  rita   is given read on the packages a test makes (a read-only collaborator)
  oscar  belongs to no organization and has no role anywhere (an outsider)
Each has a token with every package scope ("all") and one with read:packages only ("read").
Tests make their own packages and organizations (names with a random suffix), so that they can run
alone or in any order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Connection

from portside.access import accounts
from tests.http.helpers import OCI_INDEX, OCI_MANIFEST, descriptor, oci_image, push_manifest
from tests.support.blobs import digest_of, push_image
from tests.support.github import assert_github_error as error
from tests.support.server import Server, no_server_error, running_server

P = "/api/v3/portside"
USERS = ("olga", "mike", "tina", "pete", "rita", "oscar")
SCOPES = {"all": "read:packages,write:packages,delete:packages", "read": "read:packages"}


def uid() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class World:
    server: Server
    tokens: dict[tuple[str, str], str]  # (user, "all" | "read" | custom) -> personal access token
    http: httpx.Client  # no credentials of its own

    def call(self, method: str, path: str, who: str | None = None, scope: str = "all", **kwargs: Any) -> httpx.Response:
        """A request as `who` (None: anonymous) with the token `scope`, Bearer as GitHub clients send it."""
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who, scope]}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def db(self, fn: Callable[[Connection], Any]) -> Any:
        db = self.server.database()
        try:
            return db.write_sync(fn)
        finally:
            db.close()

    def push(self, name: str, *tags: str, seed: str | None = None) -> str:
        """An image under `tags`, pushed by the site admin; its digest."""
        with self.server.client() as admin:
            digest, manifest = push_image(admin, name, tags[0], seed=seed or name)
            for tag in tags[1:]:
                push_manifest(admin, name, tag, manifest)
        return digest

    def package(self, name: str, *tags: str, pete: str | None = "admin", rita: str | None = "read") -> str:
        """A private package with pete and rita given their roles on it; the digest of its image."""
        digest = self.push(name, *(tags or ("v1",)))

        def grants(conn: Connection) -> None:
            for user, role in (("pete", pete), ("rita", rita)):
                if role:
                    accounts.grant(conn, name, role, user=user)

        self.db(grants)
        return digest

    def pull(self, name: str, reference: str, who: str | None = None, scope: str = "all") -> int:
        """The status of a manifest GET on the registry: Basic user:token, or the anonymous token flow."""
        headers = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
        if who is None:
            answer = self.http.get("/token", params={"service": "portside", "scope": f"repository:{name}:pull"})
            assert answer.status_code == 200, answer.text
            headers["Authorization"] = f"Bearer {answer.json()['token']}"
            return self.http.get(f"/v2/{name}/manifests/{reference}", headers=headers).status_code
        auth = (who, self.tokens[who, scope])
        return self.http.get(f"/v2/{name}/manifests/{reference}", headers=headers, auth=auth).status_code

    def token_for(self, user: str, scopes: str, only: str | None = None) -> str:
        """A further token, kept under (user, its name) for `call`."""
        key = f"{scopes}|{only}"
        if (user, key) not in self.tokens:
            self.tokens[user, key] = self.db(
                lambda conn: accounts.create_token(
                    conn, user, accounts.parse_scopes(scopes), only=accounts.parse_only(only)
                )[0]
            )
        return key

    def versions(self, name: str) -> dict[str, int]:
        """digest -> version id, from the packages API, as the site admin."""
        owner, rest = name.split("/", 1)
        path = f"/api/v3/orgs/{owner}/packages/container/{quote(rest, safe='')}/versions"
        answer = self.call("GET", path, "admin", params={"per_page": 100})
        assert answer.status_code == 200, answer.text
        return {v["name"]: v["id"] for v in answer.json()}

    def audit(self) -> list[dict[str, Any]]:
        answer = self.call("GET", f"{P}/audit", "admin", params={"since": "1h"})
        assert answer.status_code == 200, answer.text
        return answer.json()


def _cast(conn: Connection) -> dict[tuple[str, str], str]:
    for user in USERS:
        accounts.create_user(conn, user)
    accounts.create_org(conn, "acme", "olga")
    accounts.set_org_member(conn, "acme", "mike", "member")
    accounts.set_org_member(conn, "acme", "tina", "member")
    accounts.create_team(conn, "acme", "devs")
    accounts.add_team_member(conn, "acme", "devs", "tina")
    return {
        (user, scope): accounts.create_token(conn, user, accounts.parse_scopes(value), note=f"test {scope}")[0]
        for user in (*USERS, "admin")
        for scope, value in SCOPES.items()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_server(
        tmp_path_factory.mktemp("manage-api"),
        "manage-api",
        extra_args=["--workers", "2"],
        # Wrong and revoked credentials are part of the tests: no rate limit in the way.
        env={"PORTSIDE_FSYNC": "false", "PORTSIDE_AUTH_MAX_FAILURES": "10000"},
    ) as server:
        db = server.database()
        try:
            tokens = db.write_sync(_cast)
        finally:
            db.close()
        with httpx.Client(base_url=server.url, timeout=60, event_hooks={"response": [no_server_error]}) as http:
            yield World(server, tokens, http)


# Every operation, with a body that would be valid; used for the authentication checks.
OPERATIONS = [
    ("PATCH", f"{P}/packages/acme/app", {"visibility": "public"}),
    ("GET", f"{P}/packages/acme/app/collaborators", None),
    ("PUT", f"{P}/packages/acme/app/collaborators/users/mike", {"role": "read"}),
    ("DELETE", f"{P}/packages/acme/app/collaborators/users/mike", None),
    ("PUT", f"{P}/packages/acme/app/collaborators/teams/devs", {"role": "read"}),
    ("DELETE", f"{P}/packages/acme/app/collaborators/teams/devs", None),
    ("DELETE", f"{P}/packages/acme/app/tags/v1", None),
    ("POST", f"{P}/packages/acme/app/versions/delete", {"ids": [1]}),
    ("GET", f"{P}/user/tokens", None),
    ("POST", f"{P}/user/tokens", {"scopes": ["read:packages"]}),
    ("DELETE", f"{P}/user/tokens/1", None),
    ("GET", f"{P}/users", None),
    ("POST", f"{P}/users", {"name": "nobody"}),
    ("DELETE", f"{P}/users/mike", None),
    ("GET", f"{P}/users/mike/tokens", None),
    ("DELETE", f"{P}/users/mike/tokens/1", None),
    ("GET", f"{P}/orgs", None),
    ("POST", f"{P}/orgs", {"name": "nobody"}),
    ("PATCH", f"{P}/orgs/acme", {"container_registry": False}),
    ("GET", f"{P}/orgs/acme/members", None),
    ("PUT", f"{P}/orgs/acme/members/oscar", {"role": "member"}),
    ("DELETE", f"{P}/orgs/acme/members/mike", None),
    ("GET", f"{P}/orgs/acme/teams", None),
    ("POST", f"{P}/orgs/acme/teams", {"name": "nobody"}),
    ("PUT", f"{P}/orgs/acme/teams/devs/members/mike", None),
    ("GET", f"{P}/audit", None),
]


# -- authentication --------------------------------------------------------------------------------


def test_every_operation_refuses_anonymous_and_bad_credentials_and_changes_nothing(world: World) -> None:
    for method, path, body in OPERATIONS:
        anonymous = world.call(method, path, json=body)
        error(anonymous, 401, "Requires authentication")
        wrong = world.http.request(method, path, json=body, headers={"Authorization": "Bearer psp_nonsense"})
        error(wrong, 401, "Bad credentials")
    assert ("mike", "member") in world.db(lambda conn: accounts.org_members_of(conn, "acme"))
    assert world.db(lambda conn: accounts.find_account(conn, "nobody")) is None


def test_the_packages_api_credential_forms_all_work(world: World) -> None:
    token = world.tokens["mike", "all"]
    for header in (f"Bearer {token}", f"token {token}"):
        assert world.http.get(f"{P}/user/tokens", headers={"Authorization": header}).status_code == 200
    assert world.http.get(f"{P}/user/tokens", auth=("mike", token)).status_code == 200
    error(world.http.get(f"{P}/user/tokens", auth=("tina", token)), 401, "does not belong to tina")


# -- package visibility ----------------------------------------------------------------------------


def test_visibility_permissions_and_the_effect_on_anonymous_pulls(world: World) -> None:
    name = f"acme/vis-{uid()}"
    world.package(name, "v1")
    path = f"{P}/packages/{name}"
    public = {"visibility": "public"}
    assert world.pull(name, "v1") == 401  # private: the anonymous token grants no pull

    error(world.call("PATCH", path, json=public), 401)
    error(world.call("PATCH", path, "oscar", json=public), 404, f"package {name} not found")  # outsider
    error(world.call("PATCH", path, "mike", json=public), 404, f"package {name} not found")  # member, no role
    error(
        world.call("PATCH", path, "rita", json=public),
        403,
        f"rita has read access to {name}; changing its settings (visibility, collaborators, immutable tags) "
        "needs admin",
    )
    error(world.call("PATCH", path, "pete", "read", json=public), 403, "lacks the write:packages scope")
    error(world.call("PATCH", path, "olga", "read", json=public), 403, "lacks the write:packages scope")
    assert world.pull(name, "v1") == 401  # none of that changed anything

    answer = world.call("PATCH", path, "pete", json=public)  # a package admin
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["name"], body["visibility"], body["portside"]["visibility"]) == (
        name.split("/", 1)[1],
        "public",
        "public",
    )
    assert world.pull(name, "v1") == 200
    assert world.pull(name, "v1", "oscar") == 200

    internal = world.call("PATCH", path, "olga", json={"visibility": "internal"})  # the organization's owner
    assert internal.status_code == 200, internal.text
    assert internal.json()["visibility"] == "private"  # GitHub's schema has no internal
    assert internal.json()["portside"]["visibility"] == "internal"
    assert world.pull(name, "v1") == 401
    assert world.pull(name, "v1", "mike") == 200  # members read internal packages
    assert world.pull(name, "v1", "oscar") == 404

    private = world.call("PATCH", path, "admin", json={"visibility": "private"})  # a site admin
    assert private.status_code == 200, private.text
    assert world.pull(name, "v1", "mike") == 404
    shown = json.loads(world.server.cli("package", "show", name, "--json").stdout)
    assert shown["visibility"] == "private"

    changes = [e for e in world.audit() if e["action"] == "package.visibility" and e["target"] == name]
    assert [(e["actor"], e["detail"]["visibility"]) for e in changes] == [
        ("pete", "public"),
        ("olga", "internal"),
        ("admin", "private"),
    ]


def test_visibility_bodies_and_namespace_rules(world: World) -> None:
    name = f"acme/vis-body-{uid()}"
    world.package(name)
    path = f"{P}/packages/{name}"
    error(
        world.call("PATCH", path, "olga", json={"visibility": "secret"}), 400, "private, internal, public", '"secret"'
    )
    error(world.call("PATCH", path, "olga", json={}), 400, "visibility must be one of")
    error(world.call("PATCH", path, "olga", json={"visiblity": "public"}), 400, "unknown field visiblity")
    error(world.call("PATCH", path, "olga", content=b"public"), 400, "Problems parsing JSON", '{"visibility": ')
    error(world.call("PATCH", path, "olga", json=["public"]), 400, "Problems parsing JSON")

    user_package = f"octo/vis-{uid()}"
    world.push(user_package, "v1")
    error(
        world.call("PATCH", f"{P}/packages/{user_package}", "admin", json={"visibility": "internal"}),
        403,
        "internal visibility is for organization packages; octo is a user",
    )

    org = f"strict-{uid()}"
    assert world.call("POST", f"{P}/orgs", "olga", json={"name": org}).status_code == 201
    assert world.call("PATCH", f"{P}/orgs/{org}", "olga", json={"allowed_visibilities": ["private"]}).status_code == 200
    strict = f"{org}/app"
    world.push(strict, "v1")
    error(
        world.call("PATCH", f"{P}/packages/{strict}", "olga", json={"visibility": "public"}),
        403,
        f"organization {org} allows only private packages",
    )
    assert world.pull(strict, "v1") == 401

    error(world.call("PATCH", f"{P}/packages/acme/no-such-{uid()}", "admin", json={"visibility": "public"}), 404)


def test_nested_names_and_deleted_packages(world: World) -> None:
    name = f"acme/tools/nested-{uid()}"
    world.package(name)
    answer = world.call("PATCH", f"{P}/packages/{name}", "pete", json={"visibility": "public"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == name.split("/", 1)[1]
    collaborators = world.call("GET", f"{P}/packages/{name}/collaborators", "pete")
    assert collaborators.status_code == 200, collaborators.text

    # A deleted package is gone for this API and for the command line alike.
    deleted = world.call("DELETE", f"/api/v3/orgs/acme/packages/container/{quote(name[5:], safe='')}", "olga")
    assert deleted.status_code == 204, deleted.text
    error(world.call("PATCH", f"{P}/packages/{name}", "olga", json={"visibility": "private"}), 404, "not found")
    error(world.call("GET", f"{P}/packages/{name}/collaborators", "admin"), 404, "not found")
    listed = json.loads(world.server.cli("package", "list", "acme", "--json").stdout)
    assert all(not row["package"].startswith(name) for row in listed), listed
    assert world.server.cli("package", "show", name, check=False).returncode == 2


# -- collaborators ---------------------------------------------------------------------------------


def test_user_collaborators_permissions_and_effect(world: World) -> None:
    name = f"acme/collab-{uid()}"
    world.package(name)
    base = f"{P}/packages/{name}/collaborators"
    oscar = f"{base}/users/oscar"
    assert world.pull(name, "v1", "oscar") == 404

    # Only package admins (with write:packages) may see or change who has which role.
    for who, status in (("oscar", 404), ("mike", 404), ("tina", 404), ("rita", 403)):
        error(world.call("GET", base, who), status)
        error(world.call("PUT", oscar, who, json={"role": "read"}), status)
    error(world.call("PUT", oscar, "olga", "read", json={"role": "read"}), 403, "lacks the write:packages scope")
    error(world.call("GET", base, "pete", "read"), 403, "lacks the write:packages scope")
    assert world.pull(name, "v1", "oscar") == 404

    added = world.call("PUT", oscar, "pete", json={"role": "read"})
    assert added.status_code == 201, added.text
    assert added.json() == {"type": "user", "name": "oscar", "role": "read"}
    assert world.pull(name, "v1", "oscar") == 200
    changed = world.call("PUT", oscar, "olga", json={"role": "write"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "write"

    listed = world.call("GET", base, "olga")
    assert listed.status_code == 200, listed.text
    assert sorted((c["type"], c["name"], c["role"]) for c in listed.json()) == [
        ("user", "admin", "admin"),  # the first push made its pusher an admin
        ("user", "oscar", "write"),
        ("user", "pete", "admin"),
        ("user", "rita", "read"),
    ]
    assert world.call("GET", base, "admin").status_code == 200
    error(world.call("GET", base, "oscar"), 403, "oscar has write access")  # write is not admin

    error(world.call("PUT", oscar, "olga", json={"role": "owner"}), 400, "role must be one of read, write, admin")
    error(world.call("PUT", oscar, "olga", json={}), 400, "role must be one of")
    error(world.call("PUT", oscar, "olga", content=b"{"), 400, "Problems parsing JSON")
    error(world.call("PUT", f"{base}/users/ghost", "olga", json={"role": "read"}), 404, "user ghost does not exist")
    error(world.call("PUT", f"{base}/users/acme", "olga", json={"role": "read"}), 404, "user acme does not exist")

    assert world.call("DELETE", oscar, "olga").status_code == 204
    assert world.pull(name, "v1", "oscar") == 404
    error(world.call("DELETE", oscar, "olga"), 404, f"oscar has no role on {name}")
    error(world.call("DELETE", f"{base}/users/rita", "rita"), 403)

    grants = [(e["actor"], e["action"]) for e in world.audit() if e["target"] == name]
    assert ("pete", "package.grant") in grants and ("olga", "package.revoke") in grants


def test_team_collaborators_only_on_organization_packages(world: World) -> None:
    name = f"acme/team-{uid()}"
    world.package(name)
    devs = f"{P}/packages/{name}/collaborators/teams/devs"
    assert world.pull(name, "v1", "tina") == 404

    error(world.call("PUT", devs, "tina", json={"role": "read"}), 404)  # a member of the team, no role yet
    error(world.call("PUT", devs, "rita", json={"role": "read"}), 403)
    added = world.call("PUT", devs, "olga", json={"role": "read"})
    assert added.status_code == 201, added.text
    assert added.json() == {"type": "team", "name": "devs", "role": "read"}
    assert world.pull(name, "v1", "tina") == 200  # in the team
    assert world.pull(name, "v1", "mike") == 404  # in the organization, not in the team
    listed = world.call("GET", f"{P}/packages/{name}/collaborators", "pete").json()
    assert {"type": "team", "name": "devs", "role": "read"} in listed

    assert world.call("DELETE", devs, "pete").status_code == 204
    assert world.pull(name, "v1", "tina") == 404
    error(world.call("DELETE", devs, "pete"), 404, "acme/devs has no role")
    error(
        world.call("PUT", f"{P}/packages/{name}/collaborators/teams/nope", "olga", json={"role": "read"}),
        404,
        "team acme/nope does not exist",
    )

    user_package = f"octo/team-{uid()}"
    world.push(user_package, "v1")
    error(
        world.call("PUT", f"{P}/packages/{user_package}/collaborators/teams/devs", "admin", json={"role": "read"}),
        400,
        "teams can be granted only on organization packages",
    )


# -- untagging and batch deletion ------------------------------------------------------------------


def test_untag_removes_one_tag_and_keeps_the_version(world: World) -> None:
    name = f"acme/untag-{uid()}"
    digest = world.package(name, "v1", "latest")
    v1 = f"{P}/packages/{name}/tags/v1"

    error(world.call("DELETE", v1, "oscar"), 404)
    error(world.call("DELETE", v1, "mike"), 404)
    error(world.call("DELETE", v1, "rita"), 403, "rita has read access", "delete needs admin")
    error(world.call("DELETE", v1, "pete", "read"), 403, "lacks the delete:packages scope")
    assert world.pull(name, "v1", "rita") == 200
    rita = ("rita", world.tokens["rita", "all"])
    # Listed first, so that the worker answering (this client's one connection) has the list cached.
    assert world.http.get(f"/v2/{name}/tags/list", auth=rita).json()["tags"] == ["latest", "v1"]

    assert world.call("DELETE", v1, "pete").status_code == 204
    assert world.pull(name, "v1", "rita") == 404
    assert world.pull(name, "latest", "rita") == 200
    assert world.pull(name, digest, "rita") == 200
    assert world.http.get(f"/v2/{name}/tags/list", auth=rita).json()["tags"] == ["latest"]
    assert digest in world.versions(name)

    error(world.call("DELETE", v1, "pete"), 404, f"tag v1 not found in {name}")
    assert world.call("DELETE", f"{P}/packages/{name}/tags/latest", "olga").status_code == 204
    assert world.pull(name, digest, "rita") == 200  # untagged, still there
    assert any(e["action"] == "package.untag" and e["actor"] == "olga" for e in world.audit())


def _multi_platform(world: World, name: str) -> tuple[str, str, str]:
    """An index of two platform images, tagged multi; the digests of the index, amd64 and arm64."""
    with world.server.client() as admin:
        amd64, arm64 = oci_image(name, admin, f"{name}-amd64"), oci_image(name, admin, f"{name}-arm64")
        push_manifest(admin, name, digest_of(amd64), amd64)
        push_manifest(admin, name, digest_of(arm64), arm64)
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    descriptor(OCI_MANIFEST, amd64, platform={"architecture": "amd64", "os": "linux"}),
                    descriptor(OCI_MANIFEST, arm64, platform={"architecture": "arm64", "os": "linux"}),
                ],
            }
        ).encode()
        push_manifest(admin, name, "multi", index, OCI_INDEX)
    return digest_of(index), digest_of(amd64), digest_of(arm64)


def test_batch_version_deletion(world: World) -> None:
    name = f"acme/batch-{uid()}"
    one = world.package(name, "one")
    two = world.push(name, "two", seed=f"{name}-two")
    index, amd64, arm64 = _multi_platform(world, name)
    ids = world.versions(name)
    path = f"{P}/packages/{name}/versions/delete"

    error(world.call("POST", path, "oscar", json={"ids": [ids[one]]}), 404)
    error(world.call("POST", path, "rita", json={"ids": [ids[one]]}), 403, "delete needs admin")
    error(world.call("POST", path, "pete", "read", json={"ids": [ids[one]]}), 403, "lacks the delete:packages scope")
    for body in ({}, {"ids": []}, {"ids": ["1"]}, {"ids": [0]}, {"ids": [True]}, {"ids": 5}):
        error(world.call("POST", path, "pete", json=body), 400, "ids must be a list of positive version ids")
    error(world.call("POST", path, "pete", json={"ids": [1], "force": "yes"}), 400, "force must be true or false")
    error(world.call("POST", path, "pete", json={"ids": list(range(1, 102))}), 400, "at most 100 ids")
    error(world.call("POST", path, "pete", json={"ids": [1], "forced": True}), 400, "unknown field forced")
    assert world.pull(name, one, "rita") == 200

    answer = world.call("POST", path, "pete", json={"ids": [ids[one], ids[two], 999999999, ids[one]]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "deleted": [ids[one], ids[two]],
        "failed": [{"id": 999999999, "message": "version 999999999 not found"}],
    }
    assert world.pull(name, one, "rita") == 404
    assert world.pull(name, "two", "rita") == 404

    # A platform image of a live multi-platform image: refused alone, deleted when its index goes too.
    alone = world.call("POST", path, "olga", json={"ids": [ids[amd64]]}).json()
    assert alone["deleted"] == []
    assert alone["failed"][0]["id"] == ids[amd64]
    assert "part of the multi-platform image" in alone["failed"][0]["message"]
    both = world.call("POST", path, "olga", json={"ids": [ids[amd64], ids[index]]}).json()
    assert both == {"deleted": [ids[index], ids[amd64]], "failed": []}
    assert world.pull(name, "multi", "rita") == 404
    assert world.pull(name, arm64, "rita") == 200
    deletions = [e for e in world.audit() if e["action"] == "package.delete_version" and e["target"] == name]
    assert {e["detail"]["version"] for e in deletions} == {ids[one], ids[two], ids[amd64], ids[index]}


def test_batch_deletion_with_force(world: World) -> None:
    name = f"acme/force-{uid()}"
    world.package(name, "v1")
    _, amd64, _ = _multi_platform(world, name)
    ids = world.versions(name)
    answer = world.call(
        "POST", f"{P}/packages/{name}/versions/delete", "admin", json={"ids": [ids[amd64]], "force": True}
    )
    assert answer.json() == {"deleted": [ids[amd64]], "failed": []}
    assert world.pull(name, amd64, "rita") == 404


# -- tokens ----------------------------------------------------------------------------------------


def test_create_list_and_use_a_token(world: World) -> None:
    name = f"acme/token-{uid()}"
    world.package(name, "v1")
    body = {"note": "ci", "scopes": ["read:packages"], "expires": "1d", "only": [name]}
    created = world.call("POST", f"{P}/user/tokens", "rita", json=body)
    assert created.status_code == 201, created.text
    token = created.json()
    secret = token.pop("token")
    assert secret.startswith("psp_")
    assert token["user"] == "rita" and token["note"] == "ci"
    assert token["scopes"] == ["read:packages"] and token["only"] == [name]
    assert secret.startswith(token["prefix"])
    expires = datetime.fromisoformat(token["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=1))) < timedelta(minutes=5)

    listed = world.call("GET", f"{P}/user/tokens", "rita")
    assert listed.status_code == 200
    assert token in listed.json()
    assert secret not in listed.text and all("token" not in t for t in listed.json())
    assert {t["user"] for t in listed.json()} == {"rita"}  # one's own tokens only

    assert world.http.get(f"/v2/{name}/manifests/v1", auth=("rita", secret)).status_code == 200
    other = world.http.get(f"/v2/acme/other-{uid()}/manifests/v1", auth=("rita", secret))
    assert other.status_code in (403, 404)
    assert secret not in world.call("GET", f"{P}/audit", "admin", params={"since": "1h"}).text
    assert secret not in world.server.log_path.read_text()
    created_events = [e for e in world.audit() if e["action"] == "token.create" and e["target"] == "rita"]
    assert created_events[-1]["actor"] == "rita"


def test_token_bodies_are_checked(world: World) -> None:
    path = f"{P}/user/tokens"
    error(world.call("POST", path, "mike", json={}), 400, "scopes must be a non-empty list of strings")
    error(world.call("POST", path, "mike", json={"scopes": "read:packages"}), 400, "scopes must be a non-empty list")
    error(world.call("POST", path, "mike", json={"scopes": ["admin:org"]}), 400, "unknown scope admin:org")
    error(world.call("POST", path, "mike", json={"scopes": ["read:packages"], "expires": "soon"}), 400, "duration")
    error(world.call("POST", path, "mike", json={"scopes": ["read:packages"], "expires": 30}), 400, "expires must be")
    error(world.call("POST", path, "mike", json={"scopes": ["read:packages"], "only": ["Acme"]}), 400, "lowercase")
    error(world.call("POST", path, "mike", json={"scopes": ["read:packages"], "only": "acme/*"}), 400, "only must be")
    error(world.call("POST", path, "mike", json={"scopes": ["read:packages"], "note": "x" * 256}), 400, "note")
    error(world.call("POST", path, "mike", json={"scopes": ["read:packages"], "name": "x"}), 400, "unknown field name")
    error(world.call("POST", path, "mike", content=b"scopes=read"), 400, "Problems parsing JSON")


def test_a_token_creates_no_token_beyond_its_own_scopes_and_packages(world: World) -> None:
    path = f"{P}/user/tokens"
    error(
        world.call("POST", path, "mike", "read", json={"scopes": ["read:packages", "write:packages"]}),
        403,
        "cannot reach beyond them to write:packages",
    )
    error(world.call("POST", path, "mike", "read", json={"scopes": ["delete:packages"]}), 403, "delete:packages")
    assert world.call("POST", path, "mike", "read", json={"scopes": ["read:packages"]}).status_code == 201
    writer = world.token_for("mike", "write:packages")
    assert world.call("POST", path, "mike", writer, json={"scopes": ["read:packages"]}).status_code == 201  # implied

    limited = world.token_for("mike", "read:packages,write:packages", "acme/*")
    error(world.call("POST", path, "mike", limited, json={"scopes": ["read:packages"]}), 403, "limited to acme/*")
    error(
        world.call("POST", path, "mike", limited, json={"scopes": ["read:packages"], "only": ["acme/app", "octo/*"]}),
        403,
        "cannot reach octo/*",
    )
    narrow = world.call("POST", path, "mike", limited, json={"scopes": ["read:packages"], "only": ["acme/app"]})
    assert narrow.status_code == 201, narrow.text
    assert narrow.json()["only"] == ["acme/app"]
    assert (
        world.call("POST", path, "mike", limited, json={"scopes": ["write:packages"], "only": ["acme/*"]}).status_code
        == 201
    )


def test_a_token_creates_no_token_that_outlives_it(world: World) -> None:
    path = f"{P}/user/tokens"
    expiring = "read:packages|expires-in-2d"
    world.tokens["mike", expiring] = world.db(
        lambda conn: accounts.create_token(conn, "mike", ("read:packages",), expires_in=accounts.parse_duration("2d"))[
            0
        ]
    )
    error(world.call("POST", path, "mike", expiring, json={"scopes": ["read:packages"]}), 403, "outlives it")
    error(
        world.call("POST", path, "mike", expiring, json={"scopes": ["read:packages"], "expires": "30d"}),
        403,
        "cannot create one that outlives it",
    )
    shorter = world.call("POST", path, "mike", expiring, json={"scopes": ["read:packages"], "expires": "1d"})
    assert shorter.status_code == 201, shorter.text


def test_revoking_tokens(world: World) -> None:
    name = f"acme/revoke-{uid()}"
    world.package(name, "v1")
    created = world.call("POST", f"{P}/user/tokens", "rita", json={"scopes": ["read:packages"], "note": "gone"}).json()
    secret, token_id = created["token"], created["id"]
    assert world.http.get(f"/v2/{name}/manifests/v1", auth=("rita", secret)).status_code == 200

    error(world.call("DELETE", f"{P}/user/tokens/{token_id}", "tina"), 404, f"token {token_id} of tina not found")
    error(world.call("DELETE", f"{P}/user/tokens/999999999", "rita"), 404, "not found")
    error(world.call("DELETE", f"{P}/user/tokens/99999999999999999999", "rita"), 404, "not found")
    assert world.call("DELETE", f"{P}/user/tokens/{token_id}", "rita").status_code == 204
    revoked = world.http.get(f"/v2/{name}/manifests/v1", auth=("rita", secret))
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["errors"][0]["message"]
    error(world.http.get(f"{P}/user/tokens", headers={"Authorization": f"Bearer {secret}"}), 401, "revoked")
    listed = {t["id"]: t for t in world.call("GET", f"{P}/user/tokens", "rita").json()}
    assert listed[token_id]["revoked_at"] is not None

    # A narrower token may not revoke a wider one; any token may revoke itself.
    wide = world.call("POST", f"{P}/user/tokens", "rita", json={"scopes": ["read:packages", "write:packages"]}).json()
    error(world.call("DELETE", f"{P}/user/tokens/{wide['id']}", "rita", "read"), 403, "write:packages")
    itself = world.http.delete(f"{P}/user/tokens/{wide['id']}", headers={"Authorization": f"Bearer {wide['token']}"})
    assert itself.status_code == 204
    error(world.http.get(f"{P}/user/tokens", headers={"Authorization": f"Bearer {wide['token']}"}), 401)
    revocations = [e for e in world.audit() if e["action"] == "token.revoke" and e["target"] == "rita"]
    assert {e["detail"]["id"] for e in revocations} >= {token_id, wide["id"]}


def test_site_admins_list_and_revoke_other_users_tokens(world: World) -> None:
    created = world.call("POST", f"{P}/user/tokens", "tina", json={"scopes": ["read:packages"]}).json()
    listed = world.call("GET", f"{P}/users/tina/tokens", "admin")
    assert listed.status_code == 200, listed.text
    assert created["id"] in {t["id"] for t in listed.json()}
    assert created["token"] not in listed.text
    assert world.call("GET", f"{P}/users/tina/tokens", "admin", "read").status_code == 200
    assert world.call("GET", f"{P}/users/tina/tokens", "tina").status_code == 200  # one's own
    error(world.call("GET", f"{P}/users/tina/tokens", "mike"), 403, "only site admins can list tina's tokens")
    error(world.call("GET", f"{P}/users/tina/tokens", "olga"), 403, "only site admins")
    error(world.call("GET", f"{P}/users/ghost/tokens", "admin"), 404, "user ghost does not exist")

    one = f"{P}/users/tina/tokens/{created['id']}"
    error(world.call("DELETE", one, "mike"), 403, "only site admins can revoke tina's tokens")
    error(world.call("DELETE", one, "admin", "read"), 403, "lacks the write:packages scope")
    error(world.call("DELETE", f"{P}/users/mike/tokens/{created['id']}", "admin"), 404, "of mike not found")
    assert world.call("DELETE", one, "admin").status_code == 204
    error(world.http.get(f"{P}/user/tokens", headers={"Authorization": f"Bearer {created['token']}"}), 401)
    revocation = [e for e in world.audit() if e["action"] == "token.revoke" and e["detail"]["id"] == created["id"]]
    assert revocation[0]["actor"] == "admin"


# -- users -----------------------------------------------------------------------------------------


def test_users_are_managed_by_site_admins_only(world: World) -> None:
    name = f"u-{uid()}"
    error(world.call("GET", f"{P}/users", "olga"), 403, "only site admins can list users")
    error(world.call("POST", f"{P}/users", "olga", json={"name": name}), 403, "only site admins can create users")
    error(world.call("POST", f"{P}/users", "admin", "read", json={"name": name}), 403, "lacks the write:packages scope")
    error(world.call("POST", f"{P}/users", "admin", json={}), 400, "name is required")
    error(world.call("POST", f"{P}/users", "admin", json={"name": "Bob"}), 400, "uppercase")
    error(world.call("POST", f"{P}/users", "admin", json={"name": name, "site_admin": "no"}), 400, "site_admin")
    error(world.call("POST", f"{P}/users", "admin", json={"name": "acme"}), 409, "already taken")

    created = world.call("POST", f"{P}/users", "admin", json={"name": name})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name and created.json()["site_admin"] is False
    assert created.json()["has_password"] is False
    error(world.call("POST", f"{P}/users", "admin", json={"name": name}), 409, f"the name {name} is already taken")
    listed = world.call("GET", f"{P}/users", "admin", "read")
    assert listed.status_code == 200
    assert name in {u["name"] for u in listed.json()}
    assert name in {u["name"] for u in json.loads(world.server.cli("user", "list", "--json").stdout)}

    # The new user's namespace is real: a token for it pushes there.
    token = world.server.token(name)
    with httpx.Client(base_url=world.server.url, auth=(name, token), timeout=60) as http:
        push_image(http, f"{name}/app", "v1")

    error(world.call("DELETE", f"{P}/users/{name}", "mike"), 403, "only site admins can delete users")
    assert world.call("DELETE", f"{P}/users/{name}", "admin").status_code == 204
    error(world.call("DELETE", f"{P}/users/{name}", "admin"), 404, f"user {name} does not exist")
    error(world.call("DELETE", f"{P}/users/admin", "admin"), 409, "you are signed in as admin")
    assert world.http.get(f"/v2/{name}/app/manifests/v1", auth=(name, token)).status_code == 401

    admin2 = world.call("POST", f"{P}/users", "admin", json={"name": f"root-{uid()}", "site_admin": True}).json()
    assert admin2["site_admin"] is True
    actions = {(e["actor"], e["action"], e["target"]) for e in world.audit()}
    assert {("admin", "user.create", name), ("admin", "user.delete", name)} <= actions


# -- organizations, members and teams --------------------------------------------------------------


def test_organizations(world: World) -> None:
    org = f"co-{uid()}"
    error(world.call("POST", f"{P}/orgs", "mike", "read", json={"name": org}), 403, "lacks the write:packages scope")
    limited = world.token_for("mike", "read:packages,write:packages", "acme/*")
    error(world.call("POST", f"{P}/orgs", "mike", limited, json={"name": org}), 403, "use a token without `only`")
    error(world.call("POST", f"{P}/orgs", "mike", json={"name": "Big Co"}), 400, "uppercase")
    error(world.call("POST", f"{P}/orgs", "mike", json={"name": "acme"}), 409, "already taken")
    created = world.call("POST", f"{P}/orgs", "mike", json={"name": org})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "name": org,
        "container_registry": True,
        "allowed_visibilities": ["private", "internal", "public"],
        "storage_quota_bytes": None,
        "created_at": created.json()["created_at"],
        "role": "owner",
    }

    mine = {o["name"]: o["role"] for o in world.call("GET", f"{P}/orgs", "mike").json()}
    assert mine["acme"] == "member" and mine[org] == "owner"
    assert world.call("GET", f"{P}/orgs", "oscar").json() == []
    everything = {o["name"]: o["role"] for o in world.call("GET", f"{P}/orgs", "admin", "read").json()}
    assert everything["acme"] is None and everything[org] is None
    assert "acme" in {o["name"] for o in world.call("GET", f"{P}/orgs", "olga", "read").json()}

    settings = f"{P}/orgs/{org}"
    error(world.call("PATCH", settings, "tina", json={"container_registry": False}), 403, f"only owners of {org}")
    error(world.call("PATCH", settings, "mike", "read", json={"container_registry": False}), 403, "write:packages")
    error(world.call("PATCH", settings, "mike", json={}), 400, "nothing to change")
    error(world.call("PATCH", settings, "mike", json={"container_registry": "off"}), 400, "true or false")
    error(world.call("PATCH", settings, "mike", json={"allowed_visibilities": ["secret"]}), 400, "allowed visibilities")
    error(world.call("PATCH", settings, "mike", json={"allowed_visibilities": []}), 400, "non-empty list")
    error(world.call("PATCH", f"{P}/orgs/ghost-{uid()}", "admin", json={"container_registry": False}), 404)

    mike = ("mike", world.tokens["mike", "all"])
    with httpx.Client(base_url=world.server.url, auth=mike, timeout=60) as http:
        push_image(http, f"{org}/app", "v1")
        disabled = world.call("PATCH", settings, "mike", json={"container_registry": False})
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["container_registry"] is False
        refused = http.get(f"/v2/{org}/app/manifests/v1")
        assert refused.status_code == 403
        assert "has not enabled the container registry" in refused.json()["errors"][0]["message"]
        enabled = world.call(
            "PATCH", settings, "admin", json={"container_registry": True, "allowed_visibilities": ["private", "public"]}
        )
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["allowed_visibilities"] == ["private", "public"]
        assert http.get(f"/v2/{org}/app/manifests/v1").status_code == 200
    error(world.call("PATCH", f"{P}/packages/{org}/app", "mike", json={"visibility": "internal"}), 403, "allows only")
    shown = json.loads(world.server.cli("org", "list", "--json").stdout)
    assert {"org": org, "container_registry": "enabled", "allowed_visibilities": ["private", "public"]} in shown


def test_members_and_teams(world: World) -> None:
    org = f"team-co-{uid()}"
    assert world.call("POST", f"{P}/orgs", "olga", json={"name": org}).status_code == 201
    members = f"{P}/orgs/{org}/members"

    error(world.call("PUT", f"{members}/mike", "mike", json={"role": "member"}), 403, f"only owners of {org}")
    error(world.call("PUT", f"{members}/mike", "olga", "read", json={}), 403, "write:packages")
    error(
        world.call("PUT", f"{members}/mike", "olga", json={"role": "admin"}), 400, "role must be one of member, owner"
    )
    error(world.call("PUT", f"{members}/ghost", "olga", json={}), 404, "user ghost does not exist")
    error(world.call("GET", members, "mike"), 403, f"only members of {org}")

    # A member may publish to the organization; before, not.
    mike = ("mike", world.tokens["mike", "all"])
    with httpx.Client(base_url=world.server.url, auth=mike, timeout=60) as http:
        assert http.post(f"/v2/{org}/app/blobs/uploads/").status_code == 403
        added = world.call("PUT", f"{members}/mike", "olga", json={})  # role: member by default
        assert added.status_code == 201, added.text
        assert added.json() == {"org": org, "name": "mike", "role": "member"}
        push_image(http, f"{org}/app", "v1")

    again = world.call("PUT", f"{members}/tina", "olga", json={"role": "member"})
    assert again.status_code == 201
    assert world.call("PUT", f"{members}/tina", "admin", json={"role": "member"}).status_code == 200  # site admin
    assert world.call("GET", members, "mike", "read").json() == [
        {"name": "mike", "role": "member"},
        {"name": "olga", "role": "owner"},
        {"name": "tina", "role": "member"},
    ]
    assert world.call("GET", members, "admin").status_code == 200
    error(world.call("PUT", f"{members}/oscar", "mike", json={}), 403, f"only owners of {org}")

    teams = f"{P}/orgs/{org}/teams"
    error(world.call("POST", teams, "mike", json={"name": "ops"}), 403, f"only owners of {org}")
    error(world.call("POST", teams, "olga", json={"name": "Ops Team"}), 400, "team name")
    created = world.call("POST", teams, "olga", json={"name": "ops"})
    assert created.status_code == 201, created.text
    assert created.json() == {"org": org, "name": "ops", "members": []}
    error(world.call("POST", teams, "olga", json={"name": "ops"}), 409, f"team {org}/ops already exists")
    error(world.call("GET", teams, "oscar"), 403, f"only members of {org}")

    ops = f"{teams}/ops/members"
    error(world.call("PUT", f"{ops}/tina", "tina"), 403, f"only owners of {org}")
    assert world.call("PUT", f"{ops}/tina", "olga").status_code == 201
    assert world.call("PUT", f"{ops}/tina", "olga", json={}).status_code == 200
    error(world.call("PUT", f"{ops}/oscar", "olga"), 409, f"oscar is not a member of {org}")
    error(world.call("PUT", f"{teams}/nope/members/tina", "olga"), 404, f"team {org}/nope does not exist")
    error(world.call("PUT", f"{ops}/tina", "olga", json={"role": "x"}), 400, "unknown field role")
    assert world.call("GET", teams, "tina").json() == [{"org": org, "name": "ops", "members": ["tina"]}]

    # The team's grant reaches its members, and ends with their membership.
    private = f"{org}/secret"
    world.push(private, "v1")
    assert world.pull(private, "v1", "tina") == 404
    grant = world.call("PUT", f"{P}/packages/{private}/collaborators/teams/ops", "olga", json={"role": "read"})
    assert grant.status_code == 201, grant.text
    assert world.pull(private, "v1", "tina") == 200
    assert world.call("DELETE", f"{members}/tina", "olga").status_code == 204
    assert world.pull(private, "v1", "tina") == 404
    assert world.call("GET", teams, "olga").json() == [{"org": org, "name": "ops", "members": []}]
    error(world.call("DELETE", f"{members}/tina", "olga"), 404, f"tina is not a member of {org}")

    # An organization keeps an owner.
    error(world.call("DELETE", f"{members}/olga", "olga"), 409, f"olga is the only owner of {org}")
    error(world.call("PUT", f"{members}/olga", "olga", json={"role": "member"}), 409, "only owner")
    assert world.call("PUT", f"{members}/mike", "olga", json={"role": "owner"}).status_code == 200
    assert world.call("PUT", f"{members}/olga", "mike", json={"role": "member"}).status_code == 200
    assert world.call("DELETE", f"{members}/olga", "mike").status_code == 204
    assert world.call("GET", members, "admin").json() == [{"name": "mike", "role": "owner"}]

    shown = json.loads(world.server.cli("team", "list", org, "--json").stdout)
    assert shown == [{"team": f"{org}/ops", "members": []}]
    actions = {(e["actor"], e["action"], e["target"]) for e in world.audit()}
    assert {
        ("olga", "org.create", org),
        ("olga", "org.member", f"{org}/mike"),
        ("olga", "team.create", f"{org}/ops"),
        ("olga", "team.member", f"{org}/ops/tina"),
        ("olga", "org.remove_member", f"{org}/tina"),
        ("mike", "org.remove_member", f"{org}/olga"),
    } <= actions


# -- audit -----------------------------------------------------------------------------------------


def test_audit_log(world: World) -> None:
    org = f"audit-{uid()}"
    assert world.call("POST", f"{P}/orgs", "tina", json={"name": org}).status_code == 201
    error(world.call("GET", f"{P}/audit", "olga"), 403, "only site admins can read the audit log")
    limited = world.token_for("admin", "read:packages", "acme/*")
    error(world.call("GET", f"{P}/audit", "admin", limited), 403, "use a token without `only`")

    recent = world.call("GET", f"{P}/audit", "admin", "read")  # the last 24 hours by default
    assert recent.status_code == 200, recent.text
    events = [e for e in recent.json() if e["action"] == "org.create" and e["target"] == org]
    assert len(events) == 1
    event = events[0]
    assert set(event) == {"at", "actor", "action", "target", "client", "detail"}
    assert event["actor"] == "tina" and event["detail"] == {"owner": "tina"}
    at = datetime.fromisoformat(event["at"])
    assert abs(at - datetime.now(UTC)) < timedelta(minutes=5)
    assert any(e["action"] == "auth.login" for e in recent.json())

    since = (at - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for value in (since, since[:-1], since[:-1] + "+00:00", "10m"):
        found = world.call("GET", f"{P}/audit", "admin", params={"since": value}).json()
        assert any(e["target"] == org for e in found), value
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert world.call("GET", f"{P}/audit", "admin", params={"since": future}).json() == []
    error(world.call("GET", f"{P}/audit", "admin", params={"since": "yesterday"}), 400, "since must be")

    # No secret ever reaches the log.
    text = world.call("GET", f"{P}/audit", "admin", params={"since": "1h"}).text
    assert not any(secret in text for secret in world.tokens.values())
