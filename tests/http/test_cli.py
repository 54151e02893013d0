"""The administration command line (`portside user|token|org|team|package|audit`), run as an operator
would run it: `python -m portside ...` on a data directory of the test's own, no server needed.

Every command has --help and prints a table, or JSON with --json; bad input gets a one-line error on
stderr and exit status 2; secrets are shown once (token create) and never again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select

from portside.access import secrets
from portside.clock import now
from portside.metadata.database import Database, make_engine
from portside.metadata.schema import accounts as accounts_table
from portside.metadata.schema import personal_tokens, repositories

TOKEN_RE = re.compile(r"psp_[0-9A-Za-z]{36}")
ENV = {key: value for key, value in os.environ.items() if not key.startswith("PORTSIDE_")}

# Starting Python and importing the command line takes a second of CPU, running a command 70 ms: most
# commands here run in one long-lived worker process, through the same Typer application that
# `python -m portside` runs. Whatever depends on the process itself (stdin not being a terminal, what
# reaches stdout, exit statuses, usage errors) is checked with real `python -m portside` processes.
WORKER = """
import json, sys, traceback
from typer.testing import CliRunner
from portside.cli.main import app

runner = CliRunner()
for line in sys.stdin:
    args, stdin = json.loads(line)
    result = runner.invoke(app, args, input=stdin, prog_name="portside")
    crash = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        crash = "".join(traceback.format_exception(result.exception))
    answer = {"code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr, "crash": crash}
    print(json.dumps(answer), flush=True)
"""


@dataclass(frozen=True)
class Outcome:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"portside {' '.join(self.args)} -> {self.returncode}\n{self.stdout}{self.stderr}"


def run(*args: str, data_dir: Path | None, stdin: str = "") -> Outcome:
    """`python -m portside ARGS` in a process of its own; stdin is a pipe (never a terminal)."""
    where = ("--data-dir", str(data_dir)) if data_dir is not None else ()
    result = subprocess.run(
        [sys.executable, "-m", "portside", *args, *where],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    return Outcome(args, result.returncode, result.stdout, result.stderr)


class Worker:
    """One Python process that runs command after command (see WORKER)."""

    def __init__(self, log: Path) -> None:
        with log.open("w") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WORKER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                env=ENV,
            )

    def run(self, *args: str, data_dir: Path | None, stdin: str = "") -> Outcome:
        assert self.process.stdin is not None and self.process.stdout is not None
        where = ("--data-dir", str(data_dir)) if data_dir is not None else ()
        self.process.stdin.write(json.dumps([[*args, *where], stdin]) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the command worker died running portside {' '.join(args)}"
        answer = json.loads(line)
        return Outcome(args, answer["code"], answer["stdout"], answer["stderr"] + (answer["crash"] or ""))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def ok(outcome: Outcome) -> str:
    assert outcome.returncode == 0, outcome.describe()
    assert outcome.stderr == "", outcome.describe()
    return outcome.stdout


def ok_json(outcome: Outcome) -> Any:
    assert "--json" in outcome.args
    return json.loads(ok(outcome))


def fails(outcome: Outcome) -> str:
    """The command refused: exit status 2, nothing on stdout, one line on stderr; returns that line."""
    assert outcome.returncode == 2, outcome.describe()
    assert outcome.stdout == "", outcome.describe()
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.describe()
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def table(output: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a table, split on runs of two or more spaces."""
    header, *rows = [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]
    return header, rows


def database(data_dir: Path) -> Database:
    return Database(make_engine(f"sqlite:///{data_dir.resolve() / 'portside.db'}"))


def add_package(data_dir: Path, name: str) -> None:
    """What a first push does, minus the push: the CLI administers packages, it does not create them."""

    def insert(conn: Connection) -> None:
        owner = conn.execute(select(accounts_table.c.id).where(accounts_table.c.name == name.split("/")[0])).scalar()
        conn.execute(repositories.insert().values(name=name, created_at=now(), owner_id=owner, visibility="private"))

    db = database(data_dir)
    try:
        db.write_sync(insert)
    finally:
        db.close()


Portside = Callable[..., Outcome]


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    commands = Worker(tmp_path_factory.mktemp("cli-worker") / "stderr.log")
    try:
        yield commands
    finally:
        commands.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, worker: Worker) -> Path:
    """A data directory with users alice, bob and zed, organization acme (owner alice) and packages."""
    path = tmp_path_factory.mktemp("cli") / "data"
    for user in ("alice", "bob", "zed"):
        ok(worker.run("user", "create", user, data_dir=path))
    ok(worker.run("org", "create", "acme", "--owner", "alice", data_dir=path))
    for package in ("acme/app", "acme/tools/cli", "alice/tool"):
        add_package(path, package)
    return path


