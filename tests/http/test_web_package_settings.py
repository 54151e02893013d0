"""Package settings in the browser: visibility, access, deleting and restoring, over real HTTP.

One server for the module, with these people (each with a password; they sign in through the form):

    alice   owns the user namespace alice
    olga    owns the organizations acme (with the team devs) and strict (private or internal only)
    tess    a member of acme, in the team devs
    rita    granted read on the packages `World.package` makes
    bob     a user to give access to
    oscar   belongs to nothing and is granted nothing

Every change is checked by its effect, not only by the page's words: registry pulls (anonymous
through the token flow, or Basic user:token), the packages REST API and the management API (as the
site admin). No answer may be a 5xx: every client's hook fails the test on one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Connection

from portside.access import accounts
from tests.support.blobs import Pushed, push_labelled_image, push_platform_index
from tests.support.server import Server, no_server_error, running_server
from tests.support.web import csrf_of, sign_in, submit, text_of

PASSWORD = "correct horse battery staple"
USERS = ("alice", "olga", "tess", "rita", "bob", "oscar")
SCOPES = "read:packages,write:packages,delete:packages"
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
ENV = {"PORTSIDE_FSYNC": "false", "PORTSIDE_AUTH_MAX_FAILURES": "1000"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


HOOKS = {"response": [no_server_error]}


@dataclass
class World:
    server: Server
    tokens: dict[str, str]
    http: httpx.Client  # no credentials
    admin: httpx.Client  # the bootstrap site admin (Basic)

    def db(self, change: Any) -> Any:
        return self.server.write(change)

    def browser(self, user: str) -> Any:
        return sign_in(self.server.url, user, PASSWORD, event_hooks=HOOKS)

    def package(self, owner: str, prefix: str, visibility: str = "private", tags: tuple[str, ...] = ("v1",)) -> str:
        """A new package OWNER/PREFIX-<random>, one image per tag, with rita granted read."""
        name = f"{owner}/{prefix}-{uuid.uuid4().hex[:8]}"
        for tag in tags:
            self.push(name, tag)

        def change(conn: Connection) -> None:
            accounts.set_visibility(conn, name, visibility)
            accounts.grant(conn, name, "read", user="rita")

        self.db(change)
        return name

    def push(self, name: str, tag: str | None, arch: str = "amd64") -> Pushed:
        return push_labelled_image(self.admin, name, tag, seed=f"{name} {tag} {uuid.uuid4()}", architecture=arch)

    def pull(self, name: str, reference: str, who: str | None = None) -> int:
        """A manifest GET on the registry: anonymous through the token flow, or Basic user:token."""
        headers = {"Accept": ACCEPT}
        if who is None:
            answer = self.http.get("/token", params={"service": "portside", "scope": f"repository:{name}:pull"})
            assert answer.status_code == 200, answer.text
            headers["Authorization"] = f"Bearer {answer.json()['token']}"
            return self.http.get(f"/v2/{name}/manifests/{reference}", headers=headers).status_code
        return self.http.get(
            f"/v2/{name}/manifests/{reference}", headers=headers, auth=(who, self.tokens[who])
        ).status_code

    def rest(self, name: str) -> str:
        owner, rest = name.split("/", 1)
        kind = "orgs" if owner in ("acme", "strict") else "users"
        return f"/api/v3/{kind}/{owner}/packages/container/{quote(rest, safe='')}"

    def visibility(self, name: str) -> str | None:
        """The package's real visibility from the REST API (as the site admin); None when not found."""
        answer = self.admin.get(self.rest(name))
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        return str(answer.json()["portside"]["visibility"])

    def collaborators(self, name: str) -> set[tuple[str, str, str]]:
        """The explicit grants but the one every package has: admin for its creator, the site admin."""
        answer = self.admin.get(f"/api/v3/portside/packages/{name}/collaborators")
        assert answer.status_code == 200, answer.text
        return {(c["type"], c["name"], c["role"]) for c in answer.json()} - {("user", "admin", "admin")}

    def versions(self, name: str, state: str = "active") -> dict[str, int]:
        """digest -> version id, from the REST API (as the site admin)."""
        answer = self.admin.get(self.rest(name) + "/versions", params={"state": state, "per_page": 100})
        assert answer.status_code == 200, answer.text
        return {v["name"]: v["id"] for v in answer.json()}

    def tags(self, name: str) -> list[str]:
        answer = self.admin.get(f"/v2/{name}/tags/list")
        assert answer.status_code == 200, answer.text
        return sorted(answer.json()["tags"] or [])


