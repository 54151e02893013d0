"""Docker token authentication: the challenge, the token endpoint (GET and OAuth2 POST), bearer
tokens and what makes them invalid, Basic on /v2/, rate limiting, passwords, and denial messages.

No request here may produce a 5xx, and no secret may reach the server log.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, select

from portside.access import accounts, keys, secrets
from portside.access.audit import events_since
from portside.metadata.schema import audit_events
from tests.support.blobs import digest_of, push_image
from tests.support.server import Server, no_server_error, running_server

SERVICE = "portside"
ALL_SCOPES = "read:packages,write:packages,delete:packages"


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client(server: Server, **kwargs: Any) -> httpx.Client:
    """A client with no credentials of its own, failing the test on any 5xx answer."""
    return httpx.Client(base_url=server.url, timeout=60, event_hooks={"response": [no_server_error]}, **kwargs)


def error(response: httpx.Response, status: int, code: str, *mentions: str) -> str:
    """Assert the spec's JSON error; return its message."""
    assert response.status_code == status, response.text
    (only,) = response.json()["errors"]
    assert only["code"] == code, only
    for mention in mentions:
        assert mention in only["message"], only
    return str(only["message"])


def challenge(server: Server, scope: str | None = None, error: str | None = None) -> str:
    value = f'Bearer realm="{server.url}/token",service="{SERVICE}"'
    if scope:
        value += f',scope="{scope}"'
    if error:
        value += f',error="{error}"'
    return value


def token_answer(http: httpx.Client, headers: dict[str, str], *scopes: str, **params: str) -> httpx.Response:
    query = [("service", SERVICE), *(("scope", scope) for scope in scopes), *params.items()]
    return http.get("/token", params=query, headers=headers)


