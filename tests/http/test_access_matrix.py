"""The access rules as a full matrix over real HTTP, through the Docker token flow.

actor (anonymous, namespace owner, organization owner, organization member, team member, outsider,
site admin) x visibility (private, internal, public) x role granted (none, read, write, admin)
x token scope (read, write, read+write+delete, delete) x action (pull, push, delete).

Every cell fetches a bearer token from GET /token with Basic user:token, checks the actions granted
in its `access` claim, and makes the real registry requests with it (GET manifest and tags/list for
pull, a blob upload for push, DELETE of a tag for delete); then makes the same requests with Basic
user:token on /v2/ directly. The expected outcome of every cell is written out in MATRIX below,
worked out by hand from the rules in docs/access.md (never by calling `decide`). The catalog is
checked against the same table, which checks the SQL twin of `decide` (access/visibility.py) too.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import Connection, select

from portside.access import accounts
from portside.metadata.schema import repositories, tags
from tests.support.blobs import push_image
from tests.support.server import Server, no_server_error, running_server

SCOPES = {
    "R": "read:packages",
    "W": "write:packages",
    "RWD": "read:packages,write:packages,delete:packages",
    "D": "delete:packages",
}
USERS = ("alice", "olga", "mike", "tina", "oscar", "sam")  # sam is a site admin
ACTORS = ("anonymous", *USERS)
ACTIONS = ("pull", "push", "delete")
GRANTS = ("none", "read", "write", "admin")

# Who is who:
#   alice  owns the user namespace alice
#   olga   owns the organizations acme and shut
#   mike   is a member of acme (and of shut); roles on acme packages are granted to him directly
#   tina   is a member of acme and of its team devs; roles on acme packages are granted to the team
#   oscar  belongs to no organization; roles are granted to him directly
#   sam    is a site admin
# acme/VISIBILITY-GRANT: GRANT is the role given to mike, to the team devs and to oscar.
# alice/VISIBILITY-GRANT: GRANT is the role given to tina and to oscar (directly; teams are for orgs).
# shut/app: public, mike has admin, but the organization shut has disabled its container registry.
#
# One character per action (pull, push, delete):
#   +  allowed (200 for pull, 202 for push and delete), and granted in the bearer token
#   1  401 UNAUTHORIZED with a Bearer challenge (log in / fetch a token)
#   3  403 DENIED
#   4  404 NAME_UNKNOWN: the package is hidden from this actor
# Users have one column per token scope: R (read:packages), W (write:packages),
# RWD (read, write and delete:packages), D (delete:packages alone).
MATRIX = """
# package            actor      R    W    RWD  D
acme/private-none    anonymous  111
acme/private-none    alice      444  444  444  444
acme/private-none    olga       +33  ++3  +++  33+
acme/private-none    mike       444  444  444  444
acme/private-none    tina       444  444  444  444
acme/private-none    oscar      444  444  444  444
acme/private-none    sam        +33  ++3  +++  33+
acme/private-read    anonymous  111
acme/private-read    alice      444  444  444  444
acme/private-read    olga       +33  ++3  +++  33+
acme/private-read    mike       +33  +33  +33  333
acme/private-read    tina       +33  +33  +33  333
acme/private-read    oscar      +33  +33  +33  333
acme/private-read    sam        +33  ++3  +++  33+
acme/private-write   anonymous  111
acme/private-write   alice      444  444  444  444
acme/private-write   olga       +33  ++3  +++  33+
acme/private-write   mike       +33  ++3  ++3  333
acme/private-write   tina       +33  ++3  ++3  333
acme/private-write   oscar      +33  ++3  ++3  333
acme/private-write   sam        +33  ++3  +++  33+
acme/private-admin   anonymous  111
acme/private-admin   alice      444  444  444  444
acme/private-admin   olga       +33  ++3  +++  33+
acme/private-admin   mike       +33  ++3  +++  33+
acme/private-admin   tina       +33  ++3  +++  33+
acme/private-admin   oscar      +33  ++3  +++  33+
acme/private-admin   sam        +33  ++3  +++  33+
acme/internal-none   anonymous  111
acme/internal-none   alice      444  444  444  444
acme/internal-none   olga       +33  ++3  +++  33+
acme/internal-none   mike       +33  +33  +33  333
acme/internal-none   tina       +33  +33  +33  333
acme/internal-none   oscar      444  444  444  444
acme/internal-none   sam        +33  ++3  +++  33+
acme/internal-read   anonymous  111
acme/internal-read   alice      444  444  444  444
acme/internal-read   olga       +33  ++3  +++  33+
acme/internal-read   mike       +33  +33  +33  333
acme/internal-read   tina       +33  +33  +33  333
acme/internal-read   oscar      +33  +33  +33  333
acme/internal-read   sam        +33  ++3  +++  33+
acme/internal-write  anonymous  111
acme/internal-write  alice      444  444  444  444
acme/internal-write  olga       +33  ++3  +++  33+
acme/internal-write  mike       +33  ++3  ++3  333
acme/internal-write  tina       +33  ++3  ++3  333
acme/internal-write  oscar      +33  ++3  ++3  333
acme/internal-write  sam        +33  ++3  +++  33+
acme/internal-admin  anonymous  111
acme/internal-admin  alice      444  444  444  444
acme/internal-admin  olga       +33  ++3  +++  33+
acme/internal-admin  mike       +33  ++3  +++  33+
acme/internal-admin  tina       +33  ++3  +++  33+
acme/internal-admin  oscar      +33  ++3  +++  33+
acme/internal-admin  sam        +33  ++3  +++  33+
acme/public-none     anonymous  +11
acme/public-none     alice      +33  +33  +33  333
acme/public-none     olga       +33  ++3  +++  33+
acme/public-none     mike       +33  +33  +33  333
acme/public-none     tina       +33  +33  +33  333
acme/public-none     oscar      +33  +33  +33  333
acme/public-none     sam        +33  ++3  +++  33+
acme/public-read     anonymous  +11
acme/public-read     alice      +33  +33  +33  333
acme/public-read     olga       +33  ++3  +++  33+
acme/public-read     mike       +33  +33  +33  333
acme/public-read     tina       +33  +33  +33  333
acme/public-read     oscar      +33  +33  +33  333
acme/public-read     sam        +33  ++3  +++  33+
acme/public-write    anonymous  +11
acme/public-write    alice      +33  +33  +33  333
acme/public-write    olga       +33  ++3  +++  33+
acme/public-write    mike       +33  ++3  ++3  333
acme/public-write    tina       +33  ++3  ++3  333
acme/public-write    oscar      +33  ++3  ++3  333
acme/public-write    sam        +33  ++3  +++  33+
acme/public-admin    anonymous  +11
acme/public-admin    alice      +33  +33  +33  333
acme/public-admin    olga       +33  ++3  +++  33+
acme/public-admin    mike       +33  ++3  +++  33+
acme/public-admin    tina       +33  ++3  +++  33+
acme/public-admin    oscar      +33  ++3  +++  33+
acme/public-admin    sam        +33  ++3  +++  33+
alice/private-none   anonymous  111
alice/private-none   alice      +33  ++3  +++  33+
alice/private-none   olga       444  444  444  444
alice/private-none   mike       444  444  444  444
alice/private-none   tina       444  444  444  444
alice/private-none   oscar      444  444  444  444
alice/private-none   sam        +33  ++3  +++  33+
alice/private-read   anonymous  111
alice/private-read   alice      +33  ++3  +++  33+
alice/private-read   olga       444  444  444  444
alice/private-read   mike       444  444  444  444
alice/private-read   tina       +33  +33  +33  333
alice/private-read   oscar      +33  +33  +33  333
alice/private-read   sam        +33  ++3  +++  33+
alice/private-write  anonymous  111
alice/private-write  alice      +33  ++3  +++  33+
alice/private-write  olga       444  444  444  444
alice/private-write  mike       444  444  444  444
alice/private-write  tina       +33  ++3  ++3  333
alice/private-write  oscar      +33  ++3  ++3  333
alice/private-write  sam        +33  ++3  +++  33+
alice/private-admin  anonymous  111
alice/private-admin  alice      +33  ++3  +++  33+
alice/private-admin  olga       444  444  444  444
alice/private-admin  mike       444  444  444  444
alice/private-admin  tina       +33  ++3  +++  33+
alice/private-admin  oscar      +33  ++3  +++  33+
alice/private-admin  sam        +33  ++3  +++  33+
alice/public-none    anonymous  +11
alice/public-none    alice      +33  ++3  +++  33+
alice/public-none    olga       +33  +33  +33  333
alice/public-none    mike       +33  +33  +33  333
alice/public-none    tina       +33  +33  +33  333
alice/public-none    oscar      +33  +33  +33  333
alice/public-none    sam        +33  ++3  +++  33+
alice/public-read    anonymous  +11
alice/public-read    alice      +33  ++3  +++  33+
alice/public-read    olga       +33  +33  +33  333
alice/public-read    mike       +33  +33  +33  333
alice/public-read    tina       +33  +33  +33  333
alice/public-read    oscar      +33  +33  +33  333
alice/public-read    sam        +33  ++3  +++  33+
alice/public-write   anonymous  +11
alice/public-write   alice      +33  ++3  +++  33+
alice/public-write   olga       +33  +33  +33  333
alice/public-write   mike       +33  +33  +33  333
alice/public-write   tina       +33  ++3  ++3  333
alice/public-write   oscar      +33  ++3  ++3  333
alice/public-write   sam        +33  ++3  +++  33+
alice/public-admin   anonymous  +11
alice/public-admin   alice      +33  ++3  +++  33+
alice/public-admin   olga       +33  +33  +33  333
alice/public-admin   mike       +33  +33  +33  333
alice/public-admin   tina       +33  ++3  +++  33+
alice/public-admin   oscar      +33  ++3  +++  33+
alice/public-admin   sam        +33  ++3  +++  33+
shut/app             anonymous  333
shut/app             alice      333  333  333  333
shut/app             olga       333  333  333  333
shut/app             mike       333  333  333  333
shut/app             tina       333  333  333  333
shut/app             oscar      333  333  333  333
shut/app             sam        333  333  333  333
"""

# Pushing to packages that do not exist yet: the push outcome per token scope, for NAMESPACE/new-...
# acme is an organization, alice a user, ghost exists as neither.
CREATION = """
# namespace  actor      R  W  RWD  D
acme         anonymous  1
acme         alice      3  3  3    3
acme         olga       3  +  +    3
acme         mike       3  +  +    3
acme         tina       3  +  +    3
acme         oscar      3  3  3    3
acme         sam        3  +  +    3
alice        anonymous  1
alice        alice      3  +  +    3
alice        olga       3  3  3    3
alice        mike       3  3  3    3
alice        tina       3  3  3    3
alice        oscar      3  3  3    3
alice        sam        3  +  +    3
ghost        anonymous  3
ghost        alice      3  3  3    3
ghost        olga       3  3  3    3
ghost        mike       3  3  3    3
ghost        tina       3  3  3    3
ghost        oscar      3  3  3    3
ghost        sam        3  3  3    3
"""

Key = tuple[str, str, str | None]  # (package or namespace, actor, token scope; None for anonymous)


def parse(table: str) -> dict[Key, str]:
    cells: dict[Key, str] = {}
    for line in table.strip().splitlines():
        if line.startswith("#"):
            continue
        target, actor, *outcomes = line.split()
        if actor == "anonymous":
            (cells[target, actor, None],) = outcomes
            continue
        assert len(outcomes) == len(SCOPES), line
        for scope, outcome in zip(SCOPES, outcomes, strict=True):
            cells[target, actor, scope] = outcome
    return cells


CELLS = parse(MATRIX)
PACKAGES = tuple(dict.fromkeys(package for package, _, _ in CELLS))
CREATIONS = parse(CREATION)
MODES = ("bearer", "basic")
OK_STATUS = {"pull": 200, "tags": 200, "push": 202, "delete": 202, "create": 201}
DENIALS = {"1": (401, "UNAUTHORIZED"), "3": (403, "DENIED"), "4": (404, "NAME_UNKNOWN")}
CHALLENGE_ACTIONS = {"pull": "pull", "tags": "pull", "push": "pull,push", "delete": "delete", "create": "pull,push"}


def test_the_tables_cover_every_cell() -> None:
    assert len(PACKAGES) == 21
    assert len(CELLS) == len(PACKAGES) * (1 + len(USERS) * len(SCOPES))
    assert {actor for _, actor, _ in CELLS} == set(ACTORS)
    assert all(len(outcome) == len(ACTIONS) for outcome in CELLS.values())
    assert len(CREATIONS) == 3 * (1 + len(USERS) * len(SCOPES))


# -- the scenario: one server, set up once --------------------------------------------------------


def delete_tag(actor: str, scope: str | None, mode: str, outcome: str) -> str:
    """The tag a cell tries to delete: its own where the delete is to be allowed, so that it disturbs no
    other cell; otherwise v1, which every cell pulls, so that a delete wrongly allowed is seen twice."""
    return f"d-{actor}-{scope or 'none'}-{mode}".lower() if outcome[2] == "+" else "v1"


@dataclass
class Scenario:
    server: Server
    tokens: dict[tuple[str, str], str]  # (user, scope) -> personal access token

    def basic(self, actor: str, scope: str | None) -> dict[str, str]:
        if scope is None:
            return {}
        credentials = f"{actor}:{self.tokens[actor, scope]}".encode()
        return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=60, event_hooks={"response": [no_server_error]})

    def bearer(self, http: httpx.Client, actor: str, scope: str | None, *scopes: str) -> tuple[str, list[Any]]:
        """A bearer token from GET /token, and its `access` claim (read without checking the signature)."""
        params = [("service", "portside"), *(("scope", s) for s in scopes)]
        response = http.get("/token", params=params, headers=self.basic(actor, scope))
        assert response.status_code == 200, f"token for {actor}:{scope}: {response.status_code} {response.text}"
        token = response.json()["token"]
        return token, jwt.decode(token, options={"verify_signature": False})["access"]

    def tags_in_database(self, package: str) -> set[str]:
        def query(conn: Connection) -> set[str]:
            rows = conn.execute(select(tags.c.name).join(repositories).where(repositories.c.name == package))
            return set(rows.scalars())

        db = self.server.database()
        try:
            return db.read_sync(query)
        finally:
            db.close()


def _accounts_and_tokens(conn: Connection) -> dict[tuple[str, str], str]:
    for user in USERS:
        accounts.create_user(conn, user, admin=user == "sam")
    accounts.create_org(conn, "acme", "olga")
    accounts.set_org_member(conn, "acme", "mike", "member")
    accounts.set_org_member(conn, "acme", "tina", "member")
    accounts.create_team(conn, "acme", "devs")
    accounts.add_team_member(conn, "acme", "devs", "tina")
    accounts.create_org(conn, "shut", "olga")
    accounts.set_org_member(conn, "shut", "mike", "member")
    return {
        (user, scope): accounts.create_token(conn, user, accounts.parse_scopes(value), note=f"matrix {scope}")[0]
        for user in USERS
        for scope, value in SCOPES.items()
    }


def _visibility_and_grants(conn: Connection) -> None:
    for package in PACKAGES:
        if package == "shut/app":
            accounts.set_visibility(conn, package, "public")
            accounts.grant(conn, package, "admin", user="mike")
            accounts.set_org(conn, "shut", registry_enabled=False)
            continue
        owner, name = package.split("/")
        visibility, role = name.split("-")
        accounts.set_visibility(conn, package, visibility)
        if role == "none":
            continue
        if owner == "acme":
            accounts.grant(conn, package, role, user="mike")
            accounts.grant(conn, package, role, team="acme/devs")
            accounts.grant(conn, package, role, user="oscar")
        else:
            accounts.grant(conn, package, role, user="tina")
            accounts.grant(conn, package, role, user="oscar")


def _push_package(server: Server, package: str) -> None:
    """v1, plus a tag for every cell allowed to delete; pushed by the bootstrap admin (not an actor)."""
    with server.client() as admin:
        _, manifest = push_image(admin, package, "v1", seed=package)
        for (_, actor, scope), outcome in [(cell, o) for cell, o in CELLS.items() if cell[0] == package]:
            for mode in MODES if outcome[2] == "+" else ():
                response = admin.put(
                    f"/v2/{package}/manifests/{delete_tag(actor, scope, mode, outcome)}",
                    content=manifest,
                    headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                )
                assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with running_server(
        tmp_path_factory.mktemp("access-matrix"),
        "access-matrix",
        extra_args=["--workers", "2"],
        env={"PORTSIDE_FSYNC": "false"},  # the matrix is about access, not durability
    ) as server:
        db = server.database()
        try:
            tokens = db.write_sync(_accounts_and_tokens)
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda package: _push_package(server, package), PACKAGES))
            db.write_sync(_visibility_and_grants)
        finally:
            db.close()
        yield Scenario(server, tokens)


def run_all(check: Callable[..., list[str]], cells: list[tuple[Any, ...]]) -> list[str]:
    with ThreadPoolExecutor(6) as pool:
        return [problem for problems in pool.map(lambda cell: check(*cell), cells) for problem in problems]


# -- the matrix -----------------------------------------------------------------------------------


def _mismatch(
    scenario: Scenario, response: httpx.Response, request: str, want: str, package: str, mode: str
) -> str | None:
    """What is wrong with one answer, or None."""
    status = response.status_code
    if want == "+":
        if status != OK_STATUS[request]:
            return f"{request} answered {status} {response.text[:300]}, expected {OK_STATUS[request]}"
        if request == "tags" and "v1" not in response.json()["tags"]:
            return f"tags/list lacks v1: {response.text[:300]}"
        return None
    expected_status, expected_code = DENIALS[want]
    if status != expected_status:
        return f"{request} answered {status} {response.text[:300]}, expected {expected_status}"
    code = response.json()["errors"][0]["code"]
    if code != expected_code:
        return f"{request} answered {status} with code {code}, expected {expected_code}"
    message = response.json()["errors"][0]["message"]
    if package == "shut/app" and "`portside org set shut --container-registry enabled`" not in message:
        return f"{request}: the denial does not say how to enable the registry: {message}"
    if want == "1":
        challenge = (
            f'Bearer realm="{scenario.server.url}/token",service="portside",'
            f'scope="repository:{package}:{CHALLENGE_ACTIONS[request]}"'
        )
        if mode == "bearer":
            challenge += ',error="insufficient_scope"'
        if response.headers.get("www-authenticate") != challenge:
            return f"{request}: challenge {response.headers.get('www-authenticate')!r}, expected {challenge!r}"
    return None


def _check_cell(scenario: Scenario, package: str, actor: str, scope: str | None, outcome: str) -> list[str]:
    problems = []
    with scenario.client() as http:
        token, access = scenario.bearer(http, actor, scope, f"repository:{package}:pull,push,delete")
        granted = [action for grant in access for action in grant["actions"]]
        expected = [action for action, result in zip(ACTIONS, outcome, strict=True) if result == "+"]
        if granted != expected or any(grant["name"] != package for grant in access):
            problems.append(f"token for {actor}:{scope} on {package} grants {access}, expected {expected}")
        for mode in MODES:
            headers = {"Authorization": f"Bearer {token}"} if mode == "bearer" else scenario.basic(actor, scope)
            answers = {
                "pull": http.get(f"/v2/{package}/manifests/v1", headers=headers),
                "tags": http.get(f"/v2/{package}/tags/list", headers=headers),
                "push": http.post(f"/v2/{package}/blobs/uploads/", headers=headers),
                "delete": http.delete(
                    f"/v2/{package}/manifests/{delete_tag(actor, scope, mode, outcome)}", headers=headers
                ),
            }
            wanted = {"pull": outcome[0], "tags": outcome[0], "push": outcome[1], "delete": outcome[2]}
            for request, response in answers.items():
                problem = _mismatch(scenario, response, request, wanted[request], package, mode)
                if problem:
                    problems.append(f"{mode} {actor}:{scope} on {package}: {problem}")
    return problems


@pytest.mark.parametrize("package", PACKAGES)
def test_access_matrix(scenario: Scenario, package: str) -> None:
    cells = {(actor, scope): outcome for (p, actor, scope), outcome in CELLS.items() if p == package}
    problems = run_all(_check_cell, [(scenario, package, *cell, outcome) for cell, outcome in cells.items()])
    assert not problems, "\n".join(problems)
    # Denied deletes removed nothing (v1 is still there); allowed ones removed their own tags.
    assert scenario.tags_in_database(package) == {"v1"}


# -- the catalog: the SQL twin of decide ----------------------------------------------------------


def _check_catalog(scenario: Scenario, actor: str, scope: str | None) -> list[str]:
    readable = {package for package in PACKAGES if CELLS[package, actor, scope][0] == "+"}
    problems = []
    with scenario.client() as http:
        token, access = scenario.bearer(http, actor, scope, "registry:catalog:*")
        if access != [{"type": "registry", "name": "catalog", "actions": ["*"]}]:
            problems.append(f"catalog token for {actor}:{scope} grants {access}")
        for mode, headers in (
            ("bearer", {"Authorization": f"Bearer {token}"}),
            ("basic", scenario.basic(actor, scope)),
        ):
            response = http.get("/v2/_catalog", params={"n": 1000}, headers=headers)
            if response.status_code != 200:
                problems.append(f"{mode} {actor}:{scope}: catalog answered {response.status_code} {response.text}")
                continue
            listed = set(response.json()["repositories"]) & set(PACKAGES)
            if listed != readable:
                problems.append(
                    f"{mode} {actor}:{scope}: catalog lists {sorted(listed - readable)} it should not "
                    f"and misses {sorted(readable - listed)}"
                )
    return problems


def test_catalog_lists_exactly_what_each_actor_may_pull(scenario: Scenario) -> None:
    actors = sorted({(actor, scope) for (_, actor, scope) in CELLS}, key=lambda c: (c[0], c[1] or ""))
    problems = run_all(_check_catalog, [(scenario, *actor) for actor in actors])
    assert not problems, "\n".join(problems)


# -- creating packages by pushing -----------------------------------------------------------------


def _check_creation(scenario: Scenario, namespace: str, actor: str, scope: str | None, outcome: str) -> list[str]:
    problems = []
    with scenario.client() as http:
        for mode in MODES:
            package = f"{namespace}/new-{actor}-{scope or 'none'}-{mode}".lower()
            label = f"{mode} {actor}:{scope} creating {package}"
            headers = scenario.basic(actor, scope)
            if mode == "bearer":
                token, access = scenario.bearer(http, actor, scope, f"repository:{package}:pull,push")
                if ("push" in [a for grant in access for a in grant["actions"]]) != (outcome == "+"):
                    problems.append(f"{label}: token grants {access}")
                headers = {"Authorization": f"Bearer {token}"}
            # The first write creates the package: here a blob, uploaded in one request.
            blob = f"first blob of {package}".encode()
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            response = http.post(
                f"/v2/{package}/blobs/uploads/", params={"digest": digest}, content=blob, headers=headers
            )
            problem = _mismatch(scenario, response, "create", outcome, package, mode)
            if problem:
                problems.append(f"{label}: {problem}")
                continue
            if outcome == "3":
                message = response.json()["errors"][0]["message"]
                reason = _creation_denial(namespace, actor, scope)
                if reason not in message:
                    problems.append(f"{label}: denial {message!r} does not say {reason!r}")
            problems += _check_created(scenario, http, package, actor, outcome == "+", headers, label)
    return problems


def _creation_denial(namespace: str, actor: str, scope: str | None) -> str:
    if namespace == "ghost":
        return "namespace ghost does not exist; push to a user or organization that exists"
    if scope in ("R", "D"):
        return "your token lacks the write:packages scope"
    if namespace == "acme":
        return f"{actor} is not a member of organization acme, so cannot publish packages there"
    return "only alice can publish packages to the alice namespace"


def _check_created(
    scenario: Scenario, http: httpx.Client, package: str, actor: str, created: bool, headers: dict[str, str], label: str
) -> list[str]:
    """A first push creates the package, private, with its creator as admin; a denied one creates nothing."""
    db = scenario.server.database()
    try:
        if not created:
            try:
                db.read_sync(accounts.get_package, package)
            except accounts.NotFound:
                return []
            return [f"{label}: a denied push created the package"]
        info = db.read_sync(accounts.get_package, package)
        grants = db.read_sync(accounts.grants_of, package)
    finally:
        db.close()
    problems = []
    if (info.owner, info.visibility) != (package.split("/")[0], "private"):
        problems.append(f"{label}: created {info}, expected private and owned by its namespace")
    if ("user", actor, "admin") not in grants:
        problems.append(f"{label}: the creator is not admin: {grants}")
    listed = http.get(f"/v2/{package}/tags/list", headers=headers)
    if listed.status_code != 200 or listed.json()["tags"] != []:
        problems.append(f"{label}: the creator cannot list the new package's (no) tags: {listed.text}")
    return problems


def test_first_push_creates_a_private_package_for_members_and_namespace_owners(scenario: Scenario) -> None:
    cells = [(scenario, namespace, actor, scope, outcome) for (namespace, actor, scope), outcome in CREATIONS.items()]
    problems = run_all(_check_creation, cells)
    assert not problems, "\n".join(problems)
