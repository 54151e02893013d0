"""Your tokens in the browser: list, generate (shown once), revoke; and what the tokens then do.

One server for the module, with:

    tina    a user with a password, who generates and revokes tokens here
    otto    another user with a password and a token of his own
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from portside.access import accounts
from portside.clock import now
from tests.support.blobs import push_image
from tests.support.server import Server, running_server
from tests.support.web import csrf_of, sign_in, submit, text_of

ENV = {"PORTSIDE_FSYNC": "false"}
PASSWORD = "tina's long password"
TOKEN_RE = re.compile(r"psp_[0-9A-Za-z]{36}")
NEW = "/settings/tokens/new"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("tokens"), "web-tokens", extra_args=["--workers", "1"], env=ENV) as s:
        s.write(lambda conn: [accounts.create_user(conn, u, password=PASSWORD) for u in ("tina", "otto")])
        yield s


@pytest.fixture
def browser(server: Server) -> Iterator[httpx.Client]:
    with sign_in(server.url, "tina", PASSWORD) as client:
        yield client


def basic(user: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def generate(browser: httpx.Client, note: str, scopes: list[str], **fields: str) -> tuple[str, httpx.Response]:
    response = submit(browser, NEW, NEW, note=note, scopes=scopes, **{"expires": "30", **fields})
    assert response.status_code == 200, text_of(response.text)
    found = set(TOKEN_RE.findall(response.text))
    assert len(found) == 1, found
    return found.pop(), response


def token_infos(server: Server, user: str) -> dict[str, accounts.TokenInfo]:
    return {t.note: t for t in server.read(accounts.list_tokens, user)}


def registry(server: Server, user: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=basic(user, token), timeout=60)


def test_the_form_is_labelled_and_says_what_the_scopes_do(browser: httpx.Client) -> None:
    page = browser.get(NEW)
    assert page.status_code == 200
    html = page.text
    assert '<label for="note">Note</label>' in html and 'id="note" name="note" required' in html
    assert "<legend>Scopes</legend>" in html and "<legend>Expiration</legend>" in html
    for scope in ("read:packages", "write:packages", "delete:packages"):
        assert f'name="scopes" value="{scope}"' in html
    for days in ("7", "30", "60", "90"):
        assert f'<label for="expires-{days}">{days} days</label>' in html
    assert '<label for="expires-none">No expiration</label>' in html
    assert 'id="expires-30" name="expires" value="30" checked' in html  # the default
    assert '<label for="only">Only these packages (optional)</label>' in html
    assert "write:packages includes read:packages" in text_of(html)
    # Every input is labelled.
    for input_id in re.findall(r'<input[^>]* id="([^"]+)"', html):
        assert f'<label for="{input_id}"' in html, input_id


def test_a_generated_token_is_shown_once_and_works_with_the_registry(server: Server, browser: httpx.Client) -> None:
    token, response = generate(browser, "laptop", ["read:packages", "write:packages"])
    assert response.headers["cache-control"] == "no-store"
    assert "location" not in response.headers
    assert all(token not in cookie for cookie in response.headers.get_list("set-cookie"))
    text = text_of(response.text)
    assert f"echo {token} | docker login {server.host} -u tina --password-stdin" in text
    assert "only time it is shown" in text
    assert 'data-copy="' + token + '"' in response.text  # the copy button

    info = token_infos(server, "tina")["laptop"]
    assert info.scopes == ("read:packages", "write:packages") and info.only is None
    assert info.expires_at is not None
    assert abs(info.expires_at.replace(tzinfo=now().tzinfo) - (now() + timedelta(days=30))) < timedelta(minutes=5)

    # It works: the registry takes it, with its scopes.
    with registry(server, "tina", token) as client:
        assert client.get("/v2/").status_code == 200
        push_image(client, "tina/laptop-app", "v1", seed="laptop")
        assert client.get("/v2/tina/laptop-app/manifests/v1").status_code == 200

    # And it is never shown again: not on the list, not on the form, not on a reload of the list.
    listing = browser.get("/settings/tokens")
    assert listing.status_code == 200 and token not in listing.text
    assert info.prefix in text_of(listing.text) and "laptop" in text_of(listing.text)
    assert token not in browser.get(NEW).text
    assert token not in server.log_path.read_text()


def test_a_read_only_token_cannot_push(server: Server, browser: httpx.Client) -> None:
    writer, _ = generate(browser, "writer", ["write:packages"])
    with registry(server, "tina", writer) as client:
        push_image(client, "tina/readable", "v1", seed="readable")
    reader, _ = generate(browser, "reader", ["read:packages"], expires="7")
    with registry(server, "tina", reader) as client:
        assert client.get("/v2/tina/readable/manifests/v1").status_code == 200
        refused = client.post("/v2/tina/readable/blobs/uploads/", params={"digest": "sha256:" + "a" * 64}, content=b"")
        assert refused.status_code in (401, 403), refused.text
        assert client.put("/v2/tina/readable/manifests/v2", content=b"{}").status_code in (401, 403)
    info = token_infos(server, "tina")["reader"]
    assert info.scopes == ("read:packages",)
    assert info.expires_at is not None
    assert info.expires_at.replace(tzinfo=now().tzinfo) - now() < timedelta(days=7, minutes=1)


def test_a_token_for_some_packages_only(server: Server, browser: httpx.Client) -> None:
    token, response = generate(browser, "one package", ["write:packages"], only="tina/only-this, tina/team/tool")
    assert "only tina/only-this, tina/team/tool" in text_of(response.text)
    assert token_infos(server, "tina")["one package"].only == ("tina/only-this", "tina/team/tool")
    with registry(server, "tina", token) as client:
        push_image(client, "tina/only-this", "v1", seed="only")
        push_image(client, "tina/team/tool", "v1", seed="team")
        other = client.post("/v2/tina/elsewhere/blobs/uploads/", params={"digest": "sha256:" + "b" * 64})
        assert other.status_code in (401, 403)


def test_no_expiration_is_a_choice(server: Server, browser: httpx.Client) -> None:
    generate(browser, "forever", ["read:packages"], expires="none")
    assert token_infos(server, "tina")["forever"].expires_at is None
    listing = text_of(browser.get("/settings/tokens").text)
    assert "forever" in listing and "Never" in listing


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"note": "  ", "scopes": ["read:packages"]}, "Give the token a note"),
        ({"note": "no scopes"}, "Choose at least one scope."),
        ({"note": "bad scope", "scopes": ["admin:org"]}, "unknown scope admin:org"),
        ({"note": "bad expiry", "scopes": ["read:packages"], "expires": "365"}, "Choose an expiration"),
        ({"note": "bad only", "scopes": ["read:packages"], "only": "Acme/App"}, "“Acme/App” is not a package"),
        ({"note": "x" * 256, "scopes": ["read:packages"]}, "at most 255 fit"),
    ],
)
def test_a_wrong_form_says_what_is_wrong_and_creates_nothing(
    server: Server, browser: httpx.Client, fields: dict[str, object], message: str
) -> None:
    before = len(token_infos(server, "tina"))
    response = submit(browser, NEW, NEW, **fields)
    assert response.status_code == 400
    assert message in text_of(response.text)
    assert 'role="alert"' in response.text
    assert not TOKEN_RE.search(response.text)
    assert len(token_infos(server, "tina")) == before
    note = str(fields["note"]).strip()
    if note and len(note) < 256:
        assert f'value="{note}"' in response.text  # what was typed is kept


def test_revoking_a_token_stops_it_at_once(server: Server, browser: httpx.Client) -> None:
    token, _ = generate(browser, "short-lived", ["read:packages", "write:packages"])
    info = token_infos(server, "tina")["short-lived"]
    with registry(server, "tina", token) as client:
        assert client.get("/v2/").status_code == 200
    assert f'action="/settings/tokens/{info.id}/revoke"' in browser.get("/settings/tokens").text

    response = submit(browser, "/settings/tokens", f"/settings/tokens/{info.id}/revoke")
    assert response.status_code == 303 and response.headers["location"] == "/settings/tokens"
    listing = browser.get("/settings/tokens")
    text = text_of(listing.text)
    assert f'Revoked the token "short-lived" ({info.prefix}...)' in text
    assert "short-lived" not in text.split("no longer works.", 1)[1]  # gone from the list itself
    assert "revoked token" in text

    with registry(server, "tina", token) as client:
        assert client.get("/v2/").status_code == 401
    api = httpx.get(f"{server.url}/api/v3/portside/user/tokens", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
    assert token_infos(server, "tina")["short-lived"].revoked_at is not None


def test_a_token_with_a_note_in_any_script_can_be_revoked(server: Server, browser: httpx.Client) -> None:
    token, created = generate(browser, "ключ для CI ☕", ["read:packages"])
    assert "ключ для CI ☕" in text_of(created.text)
    info = token_infos(server, "tina")["ключ для CI ☕"]
    response = submit(browser, "/settings/tokens", f"/settings/tokens/{info.id}/revoke")
    assert response.status_code == 303
    # The notice (carried in a cookie, encoded) quotes the note in its own script.
    assert f'Revoked the token "ключ для CI ☕" ({info.prefix}...)' in text_of(browser.get("/settings/tokens").text)
    with registry(server, "tina", token) as client:
        assert client.get("/v2/").status_code == 401


def test_nobody_revokes_someone_elses_token(server: Server, browser: httpx.Client) -> None:
    ottos = server.token("otto", "read:packages")
    otto_id = token_infos(server, "otto")[""].id
    response = submit(browser, "/settings/tokens", f"/settings/tokens/{otto_id}/revoke")
    assert response.status_code == 404
    with registry(server, "otto", ottos) as client:
        assert client.get("/v2/").status_code == 200
    assert token_infos(server, "otto")[""].revoked_at is None


def test_forms_without_the_csrf_token_change_nothing(server: Server, browser: httpx.Client) -> None:
    before = len(token_infos(server, "tina"))
    response = browser.post(NEW, data={"note": "csrf", "scopes": "read:packages", "expires": "30"})
    assert response.status_code == 403 and not TOKEN_RE.search(response.text)
    assert len(token_infos(server, "tina")) == before

    token, _ = generate(browser, "keep me", ["read:packages"])
    info = token_infos(server, "tina")["keep me"]
    assert browser.post(f"/settings/tokens/{info.id}/revoke", data={"x": "1"}).status_code == 403
    assert browser.post(f"/settings/tokens/{info.id}/revoke", data={"csrf": "0" * 64}).status_code == 403
    with registry(server, "tina", token) as client:
        assert client.get("/v2/").status_code == 200


def test_a_token_cannot_mint_a_broader_token(server: Server) -> None:
    narrow = server.token("tina", "read:packages", "--note", "narrow", "--expires", "60d")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {narrow}"}, timeout=60) as viewer:
        form = viewer.get(NEW)
        assert form.status_code == 200 and "You are signed in with a token" in text_of(form.text)
        before = len(token_infos(server, "tina"))
        wider = submit(viewer, NEW, NEW, note="wider", scopes=["write:packages"], expires="30")
        assert wider.status_code == 403
        assert "cannot reach beyond them to write:packages" in text_of(wider.text)
        assert 'role="alert"' in wider.text and not TOKEN_RE.search(wider.text)
        forever = submit(viewer, NEW, NEW, note="forever", scopes=["read:packages"], expires="none")
        assert forever.status_code == 403 and "cannot create one that outlives it" in text_of(forever.text)
        assert len(token_infos(server, "tina")) == before

        # Within its reach it works, and it cannot revoke a wider token either.
        generate(viewer, "inside", ["read:packages"])
        assert token_infos(server, "tina")["inside"].scopes == ("read:packages",)
        server.token("tina", "read:packages,write:packages", "--note", "wide")
        wide = token_infos(server, "tina")["wide"]
        refused = submit(viewer, "/settings/tokens", f"/settings/tokens/{wide.id}/revoke")
        assert refused.status_code == 403 and "cannot reach beyond them" in text_of(refused.text)
        assert token_infos(server, "tina")["wide"].revoked_at is None


def test_signed_out_visitors_are_sent_to_sign_in(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        assert anonymous.get("/settings/tokens").headers["location"].startswith("/login?next=")
        token = csrf_of(anonymous.get("/login").text)
        response = anonymous.post(NEW, data={"csrf": token, "note": "x", "scopes": "read:packages"})
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
