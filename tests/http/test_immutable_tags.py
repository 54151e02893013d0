"""Immutable tags, over real HTTP against a real server: the settings API (package and owner
defaults), the pushes and deletions they refuse, and two pushes racing for one immutable tag.

Who is who (set up once for the module, straight in the database):
  admin  the site admin the server created on its first start
  olga   owns the organization acme
  mike   is a member of acme (no role on the packages a test makes)
  pete   is given admin on the packages a test makes
  walt   is given write on them (may push, may not change settings)
  uma    a user with packages of her own (the user-namespace default)
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Connection

from portside.access import accounts
from tests.http.helpers import OCI_MANIFEST, assert_error, oci_image
from tests.support.blobs import digest_of, push_image
from tests.support.github import assert_github_error as error
from tests.support.server import Server, no_server_error, running_server

P = "/api/v3/portside"
USERS = ("olga", "mike", "pete", "walt", "uma")
ALL = "read:packages,write:packages,delete:packages"


def uid() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class World:
    server: Server
    tokens: dict[str, str]
    http: httpx.Client

    def call(self, method: str, path: str, who: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.http.request(method, path, headers=headers, **kwargs)

    def registry(self, who: str = "admin") -> httpx.Client:
        """A registry client with Basic user:token."""
        return httpx.Client(base_url=self.server.url, auth=(who, self.tokens[who]), timeout=60)

    def db(self, fn: Callable[[Connection], Any]) -> Any:
        db = self.server.database()
        try:
            return db.write_sync(fn)
        finally:
            db.close()

    def package(self, name: str, tag: str = "v1", seed: str | None = None) -> str:
        """A package with an image under `tag`, pete its admin and walt a writer; the image's digest."""
        with self.registry() as admin:
            digest, _ = push_image(admin, name, tag, seed=seed or name)

        def grants(conn: Connection) -> None:
            accounts.grant(conn, name, "admin", user="pete")
            accounts.grant(conn, name, "write", user="walt")

        self.db(grants)
        return digest

    def rules(self, name: str, *patterns: str, who: str = "pete") -> dict[str, Any]:
        answer = self.call("PUT", f"{P}/packages/{name}/immutable-tags", who, json={"patterns": list(patterns)})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def image(self, name: str, seed: str) -> bytes:
        """An image manifest whose blobs are pushed (the manifest is not)."""
        with self.registry() as admin:
            return oci_image(name, admin, seed)

    def put(self, name: str, reference: str, manifest: bytes, who: str = "admin") -> httpx.Response:
        with self.registry(who) as client:
            return client.put(
                f"/v2/{name}/manifests/{reference}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
            )

    def digest_of_tag(self, name: str, tag: str) -> str | None:
        with self.registry() as client:
            answer = client.head(f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        return answer.headers["docker-content-digest"] if answer.status_code == 200 else None

    def version_id(self, name: str, digest: str) -> int:
        owner, rest = name.split("/", 1)
        kind = "orgs" if owner == "acme" else "users"
        path = f"/api/v3/{kind}/{owner}/packages/container/{quote(rest, safe='')}/versions"
        answer = self.call("GET", path, "admin")
        assert answer.status_code == 200, answer.text
        return next(v["id"] for v in answer.json() if v["name"] == digest)

    def audit(self) -> list[dict[str, Any]]:
        answer = self.call("GET", f"{P}/audit", "admin", params={"since": "1h"})
        assert answer.status_code == 200, answer.text
        return list(answer.json())


def _cast(conn: Connection) -> dict[str, str]:
    for user in USERS:
        accounts.create_user(conn, user)
    accounts.create_org(conn, "acme", "olga")
    accounts.set_org_member(conn, "acme", "mike", "member")
    return {user: accounts.create_token(conn, user, accounts.parse_scopes(ALL))[0] for user in (*USERS, "admin")}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_server(
        tmp_path_factory.mktemp("immutable-tags"),
        "immutable-tags",
        extra_args=["--workers", "2"],
        env={"PORTSIDE_FSYNC": "false"},
    ) as server:
        db = server.database()
        try:
            tokens = db.write_sync(_cast)
        finally:
            db.close()
        with httpx.Client(base_url=server.url, timeout=60, event_hooks={"response": [no_server_error]}) as http:
            yield World(server, tokens, http)


# -- the settings API ------------------------------------------------------------------------------


def test_package_setting_get_put_and_who_may(world: World) -> None:
    name = f"acme/app-{uid()}"
    world.package(name)
    path = f"{P}/packages/{name}/immutable-tags"
    nothing = {"package": name, "patterns": [], "owner_default": [], "effective": [], "effective_from": None}
    assert world.call("GET", path, "walt").json() == nothing

    error(world.call("PUT", path, json={"patterns": ["v*"]}), 401, "Requires authentication")
    error(world.call("GET", path), 401, "Requires authentication")
    error(
        world.call("PUT", path, "walt", json={"patterns": ["v*"]}),
        403,
        f"walt has write access to {name}; changing its settings (visibility, collaborators, immutable tags) "
        "needs admin",
    )
    error(world.call("PUT", path, "mike", json={"patterns": ["v*"]}), 404, f"package {name} not found")
    assert world.call("GET", path, "admin").json() == nothing  # none of that changed anything

    answer = world.call("PUT", path, "pete", json={"patterns": ["v*", "release-?", "v*"]})  # a package admin
    assert answer.status_code == 200, answer.text
    expected = {
        "package": name,
        "patterns": ["v*", "release-?"],  # repeats dropped, order kept
        "owner_default": [],
        "effective": ["v*", "release-?"],
        "effective_from": "package",
    }
    assert answer.json() == expected
    assert world.call("GET", path, "walt").json() == expected  # a writer may read them

    assert world.call("PUT", path, "olga", json={"patterns": ["stable"]}).status_code == 200  # org owner
    assert world.call("PUT", path, "admin", json={"patterns": []}).json() == nothing  # site admin; [] clears

    changes = [e for e in world.audit() if e["action"] == "package.immutable_tags" and e["target"] == name]
    assert [(e["actor"], e["detail"]) for e in changes] == [
        ("pete", {"patterns": ["v*", "release-?"]}),
        ("olga", {"patterns": ["stable"]}),
        ("admin", {"patterns": []}),
    ]


@pytest.mark.parametrize(
    ("body", "mention"),
    [
        ({"patterns": ["v*", "bad pattern"]}, 'pattern "bad pattern" has a character a tag cannot have'),
        ({"patterns": ["v/1"]}, 'pattern "v/1"'),
        ({"patterns": [""]}, 'pattern "" is 0 characters long; use 1 to 128'),
        ({"patterns": ["x" * 129]}, "is 129 characters long; use 1 to 128"),
        ({"patterns": [f"p{i}" for i in range(51)]}, "at most 50 patterns, not 51"),
        ({"patterns": [1]}, "pattern 1 is not a string"),
        ({"patterns": "v*"}, "patterns must be a list of strings"),
        ({"patterns": ["v[1"]}, 'pattern "v[1" has an unclosed ['),
        ({}, "patterns is required"),
        ({"patterns": [], "extra": 1}, "unknown field extra"),
    ],
)
def test_invalid_patterns_are_400_naming_the_pattern(world: World, body: dict[str, Any], mention: str) -> None:
    error(world.call("PUT", f"{P}/orgs/acme/immutable-tags", "olga", json=body), 400, "Invalid request", mention)


def test_fifty_patterns_of_128_characters_are_accepted(world: World) -> None:
    name = f"acme/many-{uid()}"
    world.package(name)
    patterns = [f"{i:02d}" + "x" * 125 + "*" for i in range(50)]
    assert world.rules(name, *patterns)["effective"] == patterns


def test_owner_defaults_who_may_and_the_package_setting_replaces_them(world: World) -> None:
    name = f"acme/def-{uid()}"
    world.package(name)
    org = f"{P}/orgs/acme/immutable-tags"
    error(world.call("PUT", org, json={"patterns": ["v*"]}), 401, "Requires authentication")
    error(world.call("PUT", org, "mike", json={"patterns": ["v*"]}), 403, "only owners of acme and site admins")
    error(world.call("PUT", org, "pete", json={"patterns": ["v*"]}), 403, "only owners of acme and site admins")
    error(world.call("GET", org, "pete"), 403, "only members of acme and site admins")
    error(world.call("GET", f"{P}/orgs/nosuchorg/immutable-tags", "admin"), 404)
    try:
        answer = world.call("PUT", org, "olga", json={"patterns": ["v*"]})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"owner": "acme", "type": "org", "patterns": ["v*"]}
        assert world.call("GET", org, "mike").json() == {"owner": "acme", "type": "org", "patterns": ["v*"]}

        path = f"{P}/packages/{name}/immutable-tags"
        assert world.call("GET", path, "walt").json() == {
            "package": name,
            "patterns": [],
            "owner_default": ["v*"],
            "effective": ["v*"],
            "effective_from": "owner",
        }
        other = world.image(name, f"other-{name}")
        refused = world.put(name, "v1", other)
        assert_error(
            refused,
            403,
            "DENIED",
            f'tag v1 of {name} is immutable (rule "v*" set for every package of acme); push a new tag, or ask an '
            f"owner of acme to change the rule: PUT {P}/orgs/acme/immutable-tags (or a package admin to replace it "
            f"for {name}: PUT {P}/packages/{name}/immutable-tags)",
        )

        # The package's own patterns replace the default: v1 may move, stable may not.
        assert world.rules(name, "stable")["effective"] == ["stable"]
        assert world.put(name, "v1", other).status_code == 201
        assert world.digest_of_tag(name, "v1") == digest_of(other)
        assert world.put(name, "stable", other).status_code == 201
        assert world.put(name, "stable", world.image(name, f"third-{name}")).status_code == 403

        # Cleared, the owner's default applies again.
        assert world.rules(name)["effective_from"] == "owner"
        assert world.put(name, "v1", world.image(name, f"fourth-{name}")).status_code == 403
        assert world.put(name, "stable", world.image(name, f"fifth-{name}")).status_code == 201
    finally:
        assert world.call("PUT", org, "admin", json={"patterns": []}).json()["patterns"] == []
    events = [e for e in world.audit() if e["action"] == "org.immutable_tags" and e["target"] == "acme"]
    assert [e["actor"] for e in events][-2:] == ["olga", "admin"]