def web(name: str, page: str = "") -> str:
    """The browser path of a package's page: settings, versions..."""
    owner, rest = name.split("/", 1)
    return f"/{'orgs' if owner in ('acme', 'strict') else 'users'}/{owner}/packages/container/{rest}{page}"


def package_page(name: str) -> str:
    return web(name).replace("/container/", "/container/package/", 1)


def _accounts(conn: Connection) -> dict[str, str]:
    for user in USERS:
        accounts.create_user(conn, user, password=PASSWORD)
    for org in ("acme", "strict"):
        accounts.create_org(conn, org, "olga")
    accounts.set_org(conn, "strict", allowed_visibilities=["private", "internal"])
    accounts.set_org_member(conn, "acme", "tess", "member")
    accounts.create_team(conn, "acme", "devs")
    accounts.add_team_member(conn, "acme", "devs", "tess")
    return {user: accounts.create_token(conn, user, accounts.parse_scopes(SCOPES))[0] for user in USERS}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_server(
        tmp_path_factory.mktemp("settings"), "web-package-settings", extra_args=["--workers", "1"], env=ENV
    ) as server:
        tokens = server.write(_accounts)
        with (
            httpx.Client(base_url=server.url, timeout=60, event_hooks=HOOKS) as http,
            server.client(event_hooks=HOOKS) as admin,
        ):
            yield World(server, tokens, http, admin)


def _alert(page: str) -> str:
    """The text of the page's role="alert" messages."""
    return " ".join(text_of(m) for m in re.findall(r'<p class="error" role="alert"[^>]*>(.*?)</p>', page, re.S))


# -- who may see the settings --------------------------------------------------------------------


def test_an_admin_sees_every_section_and_the_package_page_links_to_it(world: World) -> None:
    name = world.package("alice", "sections")
    with world.browser("alice") as alice:
        page = alice.get(web(name, "/settings"))
        assert page.status_code == 200, page.text
        text = text_of(page.text)
        for heading in ("Change visibility", "Manage access", "Immutable tags", "Deleted versions", "Danger zone"):
            assert f">{heading}</h2>" in page.text, heading
        # A user's package offers public and private, not internal (organizations only).
        assert 'value="public"' in page.text and 'value="private"' in page.text
        assert 'value="internal"' not in page.text
        assert 'id="visibility-private" name="visibility" value="private" checked' in page.text
        assert f'<label for="visibility-confirm">Type <code>{name}</code> to confirm</label>' in page.text
        assert f'<label for="delete-confirm">Type <code>{name}</code> to confirm</label>' in page.text
        # rita's read grant, with a labelled role select and named buttons.
        assert "User rita" in text and "Role of user rita" in text
        assert "Change role of user rita" in text and "Remove user rita" in text
        assert f'href="{web(name, "/versions")}?state=deleted"' in page.text
        assert 'href="/users/alice/settings/packages"' in page.text
        assert "restored within 30 days" in text
        # Every input but hidden ones has a label.
        ids = re.findall(r'<(?:input|select)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', page.text)
        assert ids and all(f'for="{i}"' in page.text for i in ids)
        # The settings page does not list versions.
        assert "sha256:" not in page.text
        assert f'href="{web(name, "/settings")}">Package settings</a>' in alice.get(package_page(name)).text
    with world.browser("rita") as rita:
        page = rita.get(package_page(name))
        assert page.status_code == 200 and "Package settings" not in page.text
    # A personal access token works as a sign-in too; one without write:packages may not manage.
    bearer = {"Authorization": f"Bearer {world.tokens['alice']}"}
    assert world.http.get(web(name, "/settings"), headers=bearer).status_code == 200
    read_only = world.db(lambda conn: accounts.create_token(conn, "alice", ("read:packages",))[0])
    page = world.http.get(web(name, "/settings"), headers={"Authorization": f"Bearer {read_only}"})
    assert page.status_code == 403
    assert f"your token lacks the write:packages scope needed to manage {name}" in text_of(page.text)
    page = world.http.get(package_page(name), headers={"Authorization": f"Bearer {read_only}"})
    assert page.status_code == 200 and "Package settings" not in page.text