@pytest.fixture
def portside(worker: Worker, data_dir: Path) -> Portside:
    """`portside ARGS --data-dir DATA_DIR`, run in the worker."""
    return functools.partial(worker.run, data_dir=data_dir)


# -- help -----------------------------------------------------------------------------------------

COMMANDS = {
    ("user", "create"): "Create a user",
    ("user", "list"): "List users",
    ("user", "delete"): "Delete a user",
    ("token", "create"): "Create a token and print it",
    ("token", "list"): "List a user's tokens",
    ("token", "revoke"): "Revoke a token",
    ("org", "create"): "Create an organization",
    ("org", "add-member"): "Add a member to an organization",
    ("org", "remove-member"): "Remove a member",
    ("org", "set"): "Change an organization's settings",
    ("org", "list"): "List organizations",
    ("org", "members"): "List an organization's members",
    ("team", "create"): "Create a team",
    ("team", "add-member"): "Add an organization member to a team",
    ("team", "list"): "List an organization's teams",
    ("package", "list"): "List packages",
    ("package", "show"): "Show a package",
    ("package", "visibility"): "Make a package private, internal",
    ("package", "grant"): "Give a user or a team a role",
    ("package", "revoke"): "Take a user's or team's role",
    ("audit",): "Security events",
    ("user",): "Users.",
    ("token",): "Personal access tokens.",
    ("org",): "Organizations.",
    ("team",): "Teams of an organization.",
    ("package",): "Packages, their visibility",
}


def test_every_command_has_help_and_a_json_option(worker: Worker) -> None:
    groups = {("user",), ("token",), ("org",), ("team",), ("package",)}
    for command, summary in COMMANDS.items():
        help_text = ok(worker.run(*command, "--help", data_dir=None))
        assert "Usage: portside " + " ".join(command) in help_text, help_text
        assert summary in help_text, help_text
        assert command in groups or "--json" in help_text, f"{' '.join(command)} has no --json"
    top = run("--help", data_dir=None)  # the real program
    assert top.returncode == 0 and top.stderr == ""
    for group in ("user", "token", "org", "team", "package", "audit"):
        assert re.search(rf"^\W*{group}\b", top.stdout, re.MULTILINE), top.stdout


# -- users ----------------------------------------------------------------------------------------