def test_a_user_namespace_default(world: World) -> None:
    name = f"uma/app-{uid()}"
    with world.registry("uma") as uma:
        push_image(uma, name, "v1", seed=name)
    path = f"{P}/users/uma/immutable-tags"
    error(world.call("PUT", path, "pete", json={"patterns": ["v*"]}), 403, "only uma and site admins")
    error(world.call("GET", path, "pete"), 403, "only uma and site admins")
    error(world.call("GET", f"{P}/users/nosuchuser/immutable-tags", "admin"), 404)
    answer = world.call("PUT", path, "uma", json={"patterns": ["v*"]})
    assert answer.json() == {"owner": "uma", "type": "user", "patterns": ["v*"]}
    try:
        refused = world.put(name, "v1", world.image(name, f"other-{name}"), who="uma")
        assert_error(refused, 403, "DENIED", "set for every package of uma", f"ask uma to change the rule: PUT {path}")
    finally:
        assert world.call("PUT", path, "admin", json={"patterns": []}).status_code == 200


def test_the_command_line_sets_shows_and_clears(world: World) -> None:
    name = f"acme/cli-{uid()}"
    world.package(name)
    said = world.server.cli("package", "immutable", name, "v*", "rc-*").stdout
    assert f"tags of {name} matching v* rc-* are immutable" in said
    shown = json.loads(world.server.cli("package", "immutable", name, "--json").stdout)
    assert shown == [
        {
            "package": name,
            "patterns": ["v*", "rc-*"],
            "owner_default": [],
            "effective": ["v*", "rc-*"],
            "effective_from": "package",
        }
    ]
    assert world.put(name, "v1", world.image(name, f"o-{name}")).status_code == 403
    bad = world.server.cli("package", "immutable", name, "a b", check=False)
    assert bad.returncode == 2 and 'pattern "a b" has a character' in bad.stderr
    assert "no tag of" in world.server.cli("package", "immutable", name, "--clear").stdout
    assert world.put(name, "v1", world.image(name, f"o-{name}")).status_code == 201

    world.server.cli("org", "immutable", "acme", "release-*")
    try:
        assert json.loads(world.server.cli("org", "immutable", "acme", "--json").stdout)[0]["patterns"] == ["release-*"]
        assert world.call("GET", f"{P}/packages/{name}/immutable-tags", "pete").json()["effective"] == ["release-*"]
    finally:
        world.server.cli("org", "immutable", "acme", "--clear")
    world.server.cli("user", "immutable", "uma", "v*")
    assert world.call("GET", f"{P}/users/uma/immutable-tags", "uma").json()["patterns"] == ["v*"]
    world.server.cli("user", "immutable", "uma", "--clear")
    cli_events = [e for e in world.audit() if e["action"].endswith(".immutable_tags") and e["actor"] == "cli"]
    assert len(cli_events) >= 6


