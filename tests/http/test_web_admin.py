"""Site admin in the browser: users, site admins, disabling, passwords.

One server for the module: root is a site admin with a password, ursula a user with one. The tests
create the other users they need, with names of their own.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, func, select

from portside.access import accounts
from portside.access.audit import events_since
from portside.metadata.schema import web_sessions
from tests.support.server import Server, running_server
from tests.support.web import sign_in, submit, text_of

ENV = {"PORTSIDE_FSYNC": "false"}
PASSWORD = "root's own password"
USERS = "/admin/users"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("admin"), "web-admin", extra_args=["--workers", "1"], env=ENV) as s:

        def setup(conn: Connection) -> None:
            accounts.create_user(conn, "root", password=PASSWORD, admin=True)
            accounts.create_user(conn, "ursula", password=PASSWORD)

        s.write(setup)
        yield s


@pytest.fixture
def root(server: Server) -> Iterator[httpx.Client]:
    with sign_in(server.url, "root", PASSWORD) as browser:
        yield browser


def name() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def db(server: Server, fn: Callable[..., Any], *args: Any) -> Any:
    return server.read(fn, *args)


def user(server: Server, who: str) -> accounts.Account:
    return db(server, accounts.get_account, who, "user")  # type: ignore[no-any-return]


def make_user(server: Server, who: str, password: str | None = PASSWORD) -> None:
    server.write(lambda conn: accounts.create_user(conn, who, password=password))


def sessions_of(server: Server, who: str) -> int:
    user_id = user(server, who).id
    return db(  # type: ignore[no-any-return]
        server,
        lambda conn: conn.execute(
            select(func.count()).select_from(web_sessions).where(web_sessions.c.user_id == user_id)
        ).scalar(),
    )


def registry_status(server: Server, who: str, token: str) -> int:
    auth = "Basic " + base64.b64encode(f"{who}:{token}".encode()).decode()
    return httpx.get(f"{server.url}/v2/", headers={"Authorization": auth}, timeout=60).status_code


def api_status(server: Server, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{server.url}/api/v3/portside/user/tokens", headers=headers, timeout=60).status_code


def signed_in(browser: httpx.Client) -> bool:
    return "Sign out" in text_of(browser.get("/").text)


def post(browser: httpx.Client, action: str, **fields: object) -> httpx.Response:
    return submit(browser, USERS, action, **fields)


def notice(browser: httpx.Client) -> str:
    page = browser.get(USERS).text
    return page.split('<p class="notice" role="status">', 1)[1].split("</p>", 1)[0]


def test_the_list_shows_every_user_with_labelled_forms(server: Server, root: httpx.Client) -> None:
    page = root.get(USERS)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "User Site admin Status Password Created Actions" in text
    assert "root (you)" in text and "ursula" in text
    assert "No (tokens only)" in text  # admin, the server's first user, has no password
    for control_id in ("new-name", "new-password", "new-password-confirm", "new-admin"):
        assert f'<label for="{control_id}"' in page.text
    assert 'Make site admin<span class="visually-hidden"> ursula</span>' in page.text
    assert 'Disable<span class="visually-hidden"> ursula</span>' in page.text
    # No button offers to disable or demote yourself.
    assert 'Disable<span class="visually-hidden"> root</span>' not in page.text
    assert 'Remove site admin<span class="visually-hidden"> root</span>' not in page.text


def test_others_get_a_404_and_change_nothing(server: Server) -> None:
    newcomer = name()
    with sign_in(server.url, "ursula", PASSWORD) as ursula:
        page = ursula.get(USERS)
        missing = ursula.get("/admin/nothing-here")
        assert page.status_code == 404 and missing.status_code == 404
        assert "This page does not exist" in text_of(page.text)
        assert "Site admin" not in text_of(page.text)  # the header does not link it either
        for action, fields in (
            (USERS, {"name": newcomer, "password": "", "password_confirm": ""}),
            (f"{USERS}/ursula/admin", {"admin": "true"}),
            (f"{USERS}/root/disabled", {"disabled": "true"}),
            (f"{USERS}/root/password", {"password": "taken over!", "password_confirm": "taken over!"}),
        ):
            response = submit(ursula, "/", action, **fields)
            assert response.status_code == 404, action
    assert db(server, accounts.find_account, newcomer) is None
    assert not user(server, "ursula").is_site_admin
    assert not user(server, "root").is_disabled
    with sign_in(server.url, "root", PASSWORD):
        pass  # root's password is unchanged
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        assert anonymous.get(USERS).headers["location"] == "/login?next=%2Fadmin%2Fusers"


def test_a_created_user_signs_in_with_the_password(server: Server, root: httpx.Client) -> None:
    carl = name()
    response = post(root, USERS, name=carl, password="carl's password", password_confirm="carl's password")
    assert response.status_code == 303 and response.headers["location"] == USERS
    assert notice(root) == f"Created the user {carl}, with a password."
    account = user(server, carl)
    assert account.has_password and not account.is_site_admin and not account.is_disabled
    with sign_in(server.url, carl, "carl's password") as browser:
        assert signed_in(browser)
        assert browser.get(USERS).status_code == 404  # not an admin

    tokens_only = name()
    post(root, USERS, name=tokens_only, password="", password_confirm="", site_admin="on")
    assert notice(root) == f"Created the site admin {tokens_only}, without a password (tokens only)."
    assert user(server, tokens_only).is_site_admin and not user(server, tokens_only).has_password
    events = db(server, events_since, datetime(2000, 1, 1, tzinfo=UTC))
    assert any(e.action == "user.create" and e.target == carl and e.actor == "root" for e in events)
    assert "carl's password" not in server.log_path.read_text()


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"password": "long enough", "password_confirm": "long enougH"}, 400, "The two passwords differ"),
        ({"password": "short", "password_confirm": "short"}, 400, "a password has 8 to 256 characters"),
        ({"name_override": "Carl"}, 400, "has uppercase letters"),
        ({"name_override": "ursula"}, 409, "the name ursula is already taken"),
    ],
)
def test_a_wrong_new_user_is_explained_and_not_created(
    server: Server, root: httpx.Client, fields: dict[str, str], status: int, message: str
) -> None:
    wanted = fields.pop("name_override", None) or name()
    before = db(server, accounts.list_accounts, "user")
    response = post(root, USERS, name=wanted, **{"password": "", "password_confirm": "", **fields})
    assert response.status_code == status
    assert message in text_of(response.text) and 'role="alert"' in response.text
    assert f'value="{wanted}"' in response.text  # kept, to correct it
    assert "long enough" not in response.text  # passwords are never sent back
    assert db(server, accounts.list_accounts, "user") == before


def test_making_someone_a_site_admin_opens_the_page_to_them(server: Server, root: httpx.Client) -> None:
    ada = name()
    make_user(server, ada)
    with sign_in(server.url, ada, PASSWORD) as browser:
        assert browser.get(USERS).status_code == 404
        post(root, f"{USERS}/{ada}/admin", admin="true")
        assert notice(root) == f"{ada} is now a site admin."
        assert user(server, ada).is_site_admin
        page = browser.get(USERS)  # the same session, at once
        assert page.status_code == 200 and 'href="/admin/users"' in page.text
        post(root, f"{USERS}/{ada}/admin", admin="false")
        assert notice(root) == f"{ada} is no longer a site admin."
        assert browser.get(USERS).status_code == 404


def test_nobody_locks_themselves_out(server: Server, root: httpx.Client) -> None:
    for action, fields, message in (
        ("disabled", {"disabled": "true"}, "cannot disable your own account"),
        ("admin", {"admin": "false"}, "cannot remove your own site admin role"),
    ):
        response = post(root, f"{USERS}/root/{action}", **fields)
        assert response.status_code == 409
        assert message in text_of(response.text) and 'role="alert"' in response.text
        assert "another site admin can" in text_of(response.text)
    account = user(server, "root")
    assert account.is_site_admin and not account.is_disabled
    assert signed_in(root) and root.get(USERS).status_code == 200


def test_disabling_ends_sessions_and_refuses_tokens_at_once(server: Server, root: httpx.Client) -> None:
    dave = name()
    make_user(server, dave)
    token = server.token(dave, "read:packages")
    assert registry_status(server, dave, token) == 200 and api_status(server, token) == 200
    with sign_in(server.url, dave, PASSWORD) as browser:
        assert signed_in(browser) and sessions_of(server, dave) == 1
        post(root, f"{USERS}/{dave}/disabled", disabled="true")
        assert notice(root).startswith(f"Disabled {dave}: signed out everywhere")
        assert user(server, dave).is_disabled
        assert sessions_of(server, dave) == 0
        assert not signed_in(browser)
        assert browser.get("/settings/tokens").status_code == 303  # to the sign-in page
    assert registry_status(server, dave, token) == 401
    assert api_status(server, token) == 401
    with httpx.Client(base_url=server.url, timeout=60) as again:
        assert submit(again, "/login", "/login", username=dave, password=PASSWORD).status_code == 401
    assert f'Enable<span class="visually-hidden"> {dave}</span>' in root.get(USERS).text

    post(root, f"{USERS}/{dave}/disabled", disabled="false")
    assert notice(root) == f"Enabled {dave}: their tokens work again, and they can sign in."
    assert registry_status(server, dave, token) == 200
    with sign_in(server.url, dave, PASSWORD) as browser:
        assert signed_in(browser)
    events = [(e.action, e.target) for e in db(server, events_since, datetime(2000, 1, 1, tzinfo=UTC))]
    assert ("user.disable", dave) in events and ("user.enable", dave) in events


def test_setting_a_password_signs_the_user_out_everywhere(server: Server, root: httpx.Client) -> None:
    erin = name()
    make_user(server, erin, password=None)
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        assert submit(browser, "/login", "/login", username=erin, password="erin's new password").status_code == 401
    post(root, f"{USERS}/{erin}/password", password="erin's new password", password_confirm="erin's new password")
    assert notice(root) == f"Set a new password for {erin}; they have been signed out of every browser."
    with sign_in(server.url, erin, "erin's new password") as old_session:
        assert signed_in(old_session)
        post(root, f"{USERS}/{erin}/password", password="erin's third one", password_confirm="erin's third one")
        assert not signed_in(old_session)
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        assert submit(browser, "/login", "/login", username=erin, password="erin's new password").status_code == 401
    with sign_in(server.url, erin, "erin's third one") as browser:
        assert signed_in(browser)
    mismatch = post(root, f"{USERS}/{erin}/password", password="one password", password_confirm="another one")
    assert mismatch.status_code == 400 and "The two passwords differ" in text_of(mismatch.text)
    events = [e for e in db(server, events_since, datetime(2000, 1, 1, tzinfo=UTC)) if e.action == "user.password"]
    assert [e.target for e in events].count(erin) == 2
    assert all("erin's" not in str(e.detail) for e in events)
    assert "erin's third one" not in server.log_path.read_text()


def test_forms_without_the_csrf_token_change_nothing(server: Server, root: httpx.Client) -> None:
    ghost = name()
    assert root.post(USERS, data={"name": ghost}).status_code == 403
    assert root.post(f"{USERS}/ursula/disabled", data={"disabled": "true", "csrf": "0" * 64}).status_code == 403
    assert root.post(f"{USERS}/ursula/admin", data={"admin": "true"}).status_code == 403
    assert db(server, accounts.find_account, ghost) is None
    ursula = user(server, "ursula")
    assert not ursula.is_disabled and not ursula.is_site_admin


def test_a_token_without_write_scope_is_told_why(server: Server) -> None:
    token = server.token("root", "read:packages")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as viewer:
        assert viewer.get(USERS).status_code == 200  # reading needs read:packages
        response = submit(viewer, USERS, f"{USERS}/ursula/admin", admin="true")
        assert response.status_code == 403
        assert "lacks the write:packages scope" in text_of(response.text)
    assert not user(server, "ursula").is_site_admin