def test_a_reader_gets_a_403_saying_why_an_outsider_the_404_of_a_missing_package(world: World) -> None:
    name = world.package("alice", "who")
    missing = f"alice/missing-{uuid.uuid4().hex[:8]}"
    with world.browser("rita") as rita:
        page = rita.get(web(name, "/settings"))
        assert page.status_code == 403
        text = text_of(page.text)
        assert f"rita has read access to {name}" in text and "needs admin" in text
        assert "ask alice, who owns the namespace" in text
    with world.browser("oscar") as oscar:
        hidden = oscar.get(web(name, "/settings"))
        absent = oscar.get(web(missing, "/settings"))
        assert hidden.status_code == absent.status_code == 404
        assert text_of(hidden.text).replace(name, "X") == text_of(absent.text).replace(missing, "X")
        # Their forms get nothing done either, and reveal nothing.
        response = submit(oscar, "/", web(name, "/settings/visibility"), visibility="public", confirm=name)
        assert response.status_code == 404
    assert world.visibility(name) == "private"
    # Signed out: to the sign-in page, and back.
    response = world.http.get(web(name, "/settings"))
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=" + quote(web(name, "/settings"), safe="")


# -- visibility ------------------------------------------------------------------------------------


def test_visibility_changes_only_with_the_full_name_typed(world: World) -> None:
    name = world.package("alice", "vis")
    settings = web(name, "/settings")
    assert world.pull(name, "v1") == 401  # anonymous: asked to log in
    with world.browser("alice") as alice:
        for confirm in ("", "vis", name.upper(), name.split("/")[1]):
            response = submit(alice, settings, settings + "/visibility", visibility="public", confirm=confirm)
            assert response.status_code == 400, confirm
            assert f"Type {name} exactly to confirm the change. Nothing was changed." in _alert(response.text)
            assert 'aria-describedby="visibility-error"' in response.text
        response = submit(alice, settings, settings + "/visibility", visibility="public")  # no confirmation at all
        assert response.status_code == 400
        assert world.visibility(name) == "private" and world.pull(name, "v1") == 401

        response = submit(alice, settings, settings + "/visibility", visibility="public", confirm=f"  {name} ")
        assert response.status_code == 303 and response.headers["location"] == settings
        assert f"{name} is now public." in text_of(alice.get(settings).text)
        assert world.visibility(name) == "public" and world.pull(name, "v1") == 200

        # A public package can be made private again.
        response = submit(alice, settings, settings + "/visibility", visibility="private", confirm=name)
        assert response.status_code == 303
        assert world.visibility(name) == "private" and world.pull(name, "v1") == 401


def test_an_org_that_forbids_a_visibility_is_not_offered_it_and_the_service_says_why(world: World) -> None:
    name = world.package("strict", "vis")
    settings = web(name, "/settings")
    with world.browser("olga") as olga:
        page = olga.get(settings).text
        assert 'value="internal"' in page and 'value="public"' not in page
        assert "allows only private, internal packages" in text_of(page)
        response = submit(olga, settings, settings + "/visibility", visibility="public", confirm=name)
        assert response.status_code == 403
        assert "organization strict allows only private, internal packages" in _alert(response.text)
        response = submit(olga, settings, settings + "/visibility", visibility="internal", confirm=name)
        assert response.status_code == 303
    assert world.visibility(name) == "internal"
    assert world.pull(name, "v1") == 401