# -- what the rules refuse -------------------------------------------------------------------------


def test_a_push_that_would_move_an_immutable_tag_is_denied_and_changes_nothing(world: World) -> None:
    name = f"acme/push-{uid()}"
    first = world.package(name, "v1.2")
    world.rules(name, "v*")
    other = world.image(name, f"other-{name}")
    refused = world.put(name, "v1.2", other, who="walt")
    assert_error(
        refused,
        403,
        "DENIED",
        f'tag v1.2 of {name} is immutable (rule "v*" set on package {name}); push a new tag, or ask a package '
        f"admin to change the rule: PUT {P}/packages/{name}/immutable-tags",
    )
    assert world.digest_of_tag(name, "v1.2") == first
    with world.registry() as client:  # the refused push stored no version either
        assert client.get(f"/v2/{name}/manifests/{digest_of(other)}").status_code == 404

    # The same digest again: accepted, nothing moves (idempotent re-push).
    with world.registry() as client:
        same = client.get(f"/v2/{name}/manifests/v1.2", headers={"Accept": OCI_MANIFEST}).content
    again = world.put(name, "v1.2", same, who="walt")
    assert again.status_code == 201, again.text
    assert again.headers["docker-content-digest"] == first
    # A new tag matching the pattern, another that does not, a push by digest: all accepted.
    assert world.put(name, "v1.3", other).status_code == 201
    assert world.put(name, "latest", other).status_code == 201
    assert world.put(name, "latest", same).status_code == 201  # latest is not immutable: it moves
    assert world.put(name, digest_of(world.image(name, f"d-{name}")), world.image(name, f"d-{name}")).status_code == 201
    # Case-sensitive: V1 does not match v*.
    assert world.put(name, "V1", other).status_code == 201
    assert world.put(name, "V1", same).status_code == 201


