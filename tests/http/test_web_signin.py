"""Signing in to the pages: the form, the session cookie, CSRF, rate limits, signing out.

One server for the module (one worker, so the in-process rate limiter sees every attempt), with:

    wendy   a user with a password and a private package
    nopass  a user created without a password (tokens only)
    dora    a user with a password, disabled after signing in
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Connection, select, update

from portside.access import accounts
from portside.metadata.schema import accounts as accounts_table
from portside.metadata.schema import web_sessions
from tests.support.blobs import push_labelled_image
from tests.support.server import Server, running_server
from tests.support.web import csrf_of, sign_in, submit, text_of

PASSWORD = "correct horse battery staple"
MAX_FAILURES = 5
ENV = {
    "PORTSIDE_FSYNC": "false",
    "PORTSIDE_AUTH_MAX_FAILURES": str(MAX_FAILURES),
    "PORTSIDE_AUTH_FAILURE_WINDOW_SECONDS": "600",
    "PORTSIDE_TRUSTED_PROXIES": "127.0.0.1",
}


def _accounts(conn: Connection) -> None:
    for user in ("wendy", "dora", "limited", "proxied"):
        accounts.create_user(conn, user, password=PASSWORD)
    accounts.create_user(conn, "nopass")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("signin"), "web-signin", extra_args=["--workers", "1"], env=ENV) as s:
        s.write(_accounts)
        yield s


@pytest.fixture
def browser(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def _session_cookie(response: httpx.Response) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith("portside_session=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def test_sign_in_form_has_labelled_fields_and_a_csrf_token(browser: httpx.Client) -> None:
    page = browser.get("/login")
    assert page.status_code == 200
    assert '<label for="username">Username</label>' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert 'type="password"' in page.text
    assert '<button type="submit">Sign in</button>' in page.text
    csrf_cookie = next(h for h in page.headers.get_list("set-cookie") if h.startswith("portside_csrf="))
    assert "httponly" in csrf_cookie.lower() and "samesite=lax" in csrf_cookie.lower()
    assert len(csrf_of(page.text)) == 64
    # Every page links to it.
    assert 'href="/login' in browser.get("/").text


def test_sign_in_sets_a_protected_session_and_shows_your_packages(server: Server, browser: httpx.Client) -> None:
    package = f"wendy/app-{uuid.uuid4().hex[:6]}"
    with server.client() as admin:
        push_labelled_image(admin, package, "v1", seed=package)
    assert browser.get(f"/users/wendy/packages/container/package/{package.split('/')[1]}").status_code == 404

    response = submit(browser, "/login", "/login", username="wendy", password=PASSWORD, next="/users/wendy/packages")
    assert response.status_code == 303
    assert response.headers["location"] == "/users/wendy/packages"
    cookie = _session_cookie(response).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain HTTP here; see the HTTPS test below
    assert "max-age=1209600" in cookie  # 14 days

    home = text_of(browser.get("/").text)
    assert "Your packages" in home and package in home and "Sign out" in home
    page = browser.get(f"/users/wendy/packages/container/package/{package.split('/')[1]}")
    assert page.status_code == 200 and f"docker pull {server.host}/{package}:v1" in text_of(page.text)


def test_the_database_keeps_only_a_hash_of_the_session(server: Server) -> None:
    with sign_in(server.url, "wendy", PASSWORD) as browser:
        signed = browser.cookies["portside_session"]
        secret = signed.rsplit(".", 1)[0]  # itsdangerous: value.signature
        hashes = server.read(lambda conn: [row.secret_hash for row in conn.execute(select(web_sessions))])
        assert hashlib.sha256(secret.encode()).hexdigest() in hashes
        assert all(secret not in h for h in hashes)


def test_wrong_password_says_so_and_sets_no_session(browser: httpx.Client) -> None:
    response = submit(browser, "/login", "/login", username="wendy", password="nope", next="/")
    assert response.status_code == 401
    assert "Wrong user name or password" in text_of(response.text)
    assert not [h for h in response.headers.get_list("set-cookie") if h.startswith("portside_session=")]
    assert 'value="wendy"' in response.text  # the user name is kept, the password is not
    assert "nope" not in response.text


def test_a_user_without_a_password_is_told_how_to_get_one(browser: httpx.Client) -> None:
    response = submit(browser, "/login", "/login", username="nopass", password="anything", next="/")
    assert response.status_code == 401
    assert "portside user password" in text_of(response.text)


def test_forms_without_the_right_csrf_token_are_refused(server: Server, browser: httpx.Client) -> None:
    browser.get("/login")  # has the pre-session cookie, but sends no token
    response = browser.post("/login", data={"username": "wendy", "password": PASSWORD})
    assert response.status_code == 403
    assert "security token" in text_of(response.text)
    response = browser.post("/login", data={"username": "wendy", "password": PASSWORD, "csrf": "0" * 64})
    assert response.status_code == 403
    # A token from another browser's page does not fit this browser's cookie.
    with httpx.Client(base_url=server.url) as other:
        foreign = csrf_of(other.get("/login").text)
    response = browser.post("/login", data={"username": "wendy", "password": PASSWORD, "csrf": foreign})
    assert response.status_code == 403

    with sign_in(server.url, "wendy", PASSWORD) as signed_in:
        # Signing out is a form too: a cross-site POST cannot sign anyone out.
        assert signed_in.post("/logout", data={"x": "1"}).status_code == 403
        # The sign-in page's token is not the session's.
        assert signed_in.post("/logout", data={"csrf": csrf_of(browser.get("/login").text)}).status_code == 403
        assert "Sign out" in signed_in.get("/").text


def test_a_post_from_another_origin_is_refused(browser: httpx.Client) -> None:
    token = csrf_of(browser.get("/login").text)
    response = browser.post(
        "/login",
        data={"username": "wendy", "password": PASSWORD, "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "another site" in text_of(response.text)


def test_next_never_leaves_the_site(server: Server) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        with httpx.Client(base_url=server.url, timeout=60) as browser:
            response = submit(browser, "/login", "/login", username="wendy", password=PASSWORD, next=target)
            assert response.status_code == 303
            assert response.headers["location"] == "/", target


def test_sign_out_ends_the_session_on_the_server(server: Server) -> None:
    with sign_in(server.url, "wendy", PASSWORD) as browser:
        stolen = browser.cookies["portside_session"]
        response = submit(browser, "/", "/logout")
        assert response.status_code == 303
        assert "portside_session=" in " ".join(response.headers.get_list("set-cookie"))
        home = browser.get("/", follow_redirects=True)
        assert "You are signed out." in text_of(home.text)
    # The old cookie, replayed, is worth nothing now.
    with httpx.Client(base_url=server.url, cookies={"portside_session": stolen}) as replay:
        text = text_of(replay.get("/").text)
        assert "Sign out" not in text and "Sign in" in text


def test_a_tampered_cookie_is_ignored(server: Server) -> None:
    with httpx.Client(base_url=server.url, cookies={"portside_session": "forged.value"}) as forged:
        response = forged.get("/")
        assert response.status_code == 200 and "Sign out" not in response.text


def test_disabling_a_user_ends_their_sessions(server: Server) -> None:
    with sign_in(server.url, "dora", PASSWORD) as browser:
        assert "Sign out" in browser.get("/").text
        server.write(
            lambda conn: conn.execute(
                update(accounts_table).where(accounts_table.c.name == "dora").values(is_disabled=True)
            )
        )
        assert "Sign out" not in browser.get("/").text
    with httpx.Client(base_url=server.url) as again:
        response = submit(again, "/login", "/login", username="dora", password=PASSWORD, next="/")
        assert response.status_code == 401


def test_pages_that_need_a_user_send_you_to_sign_in_and_back(browser: httpx.Client) -> None:
    response = browser.get("/settings/tokens?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fsettings%2Ftokens%3Fx%3D1"
    assert 'name="next" value="/settings/tokens?x=1"' in browser.get(response.headers["location"]).text


def test_sign_in_is_rate_limited(tmp_path: Path) -> None:
    # A server of its own: the limit also counts per address, and every test here comes from 127.0.0.1.
    with (
        running_server(tmp_path, "web-signin-limit", extra_args=["--workers", "1"], env=ENV) as server,
        httpx.Client(base_url=server.url, timeout=60) as browser,
    ):
        server.write(_accounts)
        for _ in range(MAX_FAILURES):
            assert submit(browser, "/login", "/login", username="limited", password="wrong").status_code == 401
        # Now even the right password waits: guessing is slowed, the message says for how long.
        response = submit(browser, "/login", "/login", username="limited", password=PASSWORD)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0
        assert "Too many failed sign-ins" in text_of(response.text)


def test_the_cookie_is_secure_under_https(server: Server) -> None:
    # Behind a TLS-terminating proxy the server trusts (127.0.0.1 here), cookies are Secure.
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": server.host}
    with httpx.Client(base_url=server.url, timeout=60, headers=headers) as browser:
        page = browser.get("/login")
        csrf_cookie = next(h for h in page.headers.get_list("set-cookie") if h.startswith("portside_csrf="))
        assert "secure" in csrf_cookie.lower()
        # The Secure cookie is not sent over this plain-HTTP hop to the "proxy"; send it as a browser would.
        browser.cookies.clear()
        browser.cookies.set("portside_csrf", page.cookies["portside_csrf"])
        response = browser.post(
            "/login",
            data={"username": "proxied", "password": PASSWORD, "next": "/", "csrf": csrf_of(page.text)},
        )
        assert response.status_code == 303
        assert "secure" in _session_cookie(response).lower()


def test_no_secret_reaches_the_log(server: Server) -> None:
    with httpx.Client(base_url=server.url) as browser:
        submit(browser, "/login", "/login", username="wendy", password=PASSWORD)
        log = server.log_path.read_text()
        assert PASSWORD not in log
        assert browser.cookies["portside_session"] not in log


def test_the_first_site_admin_signs_in_with_the_password_printed_on_first_start(server: Server) -> None:
    assert (server.data_dir / "initial-admin-credentials").stat().st_mode & 0o077 == 0
    with sign_in(server.url, "admin", server.admin_password) as browser:
        text = text_of(browser.get("/").text)
        assert "Site admin" in text and "Sign out" in text
    # Printed once, on first start (the server's output is this file); signing in logs nothing of it.
    assert server.log_path.read_text().count(server.admin_password) == 1


def test_a_form_sent_after_the_session_ended_leads_back_to_its_page(server: Server) -> None:
    with sign_in(server.url, "wendy", PASSWORD) as browser:
        token_page = browser.get("/settings/tokens/new")
        submit(browser, "/", "/logout")  # the session ends (in another tab, or it expired)
        form = {"csrf": csrf_of(token_page.text), "note": "late", "scopes": "read:packages", "expiry": "30"}
        for referer, back in (
            (f"{server.url}/settings/tokens/new", "/settings/tokens/new"),
            ("https://evil.example/settings/tokens/new", "/"),  # another site's page: not followed
            (None, "/"),
        ):
            headers = {"Referer": referer} if referer else {}
            response = browser.post("/settings/tokens/new", data=form, headers=headers)
            assert response.status_code == 303, referer
            assert response.headers["location"] == "/login?next=" + quote(back, safe=""), referer