def test_forms_without_the_csrf_token_change_nothing(world: World) -> None:
    name = world.package("alice", "csrf")
    settings = web(name, "/settings")
    version_id = next(iter(world.versions(name).values()))
    with world.browser("alice") as alice:
        alice.get(settings)
        posts = [
            (settings + "/visibility", {"visibility": "public", "confirm": name}),
            (settings + "/collaborators", {"kind": "user", "name": "bob", "role": "admin"}),
            (settings + "/collaborators/remove", {"kind": "user", "name": "rita"}),
            (settings + "/immutable-tags", {"patterns": "v*"}),
            (settings + "/delete", {"confirm": name}),
            (web(name, f"/versions/{version_id}/delete"), {"force": "true"}),
        ]
        for action, fields in posts:
            for token in ({}, {"csrf": "0" * 64}):
                response = alice.post(action, data={**fields, **token})
                assert response.status_code == 403, action
                assert "security token" in text_of(response.text)
        # From another site, even with the right token.
        token = csrf_of(alice.get(settings).text)
        response = alice.post(
            settings + "/delete", data={"confirm": name, "csrf": token}, headers={"Origin": "https://evil.example"}
        )
        assert response.status_code == 403
    assert world.visibility(name) == "private"
    assert world.collaborators(name) == {("user", "rita", "read")}
    assert world.admin.get(f"/api/v3/portside/packages/{name}/immutable-tags").json()["effective"] == []
    assert world.pull(name, "v1", "alice") == 200


# -- access --------------------------------------------------------------------------------------


def test_a_team_given_read_lets_its_members_see_the_package(world: World) -> None:
    name = world.package("acme", "team")
    settings = web(name, "/settings")
    with world.browser("tess") as tess:
        assert tess.get(package_page(name)).status_code == 404
        assert world.pull(name, "v1", "tess") == 404
        with world.browser("olga") as olga:
            page = olga.get(settings).text
            assert '<option value="team">Team of acme</option>' in page
            response = submit(olga, settings, settings + "/collaborators", kind="team", name="devs", role="read")
            assert response.status_code == 303
            assert "Added team devs with the read role." in text_of(olga.get(settings).text)
        assert world.collaborators(name) == {("team", "devs", "read"), ("user", "rita", "read")}
        assert tess.get(package_page(name)).status_code == 200
        assert world.pull(name, "v1", "tess") == 200
        assert tess.get(settings).status_code == 403  # read is not admin
    assert world.http.get(package_page(name)).status_code == 404
    with world.browser("oscar") as oscar:
        assert oscar.get(package_page(name)).status_code == 404
    assert world.pull(name, "v1") == 401 and world.pull(name, "v1", "oscar") == 404


def test_change_a_role_then_remove_it(world: World) -> None:
    name = world.package("acme", "roles")
    settings = web(name, "/settings")
    with world.browser("olga") as olga:
        response = submit(olga, settings, settings + "/collaborators", kind="user", name="bob", role="read")
        assert response.status_code == 303
        assert world.collaborators(name) == {("user", "bob", "read"), ("user", "rita", "read")}
        assert world.pull(name, "v1", "bob") == 200
        with world.browser("bob") as bob:
            assert bob.get(settings).status_code == 403

            # The row's own form: same fields, another role. "acme/devs"-style names work for teams too.
            response = submit(olga, settings, settings + "/collaborators", kind="user", name="bob", role="admin")
            assert response.status_code == 303
            assert "The user bob now has the admin role." in text_of(olga.get(settings).text)
            assert ("user", "bob", "admin") in world.collaborators(name)
            assert bob.get(settings).status_code == 200  # now an admin

        response = submit(olga, settings, settings + "/collaborators/remove", kind="user", name="bob")
        assert response.status_code == 303
        assert f"Removed the user bob from {name}." in text_of(olga.get(settings).text)
        assert world.collaborators(name) == {("user", "rita", "read")}
        assert world.pull(name, "v1", "bob") == 404

        response = submit(olga, settings, settings + "/collaborators", kind="team", name="acme/devs", role="write")
        assert response.status_code == 303
        assert ("team", "devs", "write") in world.collaborators(name)