def unverified(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def granted(token: str, name: str) -> set[str]:
    return {a for grant in unverified(token)["access"] if grant["name"] == name for a in grant["actions"]}


def signing_key(server: Server) -> ec.EllipticCurvePrivateKey:
    """The key that signs the server's bearer tokens, as every replica reads it from the database."""
    pem = server.read(lambda conn: keys.token_keys(conn, 300))[0][1]
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Setup:
    server: Server
    ana: str  # every package scope
    ana_read: str  # read:packages only
    ben: str
    ana_id: int


def _accounts(conn: Connection) -> tuple[str, str, str, int]:
    ana = accounts.create_user(conn, "ana")
    accounts.create_user(conn, "ben")
    accounts.create_user(conn, "pat", password="correct horse battery staple")
    accounts.create_org(conn, "crew", "ben")
    accounts.set_org_member(conn, "crew", "ana", "member")
    accounts.create_org(conn, "guild", "ben")
    accounts.create_org(conn, "closed", "ana")
    accounts.set_org(conn, "closed", registry_enabled=False)
    all_scopes = accounts.parse_scopes(ALL_SCOPES)
    return (
        accounts.create_token(conn, "ana", all_scopes)[0],
        accounts.create_token(conn, "ana", ("read:packages",))[0],
        accounts.create_token(conn, "ben", all_scopes)[0],
        ana.id,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    # Many tests here fail to authenticate on purpose: the rate limit has a test (and server) of its own.
    with running_server(
        tmp_path_factory.mktemp("token-auth"),
        "token-auth",
        extra_args=["--workers", "1"],
        env={"PORTSIDE_AUTH_MAX_FAILURES": "10000"},
    ) as server:
        db = server.database()
        try:
            ana, ana_read, ben, ana_id = db.write_sync(_accounts)
            with server.client() as admin:
                for package in ("ana/app", "ben/private", "ben/public"):
                    push_image(admin, package, "v1", seed=package)
            db.write_sync(lambda conn: accounts.set_visibility(conn, "ben/public", "public"))
        finally:
            db.close()
        yield Setup(server, ana, ana_read, ben, ana_id)


@pytest.fixture
def http(setup: Setup) -> Iterator[httpx.Client]:
    with client(setup.server) as c:
        yield c


# -- the challenge --------------------------------------------------------------------------------


def test_anonymous_requests_get_a_bearer_challenge_naming_the_scope(setup: Setup, http: httpx.Client) -> None:
    server = setup.server
    root = http.get("/v2/")
    error(root, 401, "UNAUTHORIZED")
    assert root.headers["www-authenticate"] == challenge(server)
    for method, path, actions in [
        ("GET", "/v2/ana/app/manifests/v1", "pull"),
        ("HEAD", "/v2/ana/app/manifests/v1", "pull"),
        ("GET", "/v2/ana/app/tags/list", "pull"),
        ("GET", "/v2/ana/app/blobs/sha256:" + "0" * 64, "pull"),
        ("POST", "/v2/ana/app/blobs/uploads/", "pull,push"),
        ("PUT", "/v2/ana/app/manifests/v2", "pull,push"),
        ("DELETE", "/v2/ana/app/manifests/v1", "delete"),
    ]:
        response = http.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == challenge(server, f"repository:ana/app:{actions}"), path
    # Anonymous clients may list what is public, and nothing else.
    catalog = http.get("/v2/_catalog")
    assert catalog.status_code == 200
    assert catalog.json()["repositories"] == ["ben/public"]


def test_a_bearer_token_without_the_scope_gets_insufficient_scope(setup: Setup, http: httpx.Client) -> None:
    pull_only = token_answer(http, basic("ana", setup.ana), "repository:ana/app:pull").json()["token"]
    assert http.get("/v2/ana/app/manifests/v1", headers=bearer(pull_only)).status_code == 200
    push = http.post("/v2/ana/app/blobs/uploads/", headers=bearer(pull_only))
    error(push, 401, "UNAUTHORIZED", "lacks scope repository:ana/app:pull,push")
    assert push.headers["www-authenticate"] == challenge(
        setup.server, "repository:ana/app:pull,push", "insufficient_scope"
    )
    other = http.get("/v2/ana/other/tags/list", headers=bearer(pull_only))
    assert other.headers["www-authenticate"] == challenge(
        setup.server, "repository:ana/other:pull", "insufficient_scope"
    )
    # The client does what the challenge says, and gets in.
    full = token_answer(http, basic("ana", setup.ana), "repository:ana/app:pull,push").json()["token"]
    assert http.post("/v2/ana/app/blobs/uploads/", headers=bearer(full)).status_code == 202


def _parse_challenge(value: str) -> dict[str, str]:
    scheme, _, params = value.partition(" ")
    assert scheme == "Bearer", value
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


def _mount(http: httpx.Client, target: str, source: str | None, digest: str, **headers: str) -> httpx.Response:
    params = {"mount": digest} if source is None else {"mount": digest, "from": source}
    return http.post(f"/v2/{target}/blobs/uploads/", params=params, headers=headers)


def _layer_of(package: str) -> str:
    """The layer the setup pushed to `package` (push_image with seed=package)."""
    return digest_of(f"layer-{package}".encode())


def test_a_mount_challenge_names_pull_on_the_source_too(setup: Setup, http: httpx.Client) -> None:
    """CNCF distribution's form: every scope the request needs, space-separated. A client that asks
    for exactly the challenged scope (the conformance suite's does) then mounts: 201."""
    layer = _layer_of("ana/app")
    first = _mount(http, "ana/mounted", "ana/app", layer)
    error(first, 401, "UNAUTHORIZED")
    fields = _parse_challenge(first.headers["www-authenticate"])
    assert fields["scope"].split(" ") == ["repository:ana/mounted:pull,push", "repository:ana/app:pull"]
    assert fields["realm"] == f"{setup.server.url}/token"
    assert "error" not in fields
    # A token for the target alone: the challenge is insufficient_scope, naming both again.
    target_only = token_answer(http, basic("ana", setup.ana), "repository:ana/mounted:pull,push").json()["token"]
    again = _mount(http, "ana/mounted", "ana/app", layer, Authorization=f"Bearer {target_only}")
    error(again, 401, "UNAUTHORIZED", "ana/app")
    fields = _parse_challenge(again.headers["www-authenticate"])
    assert fields["scope"] == "repository:ana/mounted:pull,push repository:ana/app:pull"
    assert fields["error"] == "insufficient_scope"
    # Exactly the challenged scope, as one space-separated value.
    token = token_answer(http, basic("ana", setup.ana), fields["scope"]).json()["token"]
    mounted = _mount(http, "ana/mounted", "ana/app", layer, Authorization=f"Bearer {token}")
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["docker-content-digest"] == layer
    blob = http.head(f"/v2/ana/mounted/blobs/{layer}", headers=bearer(token))
    assert blob.status_code == 200
    assert blob.headers["docker-content-digest"] == layer


def test_a_mount_from_an_unreadable_source_is_an_upload_not_an_error(setup: Setup, http: httpx.Client) -> None:
    layer = _layer_of("ben/private")
    first = _mount(http, "ana/nosteal", "ben/private", layer)
    scope = _parse_challenge(first.headers["www-authenticate"])["scope"]
    assert scope == "repository:ana/nosteal:pull,push repository:ben/private:pull"
    token = token_answer(http, basic("ana", setup.ana), scope).json()["token"]
    assert granted(token, "ben/private") == set()  # ana may not read it
    response = _mount(http, "ana/nosteal", "ben/private", layer, Authorization=f"Bearer {token}")
    assert response.status_code == 202, response.text  # upload it instead; nothing says it exists
    assert http.head(f"/v2/ana/nosteal/blobs/{layer}", headers=bearer(token)).status_code == 404
    # Basic credentials are decided directly: the same answer.
    direct = _mount(http, "ana/nosteal", "ben/private", layer, **basic("ana", setup.ana))
    assert direct.status_code == 202, direct.text


def test_an_automatic_mount_without_from_finds_a_readable_blob(setup: Setup, http: httpx.Client) -> None:
    public_layer = _layer_of("ben/public")
    first = _mount(http, "ana/auto", None, public_layer)
    assert _parse_challenge(first.headers["www-authenticate"])["scope"] == "repository:ana/auto:pull,push"
    token = token_answer(http, basic("ana", setup.ana), "repository:ana/auto:pull,push").json()["token"]
    mounted = _mount(http, "ana/auto", None, public_layer, Authorization=f"Bearer {token}")
    assert mounted.status_code == 201, mounted.text
    private_layer = _layer_of("ben/private")
    hidden = _mount(http, "ana/auto", None, private_layer, Authorization=f"Bearer {token}")
    assert hidden.status_code == 202, hidden.text


def test_a_bearer_token_is_not_a_login_for_the_anonymous(setup: Setup, http: httpx.Client) -> None:
    anonymous = token_answer(http, {}, "repository:ben/public:pull").json()["token"]
    assert http.get("/v2/ben/public/manifests/v1", headers=bearer(anonymous)).status_code == 200
    root = http.get("/v2/", headers=bearer(anonymous))
    error(root, 401, "UNAUTHORIZED")
    assert root.headers["www-authenticate"] == challenge(setup.server)


# -- GET /token -----------------------------------------------------------------------------------


def test_get_token_answer_and_jwt(setup: Setup, http: httpx.Client) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    response = token_answer(http, basic("ana", setup.ana), "repository:ana/app:pull,push")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at", "scope"}
    assert body["token"] == body["access_token"]
    assert body["scope"] == "repository:ana/app:pull,push"
    assert body["expires_in"] == 300
    issued = datetime.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= issued <= datetime.now(UTC)

    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256"
    assert header["kid"]
    claims = jwt.decode(
        body["token"], signing_key(setup.server).public_key(), algorithms=["ES256"], audience=SERVICE, issuer=SERVICE
    )
    assert claims["sub"] == "ana"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["iat"] == int(issued.timestamp())
    assert claims["access"] == [{"type": "repository", "name": "ana/app", "actions": ["pull", "push"]}]


def test_several_scopes_each_granted_as_far_as_allowed(setup: Setup, http: httpx.Client) -> None:
    response = token_answer(
        http,
        basic("ana", setup.ana),
        "repository:ana/app:pull,push,delete",
        "repository:ben/private:pull",  # private, and ana has no role: absent
        "repository:ben/public:pull,push",  # public: pull only
        "repository:crew/tool:push",  # ana is a member of crew: may create it
        "registry:catalog:*",
    )
    assert response.status_code == 200, response.text
    assert unverified(response.json()["token"])["access"] == [
        {"type": "repository", "name": "ana/app", "actions": ["pull", "push", "delete"]},
        {"type": "repository", "name": "ben/public", "actions": ["pull"]},
        {"type": "repository", "name": "crew/tool", "actions": ["push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    # Several scopes in one parameter, space-separated as in the OAuth2 form, count as several.
    joined = token_answer(http, basic("ana", setup.ana), "repository:ana/app:pull repository:ben/public:pull")
    assert [grant["name"] for grant in unverified(joined.json()["token"])["access"]] == ["ana/app", "ben/public"]
    # The token's scopes narrow the roles: the read-only token of the same user gets pull only.
    read_only = token_answer(http, basic("ana", setup.ana_read), "repository:ana/app:pull,push,delete")
    assert granted(read_only.json()["token"], "ana/app") == {"pull"}


def test_anonymous_tokens_grant_public_pulls_only(setup: Setup, http: httpx.Client) -> None:
    response = token_answer(http, {}, "repository:ben/public:pull,push", "repository:ben/private:pull")
    assert response.status_code == 200
    token = response.json()["token"]
    assert unverified(token)["access"] == [{"type": "repository", "name": "ben/public", "actions": ["pull"]}]
    assert unverified(token)["sub"] == ""
    offline = token_answer(http, {}, "repository:ben/public:pull", offline_token="true")
    assert "refresh_token" not in offline.json()  # nobody to refresh a token for


def test_offline_token_adds_a_refresh_token(setup: Setup, http: httpx.Client) -> None:
    body = token_answer(http, basic("ana", setup.ana), "repository:ana/app:pull", offline_token="true").json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at", "scope", "refresh_token"}
    refresh = unverified(body["refresh_token"])
    assert refresh["typ"] == "refresh"
    assert refresh["access"] == []
    assert refresh["sub"] == "ana"


def test_unknown_and_malformed_scopes_are_ignored(setup: Setup, http: httpx.Client) -> None:
    response = token_answer(
        http,
        basic("ana", setup.ana),
        "repository:ana/app:frobnicate",
        "repository:ana/app",
        "foo:bar:baz",
        "garbage",
        "",
        "registry:catalog:pull",
        "repository:Ana/App:pull",
        "repository:ana/app:pull",
    )
    assert response.status_code == 200, response.text
    assert unverified(response.json()["token"])["access"] == [
        {"type": "repository", "name": "ana/app", "actions": ["pull"]}
    ]


def test_a_token_for_another_service_is_refused(setup: Setup, http: httpx.Client) -> None:
    response = http.get("/token", params={"service": "registry.docker.io"}, headers=basic("ana", setup.ana))
    error(response, 400, "UNSUPPORTED", "portside", "registry.docker.io")


# -- POST /token (OAuth2) -------------------------------------------------------------------------


def oauth(http: httpx.Client, **form: str) -> httpx.Response:
    return http.post("/token", data={"service": SERVICE, "client_id": "portside-tests", **form})


def test_post_password_grant(setup: Setup, http: httpx.Client) -> None:
    response = oauth(
        http,
        grant_type="password",
        username="ana",
        password=setup.ana,
        scope="repository:ana/app:pull repository:ana/app:push",
        access_type="offline",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"token", "access_token", "expires_in", "issued_at", "refresh_token"} <= set(body)
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert granted(body["access_token"], "ana/app") == {"pull", "push"}
    assert http.post("/v2/ana/app/blobs/uploads/", headers=bearer(body["access_token"])).status_code == 202
    online = oauth(http, grant_type="password", username="ana", password=setup.ana, scope="repository:ana/app:pull")
    assert "refresh_token" not in online.json()


def test_post_refresh_token_grant(setup: Setup, http: httpx.Client) -> None:
    first = oauth(http, grant_type="password", username="ana", password=setup.ana, access_type="offline").json()
    assert unverified(first["access_token"])["access"] == []  # no scope asked for
    refresh_token = first["refresh_token"]
    response = oauth(http, grant_type="refresh_token", refresh_token=refresh_token, scope="repository:ana/app:pull")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refresh_token"] == refresh_token
    assert body["token"] == body["access_token"]
    assert granted(body["access_token"], "ana/app") == {"pull"}
    assert http.get("/v2/ana/app/manifests/v1", headers=bearer(body["access_token"])).status_code == 200
    # A refresh token is not a bearer token, and a bearer token is not a refresh token.
    misuse = http.get("/v2/ana/app/manifests/v1", headers=bearer(refresh_token))
    error(misuse, 401, "UNAUTHORIZED", "refresh token cannot be used as a bearer token")
    assert 'error="invalid_token"' in misuse.headers["www-authenticate"]
    wrong = oauth(http, grant_type="refresh_token", refresh_token=body["access_token"])
    error(wrong, 401, "UNAUTHORIZED", "not a refresh token")


def test_post_bad_requests(setup: Setup, http: httpx.Client) -> None:
    error(oauth(http, grant_type="authorization_code", code="x"), 400, "UNSUPPORTED", "password or refresh_token")
    error(oauth(http), 400, "UNSUPPORTED", "grant_type")
    error(oauth(http, grant_type="password", username="ana"), 400, "UNSUPPORTED", "username and password")
    error(oauth(http, grant_type="refresh_token"), 400, "UNSUPPORTED", "needs refresh_token")
    error(oauth(http, grant_type="refresh_token", refresh_token="garbage"), 401, "UNAUTHORIZED")
    error(oauth(http, grant_type="password", username="ana", password="wrong"), 401, "UNAUTHORIZED")
    error(oauth(http, grant_type="password", username="ana", password=setup.ana, service="other"), 400, "UNSUPPORTED")
    junk = http.post("/token", content=b"\xff\xfe{not a form", headers={"Content-Type": "application/json"})
    error(junk, 400, "UNSUPPORTED")


# -- wrong and malformed credentials --------------------------------------------------------------


def test_wrong_credentials_are_a_401_at_the_token_endpoint(setup: Setup, http: httpx.Client) -> None:
    unknown = secrets.new_token()
    cases = [
        (basic("ana", unknown), "unknown token"),
        (basic("ana", "hunter2"), "accepts personal access tokens, not passwords"),
        (basic("ben", setup.ana), "the token does not belong to ben"),
        (basic("nobody", setup.ana), "the token does not belong to nobody"),
        (basic("ana", setup.ana[:-1] + ("x" if setup.ana[-1] != "x" else "y")), "not passwords"),  # bad checksum
    ]
    for headers, reason in cases:
        error(token_answer(http, headers, "repository:ana/app:pull"), 401, "UNAUTHORIZED", reason)
        # The same on /v2/, which still answers with a Bearer challenge.
        response = http.get("/v2/ana/app/manifests/v1", headers=headers)
        error(response, 401, "UNAUTHORIZED", reason)
        assert response.headers["www-authenticate"] == challenge(
            setup.server, "repository:ana/app:pull", "invalid_token"
        )


MALFORMED = {
    "not base64": b"Basic !!!not-base64!!!",
    "no colon": b"Basic " + base64.b64encode(b"ana-without-colon"),
    "empty user": b"Basic " + base64.b64encode(b":secret"),
    "not UTF-8": b"Basic " + base64.b64encode(b"\xff\xfe:\xfd"),
    "not ASCII": b"Basic \xe9\xe9\xe9",
    "scheme alone": b"Basic",
    "empty bearer": b"Bearer",
    "unknown scheme": b"Digest username=ana",
    "just a word": b"token",
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_authorization_headers_get_a_401_never_a_500(setup: Setup, http: httpx.Client, header: bytes) -> None:
    headers = {"Authorization": header}  # type: ignore[dict-item]
    root = http.get("/v2/", headers=headers)
    error(root, 401, "UNAUTHORIZED")
    assert root.headers["www-authenticate"].startswith(challenge(setup.server))
    pull = http.get("/v2/ana/app/manifests/v1", headers=headers)
    error(pull, 401, "UNAUTHORIZED")
    assert pull.headers["www-authenticate"].startswith(challenge(setup.server, "repository:ana/app:pull"))
    error(token_answer(http, headers, "repository:ana/app:pull"), 401, "UNAUTHORIZED")


def test_an_empty_authorization_header_is_anonymous(setup: Setup, http: httpx.Client) -> None:
    assert http.get("/v2/", headers={"Authorization": ""}).status_code == 401
    assert http.get("/v2/ben/public/manifests/v1", headers={"Authorization": ""}).status_code == 200
    assert token_answer(http, {"Authorization": ""}, "repository:ben/public:pull").status_code == 200


# -- invalid bearer tokens ------------------------------------------------------------------------


def _assert_invalid_token(setup: Setup, http: httpx.Client, token: str, *mentions: str) -> None:
    response = http.get("/v2/ana/app/manifests/v1", headers=bearer(token))
    error(response, 401, "UNAUTHORIZED", *mentions)
    assert response.headers["www-authenticate"] == challenge(setup.server, "repository:ana/app:pull", "invalid_token")


def _payload(setup: Setup, **changes: Any) -> dict[str, Any]:
    issued = int(time.time())
    payload = {
        "iss": "portside",
        "sub": "ana",
        "aud": SERVICE,
        "iat": issued,
        "nbf": issued - 1,
        "exp": issued + 300,
        "jti": "forged",
        "uid": setup.ana_id,
        "access": [{"type": "repository", "name": "ana/app", "actions": ["pull"]}],
    }
    return {**payload, **changes}


def test_tampered_tokens_are_refused(setup: Setup, http: httpx.Client) -> None:
    token = token_answer(http, basic("ana", setup.ana_read), "repository:ana/app:pull").json()["token"]
    assert http.get("/v2/ana/app/manifests/v1", headers=bearer(token)).status_code == 200
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64url(payload))
    claims["access"][0]["actions"] = ["pull", "push", "delete"]
    raised = f"{header}.{_b64url(json.dumps(claims).encode())}.{signature}"
    _assert_invalid_token(setup, http, raised, "invalid")
    assert http.post("/v2/ana/app/blobs/uploads/", headers=bearer(raised)).status_code == 401
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    _assert_invalid_token(setup, http, f"{header}.{payload}.{flipped}", "invalid")
    none_header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    _assert_invalid_token(setup, http, f"{none_header}.{payload}.", "invalid")
    for garbage in ("not-a-jwt", "a.b.c", "....", "é.é.é", header):
        headers = {"Authorization": f"Bearer {garbage}".encode()}
        error(http.get("/v2/ana/app/manifests/v1", headers=headers), 401, "UNAUTHORIZED")  # type: ignore[arg-type]


def test_tokens_signed_by_another_key_are_refused(setup: Setup, http: httpx.Client) -> None:
    kid = jwt.get_unverified_header(token_answer(http, basic("ana", setup.ana)).json()["token"])["kid"]
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(_payload(setup), stranger, algorithm="ES256", headers={"kid": kid})
    _assert_invalid_token(setup, http, forged, "invalid")
    # The same claims signed with the registry's own key pass: the forgery failed for its key alone.
    genuine = jwt.encode(_payload(setup), signing_key(setup.server), algorithm="ES256", headers={"kid": kid})
    assert http.get("/v2/ana/app/manifests/v1", headers=bearer(genuine)).status_code == 200


def test_tokens_for_another_audience_or_expired_are_refused(setup: Setup, http: httpx.Client) -> None:
    key = signing_key(setup.server)
    other = jwt.encode(_payload(setup, aud="registry.docker.io"), key, algorithm="ES256")
    _assert_invalid_token(setup, http, other, "issued for another service")
    past = int(time.time()) - 3600
    expired = jwt.encode(_payload(setup, iat=past, nbf=past, exp=past + 300), key, algorithm="ES256")
    _assert_invalid_token(setup, http, expired, "expired")
    wrong_issuer = jwt.encode(_payload(setup, iss="someone-else"), key, algorithm="ES256")
    _assert_invalid_token(setup, http, wrong_issuer, "invalid")


def _revoke(server: Server, user: str, note: str) -> None:
    """`portside token revoke` of the user's token with this note."""
    db = server.database()
    try:
        (token_id,) = [t.id for t in db.read_sync(accounts.list_tokens, user) if t.note == note]
    finally:
        db.close()
    server.cli("token", "revoke", str(token_id))


def test_revoking_a_token_takes_effect_at_once(setup: Setup, http: httpx.Client) -> None:
    server = setup.server
    pat = server.token("ana", ALL_SCOPES, "--note", "to revoke")
    answer = token_answer(http, basic("ana", pat), "repository:ana/app:pull", offline_token="true").json()
    assert http.get("/v2/ana/app/manifests/v1", headers=bearer(answer["token"])).status_code == 200
    _revoke(server, "ana", "to revoke")
    _assert_invalid_token(setup, http, answer["token"], "revoked")  # an already issued bearer token
    error(token_answer(http, basic("ana", pat), "repository:ana/app:pull"), 401, "UNAUTHORIZED", "revoked")
    error(http.get("/v2/", headers=basic("ana", pat)), 401, "UNAUTHORIZED", "revoked")
    refreshed = oauth(http, grant_type="refresh_token", refresh_token=answer["refresh_token"])
    error(refreshed, 401, "UNAUTHORIZED", "revoked")


def test_a_revoked_token_is_refused_whatever_the_read_finds(setup: Setup, http: httpx.Client) -> None:
    """The check of the token behind a bearer token rides along with a manifest's or a blob's read
    (one statement on PostgreSQL): it must refuse what was found and what was not alike."""
    server = setup.server
    pat = server.token("ana", ALL_SCOPES, "--note", "revoked mid-pull")
    token = token_answer(http, basic("ana", pat), "repository:ana/app:pull").json()["token"]
    oci = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    manifest = http.get("/v2/ana/app/manifests/v1", headers={**bearer(token), **oci})
    assert manifest.status_code == 200
    config = manifest.json()["config"]["digest"]
    missing = "sha256:" + "0" * 64
    reads = [
        ("GET", "/v2/ana/app/manifests/v1", 200),
        ("HEAD", "/v2/ana/app/manifests/v1", 200),
        ("GET", f"/v2/ana/app/manifests/{manifest.headers['docker-content-digest']}", 200),
        ("GET", "/v2/ana/app/manifests/v2-never-pushed", 404),
        ("HEAD", f"/v2/ana/app/blobs/{config}", 200),
        ("GET", f"/v2/ana/app/blobs/{config}", 200),
        ("HEAD", f"/v2/ana/app/blobs/{missing}", 404),
        ("GET", f"/v2/ana/app/blobs/{missing}", 404),
        ("GET", "/v2/ana/app/blobs/sha256:nope", 400),
    ]
    for method, path, status in reads:
        assert http.request(method, path, headers=bearer(token)).status_code == status, (method, path)
    _revoke(server, "ana", "revoked mid-pull")
    for method, path, _ in reads:
        response = http.request(method, path, headers=bearer(token))
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.headers["www-authenticate"] == challenge(server, "repository:ana/app:pull", "invalid_token")
        if method == "GET":
            error(response, 401, "UNAUTHORIZED", "revoked")


def test_a_revoked_token_mounts_nothing(setup: Setup, http: httpx.Client) -> None:
    """A mount's token check rides along with the read of the source's blob: after a revocation
    the mount is a 401 and writes nothing."""
    server = setup.server
    pat = server.token("ana", ALL_SCOPES, "--note", "revoked before a mount")
    targets = ("repository:ana/mounted-first:pull,push", "repository:ana/mounted-later:pull,push")
    scopes = (*targets, "repository:ana/app:pull")
    token = token_answer(http, basic("ana", pat), *scopes).json()["token"]
    layer = _layer_of("ana/app")
    assert _mount(http, "ana/mounted-first", "ana/app", layer, Authorization=f"Bearer {token}").status_code == 201
    _revoke(server, "ana", "revoked before a mount")
    refused = _mount(http, "ana/mounted-later", "ana/app", layer, Authorization=f"Bearer {token}")
    error(refused, 401, "UNAUTHORIZED", "revoked")
    expected = challenge(server, "repository:ana/mounted-later:pull,push repository:ana/app:pull", "invalid_token")
    assert refused.headers["www-authenticate"] == expected
    with server.client() as admin:
        assert admin.head(f"/v2/ana/mounted-later/blobs/{layer}").status_code == 404


def test_a_revoked_token_finishes_no_upload(setup: Setup, http: httpx.Client) -> None:
    """The PUT that ends an upload reads the session first, and the token's check rides along with
    that read: after a revocation the PUT is a 401 and no blob is recorded."""
    server = setup.server
    pat = server.token("ana", ALL_SCOPES, "--note", "revoked mid-push")
    token = token_answer(http, basic("ana", pat), "repository:ana/app:pull,push").json()["token"]
    started = http.post("/v2/ana/app/blobs/uploads/", headers=bearer(token))
    assert started.status_code == 202
    data = b"never recorded " + str(time.time_ns()).encode()
    _revoke(server, "ana", "revoked mid-push")
    finish = {"params": {"digest": digest_of(data)}, "content": data, "headers": bearer(token)}
    finished = http.put(started.headers["location"], **finish)
    error(finished, 401, "UNAUTHORIZED", "revoked")
    assert finished.headers["www-authenticate"] == challenge(server, "repository:ana/app:pull,push", "invalid_token")
    with server.client() as admin:
        assert admin.head(f"/v2/ana/app/blobs/{digest_of(data)}").status_code == 404


def test_expired_personal_access_tokens_stop_working(setup: Setup, http: httpx.Client) -> None:
    server = setup.server
    pat = server.token("ana", ALL_SCOPES, "--expires", "3s")
    created = time.monotonic()
    answer = token_answer(http, basic("ana", pat), "repository:ana/app:pull")
    assert answer.status_code == 200, "the token expired before it could be used once"
    assert http.get("/v2/ana/app/manifests/v1", headers=bearer(answer.json()["token"])).status_code == 200
    time.sleep(max(0.0, 3.5 - (time.monotonic() - created)))
    _assert_invalid_token(setup, http, answer.json()["token"], "expired")
    error(token_answer(http, basic("ana", pat), "repository:ana/app:pull"), 401, "UNAUTHORIZED", "expired")
    error(http.get("/v2/", headers=basic("ana", pat)), 401, "UNAUTHORIZED", "expired")


def test_last_use_is_recorded(setup: Setup, http: httpx.Client) -> None:
    server = setup.server
    pat = server.token("ben", "read:packages", "--note", "last-used")

    def last_used() -> datetime | None:
        db = server.database()
        try:
            (info,) = [t for t in db.read_sync(accounts.list_tokens, "ben") if t.note == "last-used"]
        finally:
            db.close()
        return info.last_used_at

    assert last_used() is None
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    assert http.get("/v2/", headers=basic("ben", pat)).status_code == 200
    used = last_used()
    assert used is not None
    assert before <= used.replace(tzinfo=None) <= datetime.now(UTC).replace(tzinfo=None)


# -- Basic on /v2/ --------------------------------------------------------------------------------


def test_basic_with_a_token_works_directly_on_v2(setup: Setup) -> None:
    with client(setup.server, headers=basic("ana", setup.ana)) as http:
        root = http.get("/v2/")
        assert root.status_code == 200
        assert root.json() == {}
        digest, manifest = push_image(http, "ana/basic", "v1", seed="basic")
        assert http.get("/v2/ana/basic/manifests/v1").content == manifest
        assert http.get(f"/v2/ana/basic/manifests/{digest}").status_code == 200
        assert http.get("/v2/ana/basic/tags/list").json()["tags"] == ["v1"]
        assert http.delete(f"/v2/ana/basic/manifests/{digest}").status_code == 202


# -- denials that say why -------------------------------------------------------------------------


def test_disabled_organization_registry_says_how_to_enable_it(setup: Setup, http: httpx.Client) -> None:
    server = setup.server
    how = (
        "organization closed has not enabled the container registry; an owner can enable it in the "
        "organization's settings (/orgs/closed/settings) or with `portside org set closed --container-registry enabled`"
    )
    error(http.post("/v2/closed/app/blobs/uploads/", headers=basic("ana", setup.ana)), 403, "DENIED", how)
    token = token_answer(http, basic("ana", setup.ana), "repository:closed/app:pull,push").json()["token"]
    assert unverified(token)["access"] == []
    error(http.post("/v2/closed/app/blobs/uploads/", headers=bearer(token)), 403, "DENIED", how)
    # Logging in cannot help, so the anonymous are told why too rather than challenged.
    error(http.get("/v2/closed/app/manifests/v1"), 403, "DENIED", how)
    server.cli("org", "set", "closed", "--container-registry", "enabled")
    try:
        assert http.post("/v2/closed/app/blobs/uploads/", headers=basic("ana", setup.ana)).status_code == 202
    finally:
        server.cli("org", "set", "closed", "--container-registry", "disabled")


def test_push_to_a_namespace_that_does_not_exist(setup: Setup, http: httpx.Client) -> None:
    for headers in (basic("ana", setup.ana), {}):
        error(
            http.post("/v2/nobody-here/app/blobs/uploads/", headers=headers),
            403,
            "DENIED",
            "namespace nobody-here does not exist; push to a user or organization that exists",
        )
    error(
        http.post("/v2/lonely/blobs/uploads/", headers=basic("ana", setup.ana)),
        403,
        "DENIED",
        "lonely has no owner: name packages OWNER/NAME, e.g. ana/lonely",
    )
    # Pulling from it is simply "not found".
    error(http.get("/v2/nobody-here/app/manifests/v1", headers=basic("ana", setup.ana)), 404, "NAME_UNKNOWN")


def test_push_to_another_users_namespace_or_an_organization_one_is_not_in(setup: Setup, http: httpx.Client) -> None:
    error(
        http.post("/v2/ben/mine/blobs/uploads/", headers=basic("ana", setup.ana)),
        403,
        "DENIED",
        "only ben can publish packages to the ben namespace",
    )
    error(
        http.post("/v2/guild/thing/blobs/uploads/", headers=basic("ana", setup.ana)),
        403,
        "DENIED",
        "ana is not a member of organization guild, so cannot publish packages there",
    )
    error(
        http.post("/v2/ana/thing/blobs/uploads/", headers=basic("ben", setup.ben)),
        403,
        "DENIED",
        "only ana can publish packages to the ana namespace",
    )
    # A visible package says which role is missing and how to get it.
    error(
        http.post("/v2/ben/public/blobs/uploads/", headers=basic("ana", setup.ana)),
        403,
        "DENIED",
        "ana has read access to ben/public, and push needs write",
        "portside package grant ben/public --user ana --role write",
    )
    # A private one the caller cannot see does not exist, as far as the caller knows.
    error(http.post("/v2/ben/private/blobs/uploads/", headers=basic("ana", setup.ana)), 404, "NAME_UNKNOWN")


def test_only_limits_a_token_to_the_listed_packages(setup: Setup, http: httpx.Client) -> None:
    pat = setup.server.token("ana", ALL_SCOPES, "--only", "ana/app,crew/*")
    answer = token_answer(
        http,
        basic("ana", pat),
        "repository:ana/app:pull,push",
        "repository:ana/basic:pull,push",
        "repository:crew/nested/tool:push",
    )
    access = unverified(answer.json()["token"])["access"]
    assert access == [
        {"type": "repository", "name": "ana/app", "actions": ["pull", "push"]},
        {"type": "repository", "name": "crew/nested/tool", "actions": ["push"]},
    ]
    error(
        http.post("/v2/ana/elsewhere/blobs/uploads/", headers=basic("ana", pat)),
        403,
        "DENIED",
        "your token is limited to ana/app, crew/* and cannot be used for ana/elsewhere",
    )
    assert http.post("/v2/ana/app/blobs/uploads/", headers=basic("ana", pat)).status_code == 202
    catalog = http.get("/v2/_catalog", headers=basic("ana", pat)).json()["repositories"]
    assert catalog == ["ana/app"]  # ana/basic and ben/public are readable, but not with this token


# -- the rate limit -------------------------------------------------------------------------------


def test_failed_authentications_are_rate_limited_per_address_and_per_user(tmp_path: Path) -> None:
    env = {"PORTSIDE_AUTH_MAX_FAILURES": "3", "PORTSIDE_AUTH_FAILURE_WINDOW_SECONDS": "4"}
    with running_server(tmp_path, "token-auth-rate-limit", extra_args=["--workers", "1"], env=env) as server:
        db = server.database()
        try:
            ana, ben = db.write_sync(
                lambda conn: [
                    accounts.create_token(conn, accounts.create_user(conn, user).name, ("read:packages",))[0]
                    for user in ("ana", "ben")
                ]
            )
        finally:
            db.close()
        wrong = secrets.new_token()
        with client(server) as http, client(server, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            for _ in range(3):
                error(token_answer(http, basic("ana", wrong)), 401, "UNAUTHORIZED", "unknown token")
            limited = token_answer(http, basic("ana", ana))  # right, but too late
            error(limited, 429, "TOOMANYREQUESTS", "too many failed sign-in attempts")
            retry_after = int(limited.headers["retry-after"])
            assert 1 <= retry_after <= 5
            v2 = http.get("/v2/", headers=basic("ana", ana))
            error(v2, 429, "TOOMANYREQUESTS")
            assert 1 <= int(v2.headers["retry-after"]) <= 5
            error(oauth(http, grant_type="password", username="ana", password=ana), 429, "TOOMANYREQUESTS")
            # Per user: ana is limited from any address. Per address: anyone from 127.0.0.1 is.
            error(token_answer(other, basic("ana", ana)), 429, "TOOMANYREQUESTS")
            assert token_answer(other, basic("ben", ben)).status_code == 200
            error(token_answer(http, basic("ben", ben)), 429, "TOOMANYREQUESTS")
            assert other.get("/v2/", headers=basic("ben", ben)).status_code == 200
            time.sleep(retry_after)
            assert token_answer(http, basic("ana", ana)).status_code == 200
        db = server.database()
        try:
            events = db.read_sync(events_since, datetime.now(UTC) - timedelta(hours=1))
        finally:
            db.close()
        failed = [e for e in events if e.action == "auth.failure"]
        assert [(e.actor, e.target, e.client) for e in failed] == [("ana", "ana", "127.0.0.1")] * 3
        assert all(wrong not in json.dumps(e.detail) for e in failed)
        # Sign-ins are recorded too, once a minute per token at most (clients sign in for every pull).
        logins = [(e.actor, e.client) for e in events if e.action == "auth.login"]
        assert ("ben", "127.0.0.2") in logins
        assert logins.count(("ana", "127.0.0.1")) == 1


# -- passwords and short-lived tokens -------------------------------------------------------------


def test_passwords_are_refused_on_the_registry_by_default(setup: Setup, http: httpx.Client) -> None:
    password = "correct horse battery staple"
    reason = "the registry accepts personal access tokens, not passwords"
    error(token_answer(http, basic("pat", password), "repository:pat/app:pull"), 401, "UNAUTHORIZED", reason)
    error(http.get("/v2/", headers=basic("pat", password)), 401, "UNAUTHORIZED", reason)
    error(oauth(http, grant_type="password", username="pat", password=password), 401, "UNAUTHORIZED", reason)


@pytest.fixture(scope="module")
def relaxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server configured away from the defaults: passwords accepted, bearer tokens living 1 second."""
    env = {"PORTSIDE_ALLOW_PASSWORD_LOGIN": "true", "PORTSIDE_TOKEN_LIFETIME_SECONDS": "1"}
    with running_server(
        tmp_path_factory.mktemp("relaxed"), "token-auth-relaxed", extra_args=["--workers", "1"], env=env
    ) as server:
        db = server.database()
        try:
            db.write_sync(lambda conn: accounts.create_user(conn, "pat", password="correct horse battery staple"))
        finally:
            db.close()
        yield server


def test_passwords_work_when_the_operator_allows_them(relaxed: Server) -> None:
    password = "correct horse battery staple"
    with client(relaxed) as http:
        answer = token_answer(http, basic("pat", password), "repository:pat/app:pull,push")
        assert answer.status_code == 200, answer.text
        token = answer.json()["token"]
        assert granted(token, "pat/app") == {"pull", "push"}
        assert "pat" not in unverified(token)  # no personal access token behind it
        assert http.post("/v2/pat/app/blobs/uploads/", headers=bearer(token)).status_code == 202
        assert http.post("/v2/pat/app/blobs/uploads/", headers=basic("pat", password)).status_code == 202
        form = {"grant_type": "password", "username": "pat", "password": password, "service": SERVICE}
        assert http.post("/token", data=form).status_code == 200
        for user, secret in (("pat", "wrong password"), ("nobody", password)):
            error(token_answer(http, basic(user, secret)), 401, "UNAUTHORIZED", "wrong user name or password")
    assert password not in relaxed.log_path.read_text()


def test_bearer_tokens_expire(relaxed: Server) -> None:
    with client(relaxed) as http:
        answer = token_answer(http, basic("pat", "correct horse battery staple"), "repository:pat/app:pull").json()
        assert answer["expires_in"] == 1
        token = answer["token"]
        claims = unverified(token)
        assert claims["exp"] - claims["iat"] == 1
        assert http.get("/v2/", headers=bearer(token)).status_code == 200
        # Expiry is checked with 5 seconds' leeway for clock skew between issuer and verifier.
        time.sleep(max(0.0, claims["exp"] + 5.5 - time.time()))
        response = http.get("/v2/", headers=bearer(token))
        error(response, 401, "UNAUTHORIZED", "expired")
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


# -- secrets stay out of the log ------------------------------------------------------------------


def test_secrets_never_appear_in_the_log_or_the_audit_trail(setup: Setup, http: httpx.Client) -> None:
    server = setup.server
    server.cli("user", "create", "sec", "--password-stdin", stdin="sec-password-123\n")
    pat = server.token("sec", ALL_SCOPES)
    seen = [pat, "sec-password-123"]
    answer = token_answer(http, basic("sec", pat), "repository:sec/app:pull,push", offline_token="true").json()
    seen += [answer["token"], answer["refresh_token"]]
    refreshed = oauth(http, grant_type="refresh_token", refresh_token=answer["refresh_token"]).json()
    seen.append(refreshed["access_token"])
    oauth(http, grant_type="password", username="sec", password=pat)
    oauth(http, grant_type="password", username="sec", password="sec-password-123")
    http.post("/v2/sec/app/blobs/uploads/", headers=bearer(answer["token"]))
    http.get("/v2/", headers=basic("sec", pat))
    http.get("/v2/", headers=basic("sec", "sec-password-123"))
    http.get("/v2/", headers=basic("ana", pat))  # right token, wrong user
    http.get("/v2/", headers={"Authorization": f"Basic {pat}"})  # the token itself, not base64
    http.get("/v2/", headers={"Authorization": f"Bearer {pat}"})  # a token where a JWT belongs

    log = server.log_path.read_text()
    assert '"GET /token" 200' in log  # the log is written, and has the requests above
    assert '"POST /token" 401' in log
    assert '"GET /v2/" 401' in log
    for secret in seen:
        assert secret not in log

    def audit(conn: Connection) -> str:
        rows = conn.execute(
            select(audit_events.c.actor, audit_events.c.action, audit_events.c.target, audit_events.c.detail)
        ).all()
        return json.dumps([list(row) for row in rows])

    db = server.database()
    try:
        trail = db.read_sync(audit)
    finally:
        db.close()
    assert '"auth.failure", "sec"' in trail  # the failures above were recorded
    for secret in seen:
        assert secret not in trail