def test_user_create_list_and_delete(portside: Portside) -> None:
    (created,) = ok_json(portside("user", "create", "carol", "--json"))
    assert {k: v for k, v in created.items() if k != "created"} == {
        "name": "carol",
        "site_admin": False,
        "password": False,
        "disabled": False,
    }
    created_at = datetime.strptime(created["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(created_at - now()) < timedelta(minutes=5)
    header, rows = table(ok(portside("user", "create", "root", "--admin")))
    assert header == ["NAME", "SITE_ADMIN", "PASSWORD", "DISABLED", "CREATED"]
    assert rows[0][:4] == ["root", "True", "False", "False"]

    users = {u["name"]: u for u in ok_json(portside("user", "list", "--json"))}
    assert {"alice", "bob", "carol", "root"} <= set(users)
    assert users["root"]["site_admin"] is True
    header, rows = table(ok(portside("user", "list")))
    assert header[0] == "NAME"
    assert {"alice", "bob", "carol", "root"} <= {row[0] for row in rows}

    assert ok(portside("user", "delete", "carol")) == "deleted user carol\n"
    assert ok_json(portside("user", "delete", "root", "--json")) == {"deleted": "root"}
    assert not {"carol", "root"} & {u["name"] for u in ok_json(portside("user", "list", "--json"))}
    assert fails(portside("user", "delete", "carol")) == "error: user carol does not exist"


def test_user_create_reads_a_password_from_stdin_without_prompting(data_dir: Path) -> None:
    # Real processes: stdin is a pipe, not a terminal, so the password is read from it, never prompted for.
    created = run("user", "create", "dora", "--password-stdin", "--json", data_dir=data_dir, stdin="s3cret-pass\n")
    (user,) = ok_json(created)
    assert user["password"] is True
    db = database(data_dir)
    try:
        account = db.read_sync(lambda c: c.execute(select(accounts_table).where(accounts_table.c.name == "dora")).one())
    finally:
        db.close()
    assert account.password_hash.startswith("$argon2id$")
    assert secrets.verify_password(account.password_hash, "s3cret-pass")  # the newline is not part of it
    empty = run("user", "create", "erin", "--password-stdin", data_dir=data_dir)
    assert fails(empty) == "error: the password is empty"
    # Without --password-stdin nothing is read, whatever stdin holds: the user signs in with tokens only.
    (tokens_only,) = ok_json(run("user", "create", "erin", "--json", data_dir=data_dir, stdin="ignored\n"))
    assert tokens_only["password"] is False


# -- tokens ---------------------------------------------------------------------------------------


def test_token_create_prints_only_the_token_and_stores_only_its_hash(data_dir: Path) -> None:
    result = run("token", "create", "--user", "bob", "--scopes", "read:packages", data_dir=data_dir)
    assert result.returncode == 0, result.describe()
    assert result.stderr == ""
    token = result.stdout.removesuffix("\n")
    assert TOKEN_RE.fullmatch(token), result.stdout
    assert secrets.looks_like_token(token)

    def stored(conn: Connection) -> list[Any]:
        return list(conn.execute(select(personal_tokens)).all())

    db = database(data_dir)
    try:
        rows = db.read_sync(stored)
    finally:
        db.close()
    (row,) = [r for r in rows if r.secret_hash == hashlib.sha256(token.encode()).hexdigest()]
    assert token not in json.dumps([list(r) for r in rows], default=str)
    assert row.prefix == token[:8]
    for name in ("portside.db", "portside.db-wal"):
        path = data_dir / name
        if path.exists():
            assert token.encode() not in path.read_bytes(), name


def test_token_list_shows_everything_but_the_secret(portside: Portside) -> None:
    token = ok(
        portside(
            *("token", "create", "--user", "alice", "--scopes", "read:packages,write:packages"),
            *("--expires", "30d", "--note", "ci", "--only", "acme/*,alice/tool"),
        )
    ).strip()
    listed = ok_json(portside("token", "list", "--user", "alice", "--json"))
    (mine,) = [t for t in listed if t["note"] == "ci"]
    assert mine["prefix"] == token[:8]
    assert mine["scopes"] == ["read:packages", "write:packages"]
    assert mine["only"] == ["acme/*", "alice/tool"]
    assert mine["last_used"] is None and mine["revoked"] is None
    expires = datetime.strptime(mine["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expires - (now() + timedelta(days=30))) < timedelta(minutes=5)
    text = ok(portside("token", "list", "--user", "alice"))
    header, rows = table(text)
    assert header == ["ID", "NOTE", "PREFIX", "SCOPES", "ONLY", "EXPIRES", "LAST_USED", "REVOKED"]
    assert any(row[1] == "ci" and row[2] == token[:8] for row in rows)
    for output in (text, json.dumps(listed)):
        assert token not in output
        assert token[8:] not in output  # not even the part after the prefix

    detailed = ok_json(portside("token", "create", "--user", "alice", "--scopes", "delete:packages", "--json"))
    assert TOKEN_RE.fullmatch(detailed["token"])
    assert detailed["prefix"] == detailed["token"][:8]
    assert detailed["scopes"] == ["delete:packages"]
    assert detailed["expires"] is None
    ok(portside("user", "create", "nell"))
    assert ok(portside("token", "list", "--user", "nell")) == "nell has no tokens\n"
    assert ok_json(portside("token", "list", "--user", "nell", "--json")) == []


def test_token_revoke(portside: Portside) -> None:
    ok(portside("token", "create", "--user", "bob", "--scopes", "write:packages", "--note", "to-revoke"))
    listed = ok_json(portside("token", "list", "--user", "bob", "--json"))
    (mine,) = [t for t in listed if t["note"] == "to-revoke"]
    assert ok(portside("token", "revoke", str(mine["id"]))) == f"revoked token {mine['id']}\n"
    (after,) = [t for t in ok_json(portside("token", "list", "--user", "bob", "--json")) if t["id"] == mine["id"]]
    assert after["revoked"] is not None
    again = ok_json(portside("token", "revoke", str(mine["id"]), "--json"))  # idempotent, keeps the first time
    assert (again["id"], again["revoked"]) == (mine["id"], after["revoked"])
    assert fails(portside("token", "revoke", "999999")) == "error: token 999999 does not exist"


# -- organizations and teams ----------------------------------------------------------------------


def test_organizations_members_and_teams(portside: Portside) -> None:
    assert ok_json(portside("org", "create", "guild", "--owner", "alice", "--json")) == {
        "org": "guild",
        "container_registry": "enabled",
        "allowed_visibilities": ["private", "internal", "public"],
        "owner": "alice",
    }
    assert ok(portside("org", "add-member", "guild", "bob")) == "bob is now member of guild\n"
    assert ok_json(portside("org", "members", "guild", "--json")) == [
        {"user": "alice", "role": "owner"},
        {"user": "bob", "role": "member"},
    ]
    assert ok_json(portside("team", "create", "guild", "devs", "--json")) == {"team": "guild/devs"}
    assert ok(portside("team", "add-member", "guild", "devs", "bob")) == "added bob to guild/devs\n"
    assert ok_json(portside("team", "list", "guild", "--json")) == [{"team": "guild/devs", "members": ["bob"]}]
    assert table(ok(portside("team", "list", "guild"))) == (["TEAM", "MEMBERS"], [["guild/devs", "bob"]])

    promoted = ok_json(portside("org", "add-member", "guild", "bob", "--role", "owner", "--json"))
    assert promoted == {"org": "guild", "user": "bob", "role": "owner"}
    members = table(ok(portside("org", "members", "guild")))
    assert members == (["USER", "ROLE"], [["alice", "owner"], ["bob", "owner"]])

    assert ok(portside("org", "remove-member", "guild", "bob")) == "removed bob from guild\n"
    assert ok_json(portside("org", "members", "guild", "--json")) == [{"user": "alice", "role": "owner"}]
    assert ok_json(portside("team", "list", "guild", "--json")) == [{"team": "guild/devs", "members": []}]

    settings = ok_json(
        portside(
            *("org", "set", "guild", "--container-registry", "disabled"),
            *("--allowed-visibilities", "public,private", "--json"),
        )
    )
    assert settings == [
        {"org": "guild", "container_registry": "disabled", "allowed_visibilities": ["private", "public"]}
    ]
    (listed,) = [o for o in ok_json(portside("org", "list", "--json")) if o["org"] == "guild"]
    assert listed == settings[0]
    header, rows = table(ok(portside("org", "list")))
    assert header == ["ORG", "CONTAINER_REGISTRY", "ALLOWED_VISIBILITIES"]
    assert ["guild", "disabled", "private,public"] in rows


# -- packages -------------------------------------------------------------------------------------


def test_packages_visibility_and_grants(portside: Portside) -> None:
    ok(portside("org", "add-member", "acme", "bob"))
    ok(portside("team", "create", "acme", "readers"))
    listed = ok_json(portside("package", "list", "--json"))
    assert {(p["package"], p["owner"], p["visibility"]) for p in listed} >= {
        ("acme/app", "acme", "private"),
        ("acme/tools/cli", "acme", "private"),
        ("alice/tool", "alice", "private"),
    }
    acme = ok_json(portside("package", "list", "acme", "--json"))
    assert [p["package"] for p in acme] == ["acme/app", "acme/tools/cli"]
    header, rows = table(ok(portside("package", "list", "alice")))
    assert header == ["PACKAGE", "OWNER", "VISIBILITY", "CREATED"]
    assert [row[:3] for row in rows] == [["alice/tool", "alice", "private"]]

    assert ok(portside("package", "visibility", "acme/app", "internal")) == "acme/app is now internal\n"
    public = ok_json(portside("package", "visibility", "acme/app", "public", "--json"))
    assert (public["package"], public["visibility"]) == ("acme/app", "public")
    # Unlike ghcr.io, public can become private again.
    assert ok_json(portside("package", "visibility", "acme/app", "private", "--json"))["visibility"] == "private"

    granted = ok(portside("package", "grant", "acme/app", "--user", "bob", "--role", "write"))
    assert granted == "bob now has write on acme/app\n"
    team = ok_json(portside("package", "grant", "acme/app", "--team", "acme/readers", "--role", "read", "--json"))
    assert team == {"package": "acme/app", "kind": "team", "name": "acme/readers", "role": "read"}
    ok(portside("package", "grant", "acme/app", "--user", "bob", "--role", "admin"))  # replaces write
    shown = ok_json(portside("package", "show", "acme/app", "--json"))
    assert (shown["package"], shown["owner"], shown["visibility"]) == ("acme/app", "acme", "private")
    assert shown["access"] == [
        {"kind": "team", "name": "acme/readers", "role": "read"},
        {"kind": "user", "name": "bob", "role": "admin"},
    ]
    text = ok(portside("package", "show", "acme/app"))
    assert "acme/app" in text and "acme/readers" in text and "admin" in text

    revoked = ok(portside("package", "revoke", "acme/app", "--user", "bob"))
    assert revoked == "bob no longer has a role on acme/app\n"
    ok_json(portside("package", "revoke", "acme/app", "--team", "acme/readers", "--json"))
    assert ok_json(portside("package", "show", "acme/app", "--json"))["access"] == []
    assert "nobody has an explicit role" in ok(portside("package", "show", "acme/app"))


# -- bad input ------------------------------------------------------------------------------------

BAD_INPUT = [
    (("user", "create", "Alice"), "has uppercase letters; names are lowercase, as on ghcr.io: use 'alice'"),
    (("user", "create", "bad--name"), "is invalid: use 1-39 lowercase letters, digits and single hyphens"),
    (("user", "create", "a" * 40), "is invalid"),
    (("user", "create", "alice"), "the name alice is already taken by a user or organization"),
    (("user", "create", "acme"), "the name acme is already taken"),
    (("user", "delete", "nobody"), "user nobody does not exist"),
    (("user", "delete", "acme"), "user acme does not exist"),
    (("token", "create", "--user", "nobody", "--scopes", "read:packages"), "user nobody does not exist"),
    (("token", "create", "--user", "Alice", "--scopes", "read:packages"), "has uppercase letters"),
    (("token", "create", "--user", "alice", "--scopes", "write:all"), "unknown scope write:all"),
    (("token", "create", "--user", "alice", "--scopes", ","), "unknown scope (none given)"),
    (("token", "create", "--user", "alice", "--scopes", "read:packages", "--expires", "30x"), "duration '30x'"),
    (("token", "create", "--user", "alice", "--scopes", "read:packages", "--expires", "soon"), "e.g. 30d"),
    (("token", "create", "--user", "alice", "--scopes", "read:packages", "--only", "Acme/*"), "uppercase"),
    (("token", "create", "--user", "alice", "--scopes", "read:packages", "--only", "acme"), "use OWNER/NAME"),
    (("token", "create", "--user", "alice", "--scopes", "read:packages", "--only", "acme/a*"), "OWNER/*"),
    (("token", "create", "--user", "alice", "--scopes", "read:packages", "--only", ","), "at least one"),
    (("token", "list", "--user", "nobody"), "user nobody does not exist"),
    (("token", "revoke", "424242"), "token 424242 does not exist"),
    (("token", "revoke", "99999999999999999999999"), "token 99999999999999999999999 does not exist"),
    (("token", "revoke", "0"), "token 0 does not exist"),
    (("org", "create", "Acme2", "--owner", "alice"), "has uppercase letters"),
    (("org", "create", "newco", "--owner", "nobody"), "user nobody does not exist"),
    (("org", "create", "newco", "--owner", "acme"), "user acme does not exist"),
    (("org", "create", "bob", "--owner", "alice"), "already taken"),
    (("org", "add-member", "acme", "bob", "--role", "boss"), "role 'boss' is invalid: use member or owner"),
    (("org", "add-member", "acme", "Bob"), "has uppercase letters"),
    (("org", "add-member", "nowhere", "bob"), "organization nowhere does not exist"),
    (("org", "add-member", "alice", "bob"), "organization alice does not exist"),
    (("org", "remove-member", "acme", "zed"), "zed is not a member of acme"),
    (("org", "remove-member", "acme", "nobody"), "user nobody does not exist"),
    (("org", "set", "acme", "--container-registry", "maybe"), "takes enabled or disabled, not 'maybe'"),
    (("org", "set", "acme", "--allowed-visibilities", "secret"), "allowed visibilities must be some of"),
    (("org", "set", "acme", "--allowed-visibilities", ""), "allowed visibilities must be some of"),
    (("org", "members", "nowhere"), "organization nowhere does not exist"),
    (("team", "create", "acme", "Devs"), "team name 'Devs' is invalid: use lowercase letters"),
    (("team", "create", "nowhere", "devs"), "organization nowhere does not exist"),
    (("team", "add-member", "acme", "ghosts", "alice"), "team acme/ghosts does not exist"),
    (("team", "list", "alice"), "organization alice does not exist"),
    (("package", "list", "nobody"), "account nobody does not exist"),
    (("package", "list", "Acme"), "has uppercase letters"),
    (("package", "show", "acme/nothing"), "package acme/nothing does not exist"),
    (("package", "visibility", "alice/tool", "internal"), "internal visibility is for organization packages"),
    (("package", "visibility", "acme/app", "secret"), "visibility 'secret' is invalid: use private, internal, public"),
    (("package", "visibility", "acme/nothing", "public"), "package acme/nothing does not exist"),
    (("package", "grant", "acme/app", "--user", "bob", "--role", "owner"), "role 'owner' is invalid"),
    (("package", "grant", "acme/app", "--role", "read"), "name exactly one of --user NAME or --team ORG/TEAM"),
    (("package", "grant", "acme/app", "--user", "bob", "--team", "acme/x", "--role", "read"), "exactly one of"),
    (("package", "grant", "acme/app", "--team", "other/devs", "--role", "read"), "team other/devs is not in acme"),
    (("package", "grant", "acme/app", "--team", "acme/ghosts", "--role", "read"), "team acme/ghosts does not exist"),
    (("package", "grant", "acme/app", "--user", "nobody", "--role", "read"), "user nobody does not exist"),
    (("package", "revoke", "acme/tools/cli", "--user", "bob"), "bob has no role on acme/tools/cli"),
    (("audit", "--since", "yesterday"), "duration 'yesterday' is invalid"),
]


def test_bad_input_gets_one_line_and_exit_status_2(portside: Portside) -> None:
    problems = []
    for args, mention in BAD_INPUT:
        try:
            line = fails(portside(*args))
        except AssertionError as exc:
            problems.append(str(exc))
            continue
        if mention not in line:
            problems.append(f"portside {' '.join(args)}: {line!r} does not say {mention!r}")
    assert not problems, "\n".join(problems)


def test_the_real_program_answers_bad_input_with_one_line_and_status_2(data_dir: Path) -> None:
    for args, mention in [BAD_INPUT[0], BAD_INPUT[8], BAD_INPUT[-1]]:
        assert mention in fails(run(*args, data_dir=data_dir))


def test_org_visibility_policy_is_enforced_with_a_hint(portside: Portside, data_dir: Path) -> None:
    ok(portside("org", "create", "strict", "--owner", "alice"))
    add_package(data_dir, "strict/app")
    ok(portside("org", "set", "strict", "--allowed-visibilities", "private"))
    assert fails(portside("package", "visibility", "strict/app", "public")) == (
        "error: organization strict allows only private packages; an owner can change that with "
        "`portside org set strict --allowed-visibilities ...`"
    )


def test_usage_errors_exit_with_status_2(data_dir: Path) -> None:
    for args in (("user", "create"), ("token", "revoke", "seven"), ("user", "list", "--frobnicate"), ("nonsense",)):
        result = run(*args, data_dir=data_dir)
        assert result.returncode == 2, result.describe()
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.describe()


# -- audit ----------------------------------------------------------------------------------------


def test_audit_shows_security_events_and_no_secrets(worker: Worker, tmp_path: Path) -> None:
    data = tmp_path / "data"
    portside = functools.partial(worker.run, data_dir=data)
    ok(portside("user", "create", "alice"))
    ok(portside("user", "create", "bob", "--password-stdin", stdin="pw-for-bob\n"))
    token = ok(portside("token", "create", "--user", "bob", "--scopes", "read:packages")).strip()
    ok(portside("org", "create", "acme", "--owner", "alice"))
    ok(portside("org", "add-member", "acme", "bob"))
    ok(portside("team", "create", "acme", "devs"))
    ok(portside("team", "add-member", "acme", "devs", "bob"))
    add_package(data, "acme/app")
    ok(portside("package", "visibility", "acme/app", "public"))
    ok(portside("package", "grant", "acme/app", "--team", "acme/devs", "--role", "write"))
    ok(portside("package", "revoke", "acme/app", "--team", "acme/devs"))
    ok(portside("org", "set", "acme", "--container-registry", "disabled"))
    ok(portside("org", "remove-member", "acme", "bob"))
    (listed,) = ok_json(portside("token", "list", "--user", "bob", "--json"))
    ok(portside("token", "revoke", str(listed["id"])))
    ok(portside("user", "delete", "bob"))

    events = ok_json(portside("audit", "--since", "1h", "--json"))
    assert [(e["action"], e["target"]) for e in events] == [
        ("user.create", "alice"),
        ("user.create", "bob"),
        ("token.create", "bob"),
        ("org.create", "acme"),
        ("org.member", "acme/bob"),
        ("team.create", "acme/devs"),
        ("team.member", "acme/devs/bob"),
        ("package.visibility", "acme/app"),
        ("package.grant", "acme/app"),
        ("package.revoke", "acme/app"),
        ("org.settings", "acme"),
        ("org.remove_member", "acme/bob"),
        ("token.revoke", "bob"),
        ("user.delete", "bob"),
    ]
    assert all(e["actor"] == "cli" for e in events)
    assert events[2]["detail"] == {"id": listed["id"], "scopes": ["read:packages"], "only": None}
    assert events[7]["detail"] == {"visibility": "public"}
    assert events[8]["detail"] == {"user": None, "team": "acme/devs", "role": "write"}
    text = ok(portside("audit"))
    header, rows = table(text)
    assert header == ["AT", "ACTOR", "ACTION", "TARGET", "CLIENT", "DETAIL"]
    assert len(rows) == len(events)
    for output in (text, json.dumps(events)):
        assert token not in output
        assert "pw-for-bob" not in output
    assert ok(portside("audit", "--since", "0s")) == "no events in the last 0s\n"