def test_unknown_users_and_teams_and_teams_on_user_packages_are_explained(world: World) -> None:
    org_package = world.package("acme", "unknown")
    user_package = world.package("alice", "unknown")
    with world.browser("olga") as olga:
        settings = web(org_package, "/settings")
        cases = [
            ({"kind": "user", "name": "nobody", "role": "read"}, 404, "user nobody does not exist"),
            ({"kind": "team", "name": "ghosts", "role": "read"}, 404, "team acme/ghosts does not exist"),
            ({"kind": "user", "name": "", "role": "read"}, 400, "Enter the name of a user"),
            ({"kind": "user", "name": "bob", "role": "owner"}, 400, "Choose a role: read, write or admin"),
            ({"kind": "robot", "name": "bob", "role": "read"}, 400, "Choose a user or a team"),
        ]
        for fields, status, message in cases:
            response = submit(olga, settings, settings + "/collaborators", **fields)
            assert response.status_code == status, fields
            assert message in _alert(response.text), (fields, _alert(response.text))
            assert 'aria-describedby="access-error"' in response.text
        response = submit(olga, settings, settings + "/collaborators/remove", kind="user", name="bob")
        assert response.status_code == 404
        assert f"bob has no role on {org_package}" in _alert(response.text)
    assert world.collaborators(org_package) == {("user", "rita", "read")}
    with world.browser("alice") as alice:
        settings = web(user_package, "/settings")
        assert 'value="team"' not in alice.get(settings).text
        response = submit(alice, settings, settings + "/collaborators", kind="team", name="devs", role="read")
        assert response.status_code == 400
        assert "teams can be granted only on organization packages" in _alert(response.text)
    assert world.collaborators(user_package) == {("user", "rita", "read")}


# -- versions ------------------------------------------------------------------------------------


def test_delete_a_version_then_restore_it_with_its_tags(world: World) -> None:
    name = world.package("alice", "versions", "public", tags=("v1", "v2"))
    world.push(name, "stable")
    versions = web(name, "/versions")
    ids = world.versions(name)
    v1 = next(d for d, i in ids.items() if i == min(ids.values()))
    with world.browser("rita") as rita:
        assert ">Delete<" not in rita.get(versions).text  # a reader gets no buttons
        response = submit(rita, versions, web(name, f"/versions/{ids[v1]}/delete"))
        assert response.status_code == 403
        assert "needs admin" in text_of(response.text)
    assert world.pull(name, "v1") == 200
    with world.browser("alice") as alice:
        page = alice.get(versions).text
        assert f'Delete<span class="visually-hidden"> version {v1}</span>' in page
        response = submit(alice, versions, web(name, f"/versions/{ids[v1]}/delete"))
        assert response.status_code == 303 and response.headers["location"] == versions
        notice = text_of(alice.get(versions).text)
        assert f"Deleted version {v1} (tags v1)" in notice and "within 30 days" in notice
        assert world.pull(name, "v1") == 404 and world.pull(name, v1) == 404
        assert "v1" not in world.tags(name)

        deleted = alice.get(versions + "?state=deleted").text
        assert f'Restore<span class="visually-hidden"> version {v1}</span>' in deleted
        response = submit(alice, versions + "?state=deleted", web(name, f"/versions/{ids[v1]}/restore"))
        assert response.status_code == 303 and response.headers["location"] == versions + "?state=deleted"
        assert f"Restored version {v1} with the tags v1." in text_of(alice.get(versions).text)
        assert world.pull(name, "v1") == 200 and "v1" in world.tags(name)

        # A tag that moved while the version was away stays where it is; the notice says so.
        stable = next(d for d, i in world.versions(name).items() if i == max(ids.values()))
        submit(alice, versions, web(name, f"/versions/{ids[stable]}/delete"))
        world.push(name, "stable")
        response = submit(alice, versions + "?state=deleted", web(name, f"/versions/{ids[stable]}/restore"))
        assert response.status_code == 303
        notice = text_of(alice.get(versions).text)
        assert f"Restored version {stable}." in notice
        assert "Not restored, because they now point to other versions: stable." in notice
        assert ids[stable] in world.versions(name).values()
    with world.browser("rita") as rita:
        assert rita.get(versions + "?state=deleted").status_code == 404  # deleted versions: restorers only


