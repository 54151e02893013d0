"""`portside user password|disable|enable` and `portside team remove-member` on a data directory.

Most commands run in this process through the Typer application that `python -m portside` runs (a
process costs a second of start-up); what depends on the process itself (stdin that is not a
terminal, exit statuses) runs as `python -m portside`. The last test runs the commands against a
live server's database and checks the effect through the sign-in form and the registry.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, func, insert, select
from typer.testing import CliRunner

from portside.access import accounts, secrets
from portside.cli.main import app
from portside.clock import now
from portside.metadata.database import Database, make_engine
from portside.metadata.schema import web_sessions
from tests.support.server import Server, running_server
from tests.support.web import sign_in, submit, text_of

ENV = {key: value for key, value in os.environ.items() if not key.startswith("PORTSIDE_")}
UNSET = {key: None for key in os.environ if key.startswith("PORTSIDE_")}


def portside(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`portside ARGS --data-dir DATA_DIR` in this process; stdin is never a terminal."""
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)], input=stdin, env=UNSET)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def process(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m portside ARGS --data-dir DATA_DIR` in a process of its own, stdin a pipe."""
    return subprocess.run(
        [sys.executable, "-m", "portside", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """Exit status 2, nothing on stdout, one `error:` line on stderr; returns that line."""
    assert result.returncode == 2, result
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def database(data_dir: Path) -> Database:
    return Database(make_engine(f"sqlite:///{data_dir.resolve() / 'portside.db'}"))


def account(data_dir: Path, name: str) -> tuple[accounts.Account, str | None, int]:
    """The account, its password hash and how many browser sessions it has."""

    def query(conn: Connection) -> tuple[accounts.Account, str | None, int]:
        found = accounts.get_account(conn, name, "user")
        stored = conn.execute(select(accounts.accounts.c.password_hash).where(accounts.accounts.c.id == found.id))
        count = conn.execute(select(func.count()).select_from(web_sessions).where(web_sessions.c.user_id == found.id))
        return found, stored.scalar(), int(count.scalar() or 0)

    db = database(data_dir)
    try:
        return db.read_sync(query)
    finally:
        db.close()


def add_session(data_dir: Path, name: str) -> None:
    """A browser session, as signing in leaves one."""

    def write(conn: Connection) -> None:
        user_id = accounts.get_account(conn, name, "user").id
        moment = now()
        conn.execute(
            insert(web_sessions).values(
                user_id=user_id,
                secret_hash=secrets.token_hash(f"session-{name}-{moment.timestamp()}"),
                client="test",
                created_at=moment,
                expires_at=moment.replace(year=moment.year + 1),
            )
        )

    db = database(data_dir)
    try:
        db.write_sync(write)
    finally:
        db.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-password") / "data"
    for user in ("alice", "bob", "carol"):
        assert portside(path, "user", "create", user).returncode == 0
    assert portside(path, "org", "create", "acme", "--owner", "alice").returncode == 0
    return path


def test_password_from_stdin_is_hashed_and_ends_sessions(data_dir: Path) -> None:
    add_session(data_dir, "alice")
    assert account(data_dir, "alice")[2] == 1
    result = process(data_dir, "user", "password", "alice", "--password-stdin", "--json", stdin="alice's secret\n")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["name"] == "alice" and row["password"] is True
    user, stored, sessions = account(data_dir, "alice")
    assert user.has_password and stored is not None and stored.startswith("$argon2id$")
    assert secrets.verify_password(stored, "alice's secret")  # the newline is not part of it
    assert sessions == 0
    assert "alice's secret" not in result.stdout + result.stderr

    plain = portside(data_dir, "user", "password", "alice", "--password-stdin", stdin="another secret")
    assert plain.returncode == 0 and plain.stdout == "set the password of alice; their browser sessions have ended\n"
    assert secrets.verify_password(account(data_dir, "alice")[1], "another secret")

    audit = json.loads(portside(data_dir, "audit", "--json").stdout)
    changes = [e for e in audit if e["action"] == "user.password" and e["target"] == "alice"]
    assert len(changes) == 2 and changes[0]["detail"] == {"removed": False, "sessions_ended": 1}
    assert "secret" not in json.dumps(audit)


def test_without_password_stdin_and_no_terminal_nothing_is_read(data_dir: Path) -> None:
    before = account(data_dir, "bob")[1]
    line = refused(process(data_dir, "user", "password", "bob", stdin="would-be password\n"))
    assert "pass --password-stdin" in line
    assert account(data_dir, "bob")[1] == before


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("bob",), "short\n", "error: a password has 8 to 256 characters, not 5"),
        (("bob",), "x" * 257, "error: a password has 8 to 256 characters, not 257"),
        (("bob",), "\n", "error: the password is empty"),
        (("nobody",), "long enough\n", "error: user nobody does not exist"),
        (("acme",), "long enough\n", "error: user acme does not exist"),
        (("Bob",), "long enough\n", "has uppercase letters"),
    ],
)
def test_bad_passwords_and_names_are_refused(data_dir: Path, args: tuple[str, ...], stdin: str, message: str) -> None:
    line = refused(portside(data_dir, "user", "password", *args, "--password-stdin", stdin=stdin))
    assert message in line
    assert not account(data_dir, "bob")[0].has_password


def test_disable_and_enable(data_dir: Path) -> None:
    add_session(data_dir, "carol")
    disabled = portside(data_dir, "user", "disable", "carol", "--json")
    assert disabled.returncode == 0, disabled.stderr
    assert json.loads(disabled.stdout)["disabled"] is True
    user, _, sessions = account(data_dir, "carol")
    assert user.is_disabled and sessions == 0
    enabled = portside(data_dir, "user", "enable", "carol")
    assert enabled.returncode == 0 and enabled.stdout == "enabled carol\n"
    assert not account(data_dir, "carol")[0].is_disabled
    assert "user nobody does not exist" in refused(portside(data_dir, "user", "disable", "nobody"))


def test_team_remove_member(data_dir: Path) -> None:
    for args in (("org", "add-member", "acme", "bob"), ("team", "create", "acme", "devs")):
        assert portside(data_dir, *args).returncode == 0
    assert portside(data_dir, "team", "add-member", "acme", "devs", "bob").returncode == 0
    removed = portside(data_dir, "team", "remove-member", "acme", "devs", "bob")
    assert removed.returncode == 0 and removed.stdout == "removed bob from acme/devs\n"
    teams = json.loads(portside(data_dir, "team", "list", "acme", "--json").stdout)
    assert teams == [{"team": "acme/devs", "members": []}]
    members = json.loads(portside(data_dir, "org", "members", "acme", "--json").stdout)
    assert {"user": "bob", "role": "member"} in members  # still in the organization
    again = refused(portside(data_dir, "team", "remove-member", "acme", "devs", "bob"))
    assert again == "error: bob is not in team acme/devs"


def test_help_names_the_new_commands(data_dir: Path) -> None:
    for command, summary in (
        ("password", "Set a user's password for the web pages"),
        ("disable", "Disable a user"),
        ("enable", "Enable a disabled user again"),
    ):
        result = portside(data_dir, "user", command, "--help")
        assert result.returncode == 0 and summary in result.stdout and "--json" in result.stdout
    assert "--password-stdin" in portside(data_dir, "user", "password", "--help").stdout


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path, "cli-password", extra_args=["--workers", "1"], env={"PORTSIDE_FSYNC": "false"}) as s:
        yield s


def test_on_a_running_server_the_sign_in_page_follows(live: Server) -> None:
    server = live
    server.cli("user", "create", "dora")
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        response = submit(browser, "/login", "/login", username="dora", password="dora's password")
        assert response.status_code == 401 and "portside user password" in text_of(response.text)
    server.cli("user", "password", "dora", "--password-stdin", stdin="dora's password\n")
    token = server.token("dora", "read:packages")
    basic = {"Authorization": "Basic " + base64.b64encode(f"dora:{token}".encode()).decode()}
    with sign_in(server.url, "dora", "dora's password") as session:
        assert "Sign out" in session.get("/").text
        server.cli("user", "disable", "dora")
        assert "Sign out" not in session.get("/").text
        assert httpx.get(f"{server.url}/v2/", headers=basic).status_code == 401
        server.cli("user", "enable", "dora")
        assert "Sign out" not in session.get("/").text  # an ended session stays ended
    assert httpx.get(f"{server.url}/v2/", headers=basic).status_code == 200
    with sign_in(server.url, "dora", "dora's password") as session:
        assert "Sign out" in session.get("/").text