def test_untagging_and_deleting_an_immutable_tag_or_its_version_is_refused(world: World) -> None:
    name = f"acme/del-{uid()}"
    digest = world.package(name, "v1")
    with world.registry() as client:
        manifest = client.get(f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST}).content
    assert world.put(name, "latest", manifest).status_code == 201
    world.rules(name, "v*")
    owner, rest = name.split("/", 1)
    rule = f'tag v1 of {name} is immutable (rule "v*" set on package {name})'
    change = f"ask a package admin to change the rule: PUT {P}/packages/{name}/immutable-tags"

    with world.registry() as client:
        assert_error(client.delete(f"/v2/{name}/manifests/v1"), 403, "DENIED", rule, "it cannot be removed", change)
        assert_error(
            client.delete(f"/v2/{name}/manifests/{digest}"),
            403,
            "DENIED",
            rule,
            f"version {digest}, which it points to, cannot be deleted",
        )
        assert client.delete(f"/v2/{name}/manifests/nosuchtag").status_code == 404  # still unknown, not denied
    error(world.call("DELETE", f"{P}/packages/{name}/tags/v1", "pete"), 403, rule, "it cannot be removed", change)
    version = world.version_id(name, digest)
    api = f"/api/v3/orgs/{owner}/packages/container/{quote(rest, safe='')}"
    error(world.call("DELETE", f"{api}/versions/{version}", "pete"), 403, rule, "cannot be deleted")
    batch = world.call("POST", f"{P}/packages/{name}/versions/delete", "pete", json={"ids": [version]})
    assert batch.status_code == 200, batch.text
    assert batch.json()["deleted"] == []
    assert rule in batch.json()["failed"][0]["message"]
    error(world.call("DELETE", api, "pete"), 403, rule, "the package cannot be deleted while it has the tag")
    assert world.digest_of_tag(name, "v1") == digest  # nothing of that happened

    # The mutable tag goes; once the rule is cleared, so can the rest.
    assert world.call("DELETE", f"{P}/packages/{name}/tags/latest", "pete").status_code == 204
    world.rules(name)
    with world.registry() as client:
        assert client.delete(f"/v2/{name}/manifests/v1").status_code == 202
    assert world.call("DELETE", api, "pete").status_code == 204