def test_a_platform_image_of_a_live_index_needs_delete_anyway(world: World) -> None:
    name = f"alice/multi-{uuid.uuid4().hex[:8]}"
    amd = world.push(name, None, "amd64")
    arm = world.push(name, None, "arm64")
    index = push_platform_index(world.admin, name, "v1", [(amd, "amd64"), (arm, "arm64")])
    versions = web(name, "/versions")
    ids = world.versions(name)
    with world.browser("alice") as alice:
        response = submit(alice, versions, web(name, f"/versions/{ids[arm.digest]}/delete"))
        assert response.status_code == 409
        assert f"is part of the multi-platform image {index.digest}" in _alert(response.text)
        assert 'name="force" value="true"' in response.text
        assert f'Delete anyway<span class="visually-hidden"> version {arm.digest}</span>' in response.text
        assert world.pull(name, arm.digest) == 401 and world.pull(name, arm.digest, "alice") == 200

        response = submit(alice, versions, web(name, f"/versions/{ids[arm.digest]}/delete"), force="true")
        assert response.status_code == 303
        assert world.pull(name, arm.digest, "alice") == 404
        assert world.pull(name, amd.digest, "alice") == 200 and world.pull(name, "v1", "alice") == 200
        assert ids[arm.digest] in world.versions(name, "deleted").values()


# -- deleting and restoring packages -------------------------------------------------------------


def test_delete_a_package_with_its_name_typed_then_restore_it(world: World) -> None:
    name = world.package("alice", "gone", "public")
    settings = web(name, "/settings")
    with world.browser("alice") as alice:
        for confirm in ("", "yes", name + "x"):
            response = submit(alice, settings, settings + "/delete", confirm=confirm)
            assert response.status_code == 400
            assert f"Type {name} exactly to confirm the deletion. Nothing was deleted." in _alert(response.text)
        assert world.pull(name, "v1") == 200

        response = submit(alice, settings, settings + "/delete", confirm=name)
        assert response.status_code == 303 and response.headers["location"] == "/users/alice/packages"
        owner_page = alice.get("/users/alice/packages").text
        assert (
            f"Deleted {name}. It can be restored within 30 days from the deleted packages of alice "
            "(/users/alice/settings/packages)." in text_of(owner_page)
        )
        assert 'href="/users/alice/settings/packages"' in owner_page
        assert world.pull(name, "v1", "alice") == 404 and world.visibility(name) is None
        assert alice.get(settings).status_code == 404

        listing = alice.get("/users/alice/settings/packages")
        assert listing.status_code == 200
        row = next(r for r in re.findall(r"<tr>(.*?)</tr>", listing.text, re.S) if name.split("/")[1] in r)
        assert "<time" in row and 'action="/users/alice/settings/packages/' in row
        action = re.search(r'action="([^"]+/restore)"', row).group(1)  # type: ignore[union-attr]
        response = submit(alice, "/users/alice/settings/packages", action, name=name.split("/")[1])
        assert response.status_code == 303 and response.headers["location"] == package_page(name)
        assert f"Restored {name}." in text_of(alice.get(package_page(name)).text)
    assert world.pull(name, "v1") == 200 and world.visibility(name) == "public"
    assert world.tags(name) == ["v1"]


def test_delete_a_package_permanently_with_its_name_typed(world: World) -> None:
    name = world.package("alice", "leaked", "public")
    settings = web(name, "/settings")
    with world.browser("bob") as bob:  # reads public packages, but is not their admin
        refused = submit(bob, package_page(name), settings + "/purge", confirm=name)
        assert refused.status_code == 403, refused.text
        assert "admin role" in text_of(refused.text), text_of(refused.text)[:500]
    assert world.pull(name, "v1") == 200
    with world.browser("alice") as alice:
        page = alice.get(settings).text
        assert "Delete this package permanently" in page and 'action="' + settings + '/purge"' in page
        response = submit(alice, settings, settings + "/purge", confirm=name + "x")
        assert response.status_code == 400
        assert f"Type {name} exactly to confirm the permanent deletion. Nothing was deleted." in _alert(response.text)
        assert world.pull(name, "v1") == 200

        response = submit(alice, settings, settings + "/purge", confirm=name)
        assert response.status_code == 303 and response.headers["location"] == "/users/alice/packages"
        assert f"Deleted {name} permanently with its 1 version;" in text_of(alice.get("/users/alice/packages").text)
        assert world.pull(name, "v1", "alice") == 404
        listing = alice.get("/users/alice/settings/packages").text  # nothing to restore
        assert name.split("/")[1] not in listing


