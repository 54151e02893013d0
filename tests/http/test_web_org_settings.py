"""Organization settings in the browser: members, teams, the registry switch, allowed visibilities.

One server for the module. Organization acme is owned by olga; mia is a member; nina belongs to no
organization; sam is a site admin outside acme; pete, quinn and rita get added by the tests. The
site admin `admin` (the server's first user) pushes packages.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Connection

from portside.access import accounts
from portside.access.audit import events_since
from tests.support.blobs import push_image
from tests.support.server import Server, running_server
from tests.support.web import sign_in, submit, text_of

ENV = {"PORTSIDE_FSYNC": "false"}
PASSWORD = "a password for the tests"
SETTINGS = "/orgs/acme/settings"
API = "/api/v3/portside"


def _accounts(conn: Connection) -> None:
    for user in ("olga", "mia", "nina", "sam", "pete", "quinn", "rita"):
        accounts.create_user(conn, user, password=PASSWORD, admin=user == "sam")
    accounts.create_org(conn, "acme", "olga")
    accounts.set_org_member(conn, "acme", "mia", "member")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("orgs"), "web-orgs", extra_args=["--workers", "1"], env=ENV) as s:
        s.write(_accounts)
        yield s


@pytest.fixture
def olga(server: Server) -> Iterator[httpx.Client]:
    with sign_in(server.url, "olga", PASSWORD) as browser:
        yield browser


def read(server: Server, fn: object, *args: object) -> object:
    return server.read(fn, *args)  # type: ignore[arg-type]


def members(server: Server) -> dict[str, str]:
    return dict(read(server, accounts.org_members_of, "acme"))  # type: ignore[arg-type]


def teams(server: Server) -> dict[str, list[str]]:
    return dict(read(server, accounts.teams_of, "acme"))  # type: ignore[arg-type]


def org(server: Server) -> accounts.Account:
    return read(server, accounts.get_account, "acme", "org")  # type: ignore[return-value]


def change(browser: httpx.Client, action: str, **fields: object) -> httpx.Response:
    """Send a settings form; it answers 303 back to the settings page, whose notice is returned."""
    response = submit(browser, SETTINGS, SETTINGS + action, **fields)
    assert response.status_code == 303, text_of(response.text)
    return response


def notice(browser: httpx.Client, location: str = SETTINGS) -> str:
    page = browser.get(location)
    assert page.status_code == 200
    found = page.text.split('<p class="notice" role="status">', 1)
    assert len(found) == 2, "no notice on the page"
    return found[1].split("</p>", 1)[0]


def pull_status(server: Server, token: str, user: str, package: str) -> int:
    with httpx.Client(base_url=server.url, auth=(user, token), timeout=60) as client:
        return client.get(f"/v2/{package}/manifests/v1").status_code


def test_owners_see_every_section_with_labelled_forms(server: Server, olga: httpx.Client) -> None:
    page = olga.get(SETTINGS)
    assert page.status_code == 200
    text = text_of(page.text)
    for section in ("Members and roles", "Teams", "Container registry", "Package visibility"):
        assert section in text
    assert 'href="/orgs/acme/packages"' in page.text
    assert 'href="/orgs/acme/settings/packages"' in page.text
    assert "<legend>Allowed visibilities</legend>" in page.text
    assert "mia" in text and "olga (you)" in text
    # Every input and select is labelled, every button names what it acts on.
    for control_id in re.findall(r'<(?:input|select)[^>]* id="([^"]+)"', page.text):
        assert f'<label for="{control_id}"' in page.text, control_id
    assert 'Remove<span class="visually-hidden"> mia from acme</span>' in page.text
    assert 'Change role<span class="visually-hidden"> of mia</span>' in page.text


def test_members_get_403_and_outsiders_404_like_a_missing_organization(server: Server) -> None:
    with sign_in(server.url, "mia", PASSWORD) as mia:
        page = mia.get(SETTINGS)
        assert page.status_code == 403
        text = text_of(page.text)
        assert "Only owners can change these settings" in text and "only owners of acme" in text
        assert "olga" not in text  # no owner is named
        # Nor can a member change anything.
        refused = submit(mia, "/orgs/acme/packages", SETTINGS + "/members", user="quinn", role="owner")
        assert refused.status_code == 403
        assert "quinn" not in members(server)
    with sign_in(server.url, "nina", PASSWORD) as nina:
        hidden = nina.get(SETTINGS)
        missing = nina.get("/orgs/nope/settings")
        assert hidden.status_code == missing.status_code == 404
        assert text_of(hidden.text).replace("acme", "X") == text_of(missing.text).replace("nope", "X")
        refused = submit(nina, "/orgs/acme/packages", SETTINGS + "/registry", enabled="false")
        assert refused.status_code == 404
        assert org(server).registry_enabled
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        assert anonymous.get(SETTINGS).headers["location"] == "/login?next=%2Forgs%2Facme%2Fsettings"
    with sign_in(server.url, "sam", PASSWORD) as sam:  # a site admin who is not a member
        page = sam.get(SETTINGS)
        assert page.status_code == 200 and "as a site admin" in text_of(page.text)


def test_a_member_added_to_a_team_can_pull_what_it_is_granted_until_removed(server: Server, olga: httpx.Client) -> None:
    package = f"acme/secret-{uuid.uuid4().hex[:6]}"
    with server.client() as admin:
        push_image(admin, package, "v1", seed=package)
    pete = server.token("pete", "read:packages")
    assert pull_status(server, pete, "pete", package) == 404  # private, and pete is nobody there

    change(olga, "/members", user="pete", role="member")
    assert notice(olga) == "Added pete to acme as member."
    assert members(server)["pete"] == "member"
    change(olga, "/teams", team="readers")
    assert "Created the team acme/readers." in notice(olga)
    change(olga, "/teams/readers/members", member="pete")
    assert notice(olga) == "Added pete to acme/readers."
    assert teams(server)["readers"] == ["pete"]
    with server.client() as admin:
        granted = admin.put(f"{API}/packages/{package}/collaborators/teams/readers", json={"role": "read"})
        assert granted.status_code == 201, granted.text
    assert pull_status(server, pete, "pete", package) == 200

    # Out of the team: no more access, though still a member of acme.
    change(olga, "/teams/readers/members/pete/remove")
    assert notice(olga) == "Removed pete from acme/readers; they are still a member of acme."
    assert teams(server)["readers"] == [] and members(server)["pete"] == "member"
    assert pull_status(server, pete, "pete", package) == 404

    # Back in the team, then out of the organization: out of its teams too, and no access.
    change(olga, "/teams/readers/members", member="pete")
    assert pull_status(server, pete, "pete", package) == 200
    change(olga, "/members/pete/remove")
    assert notice(olga) == "Removed pete from acme and its teams."
    assert "pete" not in members(server) and teams(server)["readers"] == []
    assert pull_status(server, pete, "pete", package) == 404

    events = read(server, events_since, datetime(2000, 1, 1, tzinfo=UTC))
    actions = [(e.action, e.target, e.actor) for e in events]  # type: ignore[attr-defined]
    assert ("team.remove_member", "acme/readers/pete", "olga") in actions
    assert ("org.remove_member", "acme/pete", "olga") in actions


def test_mistakes_are_shown_on_the_page(server: Server, olga: httpx.Client) -> None:
    unknown = submit(olga, SETTINGS, SETTINGS + "/members", user="nobody", role="member")
    assert unknown.status_code == 404
    assert "user nobody does not exist." in text_of(unknown.text) and 'role="alert"' in unknown.text
    assert 'value="nobody"' in unknown.text  # kept, to correct it
    outsider = submit(olga, SETTINGS, SETTINGS + "/teams", team="tmp")
    assert outsider.status_code == 303
    not_member = submit(olga, SETTINGS, SETTINGS + "/teams/tmp/members", member="nina")
    assert not_member.status_code == 409
    assert "nina is not a member of acme; add them to the organization first." in text_of(not_member.text)
    not_in_team = submit(olga, SETTINGS, SETTINGS + "/teams/tmp/members/mia/remove")
    assert not_in_team.status_code == 404 and "mia is not in team acme/tmp." in text_of(not_in_team.text)
    twice = submit(olga, SETTINGS, SETTINGS + "/teams", team="tmp")
    assert twice.status_code == 409 and "team acme/tmp already exists." in text_of(twice.text)


def test_roles_change_and_the_last_owner_stays(server: Server, olga: httpx.Client) -> None:
    for action, fields in (("/members/olga/role", {"role": "member"}), ("/members/olga/remove", {})):
        refused = submit(olga, SETTINGS, SETTINGS + action, **fields)
        assert refused.status_code == 409
        assert "olga is the only owner of acme; make another member an owner first." in text_of(refused.text)
        assert 'role="alert"' in refused.text
        assert members(server)["olga"] == "owner"

    change(olga, "/members", user="rita", role="owner")
    assert notice(olga) == "Added rita to acme as owner."
    change(olga, "/members/rita/role", role="member")
    assert notice(olga) == "rita is now a member of acme."
    assert members(server)["rita"] == "member"

    # An owner who steps down, with another owner left, goes to the organization's packages.
    change(olga, "/members/rita/role", role="owner")
    with sign_in(server.url, "rita", PASSWORD) as rita:
        response = submit(rita, SETTINGS, SETTINGS + "/members/rita/role", role="member")
        assert response.status_code == 303 and response.headers["location"] == "/orgs/acme/packages"
        assert rita.get(SETTINGS).status_code == 403
    assert members(server)["rita"] == "member"


def test_disabling_the_registry_refuses_pushes_with_the_reason(server: Server, olga: httpx.Client) -> None:
    package = f"acme/switch-{uuid.uuid4().hex[:6]}"
    with server.client() as admin:
        push_image(admin, package, "v1", seed=package)
        change(olga, "/registry", enabled="false")
        assert notice(olga).startswith("Disabled the container registry for acme")
        assert not org(server).registry_enabled
        assert "The container registry is disabled for acme" in text_of(olga.get(SETTINGS).text)
        refused = admin.post(f"/v2/{package}-new/blobs/uploads/", params={"digest": "sha256:" + "c" * 64})
        assert refused.status_code == 403
        assert "organization acme has not enabled the container registry" in refused.text
        assert admin.get(f"/v2/{package}/manifests/v1").status_code == 403

        change(olga, "/registry", enabled="true")
        assert notice(olga).startswith("Enabled the container registry for acme")
        assert org(server).registry_enabled
        assert admin.get(f"/v2/{package}/manifests/v1").status_code == 200
        push_image(admin, f"{package}-new", "v1", seed="again")


def test_allowed_visibilities_are_enforced(server: Server, olga: httpx.Client) -> None:
    package = f"acme/vis-{uuid.uuid4().hex[:6]}"
    with server.client() as admin:
        push_image(admin, package, "v1", seed=package)
        change(olga, "/visibilities", visibilities=["private", "internal"])
        assert notice(olga) == "Packages of acme may now be private, internal."
        assert org(server).allowed_visibilities == ("private", "internal")
        page = olga.get(SETTINGS).text
        assert 'value="public" aria-describedby' in page and 'value="public" checked' not in page
        public = admin.patch(f"{API}/packages/{package}", json={"visibility": "public"})
        assert public.status_code == 403 and "allows only private, internal" in public.json()["message"]
        assert admin.patch(f"{API}/packages/{package}", json={"visibility": "internal"}).status_code == 200

        none = submit(olga, SETTINGS, SETTINGS + "/visibilities")
        assert none.status_code == 400 and "Allow at least one visibility." in text_of(none.text)
        assert org(server).allowed_visibilities == ("private", "internal")

        change(olga, "/visibilities", visibilities=["public", "private", "internal"])
        assert org(server).allowed_visibilities == ("private", "internal", "public")
        assert admin.patch(f"{API}/packages/{package}", json={"visibility": "public"}).status_code == 200


def test_forms_without_the_csrf_token_change_nothing(server: Server, olga: httpx.Client) -> None:
    for action, fields in (
        ("/members", {"user": "quinn", "role": "owner"}),
        ("/registry", {"enabled": "false"}),
        ("/teams", {"team": "sneaky"}),
    ):
        assert olga.post(SETTINGS + action, data=fields).status_code == 403
        assert olga.post(SETTINGS + action, data={**fields, "csrf": "0" * 64}).status_code == 403
    assert "quinn" not in members(server)
    assert org(server).registry_enabled
    assert "sneaky" not in teams(server)