def test_a_referrer_pushed_by_digest_is_unaffected(world: World) -> None:
    name = f"acme/ref-{uid()}"
    digest = world.package(name, "v1")
    world.rules(name, "*")
    with world.registry() as client:
        subject = client.get(f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    referrer = json.loads(world.image(name, f"sig-{name}"))
    referrer["subject"] = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(subject.content)}
    payload = json.dumps(referrer).encode()
    answer = world.put(name, digest_of(payload), payload)
    assert answer.status_code == 201, answer.text
    with world.registry() as client:
        assert client.delete(f"/v2/{name}/manifests/{digest_of(payload)}").status_code == 202  # untagged: deletable


def test_two_pushes_racing_for_one_new_immutable_tag(world: World) -> None:
    """Each round, two clients push different images to the same new tag at once. The check and the
    tag's creation are one transaction (SQLite: one writer; PostgreSQL: the tag is inserted, never
    overwritten, and read again when a concurrent push created it), so exactly one push wins (201),
    the other is DENIED (403), and the tag points to the winner's digest."""
    name = f"acme/race-{uid()}"
    world.package(name, "base")
    world.rules(name, "v*")
    a, b = world.image(name, f"a-{name}"), world.image(name, f"b-{name}")

    def push(tag: str, manifest: bytes, barrier: threading.Barrier, results: dict[bytes, int]) -> None:
        with world.registry() as client:
            client.get("/v2/")  # connect first, so that both PUTs leave together
            barrier.wait()
            answer = client.put(f"/v2/{name}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST})
            results[manifest] = answer.status_code
            if answer.status_code == 403:
                assert answer.json()["errors"][0]["code"] == "DENIED"

    for round_ in range(12):
        tag, barrier, results = f"v{round_}", threading.Barrier(2), {}
        threads = [threading.Thread(target=push, args=(tag, m, barrier, results)) for m in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) == [201, 403], results
        winner = next(m for m, status in results.items() if status == 201)
        assert world.digest_of_tag(name, tag) == digest_of(winner)