def test_restoring_a_package_whose_name_was_reused_shows_the_services_message(world: World) -> None:
    name = world.package("alice", "reused")
    with world.browser("alice") as alice:
        assert submit(alice, web(name, "/settings"), web(name, "/settings/delete"), confirm=name).status_code == 303
        world.push(name, "v9")  # a new package under the old name
        listing = alice.get("/users/alice/settings/packages").text
        row = next(r for r in re.findall(r"<tr>(.*?)</tr>", listing, re.S) if name.split("/")[1] in r)
        action = re.search(r'action="([^"]+/restore)"', row).group(1)  # type: ignore[union-attr]
        response = submit(alice, "/users/alice/settings/packages", action, name=name.split("/")[1])
        assert response.status_code == 409
        assert f"a new package {name} was pushed after this one was deleted" in _alert(response.text)
    assert world.tags(name) == ["v9"]


def test_the_deleted_packages_page_is_for_those_who_may_restore(world: World) -> None:
    response = world.http.get("/users/alice/settings/packages")
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    with world.browser("oscar") as oscar:
        response = oscar.get("/users/alice/settings/packages")
        assert response.status_code == 403
        assert "only an admin of alice's packages can restore" in text_of(response.text)
        assert oscar.get("/orgs/nosuch/settings/packages").status_code == 404
    with world.browser("olga") as olga:
        assert olga.get("/orgs/acme/settings/packages").status_code == 200
        assert 'href="/orgs/acme/settings/packages"' in olga.get("/orgs/acme/packages").text
    assert "settings/packages" not in world.http.get("/orgs/acme/packages").text


def test_immutable_tags_are_set_shown_and_refused_from_the_settings_page(world: World) -> None:
    name = world.package("acme", "immutable")
    settings = web(name, "/settings")
    rules = f"/api/v3/portside/packages/{name}/immutable-tags"
    with world.browser("olga") as olga:
        page = olga.get(settings)
        assert ">Immutable tags</h2>" in page.text
        assert f"No tag of {name} is immutable." in text_of(page.text)

        bad = submit(olga, settings, settings + "/immutable-tags", patterns="v* no/slash")
        assert bad.status_code == 400
        assert 'pattern "no/slash" has a character a tag cannot have' in _alert(bad.text)
        assert 'value="v* no/slash"' in bad.text  # what was typed stays, to correct it
        assert world.admin.get(rules).json()["effective"] == []

        response = submit(olga, settings, settings + "/immutable-tags", patterns="v*, release-?")
        assert response.status_code == 303
        page = olga.get(settings)
        assert f"Tags of {name} matching v* release-? are immutable." in text_of(page.text)
        assert 'value="v* release-?"' in page.text
        assert world.admin.get(rules).json()["effective"] == ["v*", "release-?"]
        moved = world.admin.put(
            f"/v2/{name}/manifests/v1",
            content=world.push(name, None).manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert moved.status_code == 403 and "is immutable" in moved.text

        # Deleting the package is refused with the rule's message, next to the form.
        refused = submit(olga, settings, settings + "/delete", confirm=name)
        assert refused.status_code == 403
        assert f"tag v1 of {name} is immutable" in _alert(refused.text)
        assert world.visibility(name) == "private"  # still there

        assert submit(olga, settings, settings + "/immutable-tags", patterns="").status_code == 303
        assert f"No tag of {name} is immutable." in text_of(olga.get(settings).text)
    with world.browser("rita") as rita:  # a reader: the settings page, and so the form, is not hers
        assert rita.get(settings).status_code == 403
