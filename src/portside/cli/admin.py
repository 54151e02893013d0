"""Account and package administration on the configured database (also while the server runs)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import Connection

from portside.access import accounts as acc
from portside.access import keys
from portside.access.audit import events_since, record
from portside.clock import now
from portside.metadata.database import Database, make_engine, schema_behind, upgrade
from portside.registry import gc, immutable
from portside.sizes import human, parse_size

T = TypeVar("T")

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (PORTSIDE_DATA_DIR).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
QuotaOption = Annotated[
    str | None,
    typer.Option(
        "--storage-quota", help="Bytes its packages may store: 10GiB, 500MB, 1.5TiB; default: the site's default."
    ),
]

user_app = typer.Typer(help="Users.", no_args_is_help=True)
token_app = typer.Typer(help="Personal access tokens.", no_args_is_help=True)
org_app = typer.Typer(help="Organizations.", no_args_is_help=True)
team_app = typer.Typer(help="Teams of an organization.", no_args_is_help=True)
package_app = typer.Typer(help="Packages, their visibility and who may use them.", no_args_is_help=True)
keys_app = typer.Typer(
    help="The keys that sign bearer tokens and browser cookies, shared by every replica.", no_args_is_help=True
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def _database(config: Path | None, data_dir: Path | None) -> Iterator[Database]:
    from portside.cli.main import load_settings

    settings = load_settings(config, data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        upgrade(url)  # the embedded default migrates itself, as `serve` does
    elif problem := schema_behind(url):
        _fail(f"{problem}: run `portside migrate` first")
    db = Database(make_engine(url, fsync=settings.fsync))
    try:
        yield db
    finally:
        db.close()


def _write(config: Path | None, data_dir: Path | None, fn: Callable[[Connection], T]) -> T:
    with _database(config, data_dir) as db:
        try:
            return db.write_sync(fn)
        except acc.AccessError as exc:
            _fail(str(exc))
            raise AssertionError from exc


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _print(rows: Sequence[dict[str, Any]], as_json: bool, empty: str) -> None:
    rows = [{k: _plain(v) for k, v in row.items()} for row in rows]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(empty)
        return
    cells = [[_cell(v) for v in row.values()] for row in rows]
    headers = list(rows[0].keys())
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _done(message: str, row: dict[str, Any], as_json: bool) -> None:
    """A change's confirmation: one line for people, or the changed object as JSON for scripts."""
    if as_json:
        typer.echo(json.dumps({k: _plain(v) for k, v in row.items()}, indent=2))
    else:
        typer.echo(message)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _read_password() -> str:
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.read().rstrip("\r\n")
    if not password:
        _fail("the password is empty")
    return password


# -- users -----------------------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user a site admin.")] = False,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read a password from stdin.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a user (without --password-stdin the user signs in with tokens only)."""
    password = _read_password() if password_stdin else None
    user = _write(config, data_dir, lambda c: acc.create_user(c, name, admin=admin, password=password))
    _print([_user_row(user)], as_json, "")


def _user_row(user: acc.Account) -> dict[str, Any]:
    return {
        "name": user.name,
        "site_admin": user.is_site_admin,
        "password": user.has_password,
        "disabled": user.is_disabled,
        "created": user.created_at,
    }


@user_app.command("list")
def user_list(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List users."""
    users = _write(config, data_dir, lambda c: acc.list_accounts(c, "user"))
    _print([_user_row(u) for u in users], as_json, "no users")


@user_app.command("delete")
def user_delete(
    name: str, config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Delete a user, its tokens and its packages."""
    _write(config, data_dir, lambda c: acc.delete_account(c, name, "user"))
    _done(f"deleted user {name}", {"deleted": name}, as_json)


@user_app.command("password")
def user_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin instead of prompting.")
    ] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set a user's password for the web pages; it signs them out of every browser."""
    if not password_stdin and not sys.stdin.isatty():
        _fail("stdin is not a terminal, so there is no one to ask: pass --password-stdin to read the password from it")
    try:
        hashed = acc.hash_new_password(_read_password())
    except acc.AccessError as exc:
        _fail(str(exc))
        return
    user = _write(config, data_dir, lambda c: acc.set_password(c, name, hashed))
    _done(f"set the password of {name}; their browser sessions have ended", _user_row(user), as_json)


@user_app.command("disable")
def user_disable(
    name: str, config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Disable a user: signed out at once, tokens and password refused until enabled."""
    user = _write(config, data_dir, lambda c: acc.set_disabled(c, name, True))
    _done(f"disabled {name}; their sessions have ended and their tokens are refused", _user_row(user), as_json)


@user_app.command("enable")
def user_enable(
    name: str, config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Enable a disabled user again (their tokens work again)."""
    user = _write(config, data_dir, lambda c: acc.set_disabled(c, name, False))
    _done(f"enabled {name}", _user_row(user), as_json)


@user_app.command("set")
def user_set(
    name: str,
    storage_quota: QuotaOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a user's settings."""
    if storage_quota is None:
        _fail("nothing to change: give --storage-quota SIZE (10GiB, 500MB) or --storage-quota default")
    quota = _quota(storage_quota)
    user = _write(config, data_dir, lambda c: acc.set_storage_quota(c, name, "user", quota))
    _print([{**_user_row(user), "storage_quota": _quota_shown(user.storage_quota_bytes)}], as_json, "")


# -- tokens ----------------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", help="The token's owner.")],
    scopes: Annotated[str, typer.Option("--scopes", help="read:packages,write:packages,delete:packages")],
    expires: Annotated[str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h.")] = None,
    note: Annotated[str, typer.Option("--note", help="What the token is for.")] = "",
    only: Annotated[str | None, typer.Option("--only", help="Limit to OWNER/NAME,OWNER/* packages.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the token and its details as JSON.")] = False,
) -> None:
    """Create a token and print it (only the token, on stdout; it is not shown again)."""
    try:
        parsed_scopes = acc.parse_scopes(scopes)
        lifetime = acc.parse_duration(expires) if expires else None
        patterns = acc.parse_only(only)
    except acc.AccessError as exc:
        _fail(str(exc))
        return
    token, info = _write(
        config,
        data_dir,
        lambda c: acc.create_token(c, user, parsed_scopes, expires_in=lifetime, note=note, only=patterns),
    )
    _done(token, {**_token_row(info), "token": token}, as_json)


@token_app.command("list")
def token_list(
    user: Annotated[str, typer.Option("--user")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a user's tokens (never their secrets)."""
    tokens = _write(config, data_dir, lambda c: acc.list_tokens(c, user))
    _print([_token_row(t) for t in tokens], as_json, f"{user} has no tokens")


def _token_row(token: acc.TokenInfo) -> dict[str, Any]:
    return {
        "id": token.id,
        "note": token.note,
        "prefix": token.prefix,
        "scopes": list(token.scopes),
        "only": list(token.only) if token.only else None,
        "expires": token.expires_at,
        "last_used": token.last_used_at,
        "revoked": token.revoked_at,
    }


@token_app.command("revoke")
def token_revoke(
    token_id: int, config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Revoke a token; it stops working at once."""
    info = _write(config, data_dir, lambda c: acc.revoke_token(c, token_id))
    _done(f"revoked token {token_id}", _token_row(info), as_json)


# -- organizations and teams -----------------------------------------------------------------------


@org_app.command("create")
def org_create(
    org: str,
    owner: Annotated[str, typer.Option("--owner", help="The first owner (a user).")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an organization."""
    account = _write(config, data_dir, lambda c: acc.create_org(c, org, owner))
    _done(f"created organization {org} owned by {owner}", {**_org_row(account), "owner": owner}, as_json)


@org_app.command("add-member")
def org_add_member(
    org: str,
    user: str,
    role: Annotated[str, typer.Option("--role", help="member or owner")] = "member",
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a member to an organization, or change a member's role."""
    _write(config, data_dir, lambda c: acc.set_org_member(c, org, user, role))
    _done(f"{user} is now {role} of {org}", {"org": org, "user": user, "role": role}, as_json)


@org_app.command("remove-member")
def org_remove_member(
    org: str, user: str, config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Remove a member (and from the organization's teams)."""
    _write(config, data_dir, lambda c: acc.remove_org_member(c, org, user))
    _done(f"removed {user} from {org}", {"org": org, "removed": user}, as_json)


@org_app.command("set")
def org_set(
    org: str,
    container_registry: Annotated[str | None, typer.Option("--container-registry", help="enabled or disabled")] = None,
    allowed_visibilities: Annotated[
        str | None, typer.Option("--allowed-visibilities", help="Some of private,internal,public.")
    ] = None,
    storage_quota: QuotaOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change an organization's settings."""
    if container_registry not in (None, "enabled", "disabled"):
        _fail(f"--container-registry takes enabled or disabled, not {container_registry!r}")
    enabled = None if container_registry is None else container_registry == "enabled"
    visibilities = allowed_visibilities.split(",") if allowed_visibilities is not None else None
    quota = _quota(storage_quota)

    def change(conn: Connection) -> acc.Account:
        account = acc.set_org(conn, org, registry_enabled=enabled, allowed_visibilities=visibilities)
        if storage_quota is not None:
            account = acc.set_storage_quota(conn, org, "org", quota)
        return account

    account = _write(config, data_dir, change)
    row = _org_row(account)
    if storage_quota is not None:
        row["storage_quota"] = _quota_shown(account.storage_quota_bytes)
    _print([row], as_json, "")


def _quota(text: str | None) -> int | None:
    """--storage-quota: a size (10GiB, 500MB, 1.5TiB, bytes), or "default" for the site's default."""
    if text is None or text.strip().lower() == "default":
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        _fail(f"--storage-quota: {exc}, or default for the site's default")
        raise AssertionError from exc


def _quota_shown(quota: int | None) -> str:
    return "default" if quota is None else f"{human(quota)} ({quota} bytes)"


def _org_row(org: acc.Account) -> dict[str, Any]:
    return {
        "org": org.name,
        "container_registry": "enabled" if org.registry_enabled else "disabled",
        "allowed_visibilities": list(org.allowed_visibilities),
    }


@org_app.command("list")
def org_list(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List organizations."""
    orgs = _write(config, data_dir, lambda c: acc.list_accounts(c, "org"))
    _print([_org_row(o) for o in orgs], as_json, "no organizations")


@org_app.command("members")
def org_members(
    org: str, config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """List an organization's members and their roles."""
    members = _write(config, data_dir, lambda c: acc.org_members_of(c, org))
    _print([{"user": u, "role": r} for u, r in members], as_json, f"{org} has no members")


@team_app.command("create")
def team_create(
    org: str, team: str, config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Create a team in an organization."""
    _write(config, data_dir, lambda c: acc.create_team(c, org, team))
    _done(f"created team {org}/{team}", {"team": f"{org}/{team}"}, as_json)


@team_app.command("add-member")
def team_add_member(
    org: str,
    team: str,
    user: str,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add an organization member to a team."""
    _write(config, data_dir, lambda c: acc.add_team_member(c, org, team, user))
    _done(f"added {user} to {org}/{team}", {"team": f"{org}/{team}", "user": user}, as_json)


@team_app.command("remove-member")
def team_remove_member(
    org: str,
    team: str,
    user: str,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a user out of a team (they stay a member of the organization)."""
    _write(config, data_dir, lambda c: acc.remove_team_member(c, org, team, user))
    _done(f"removed {user} from {org}/{team}", {"team": f"{org}/{team}", "removed": user}, as_json)


@team_app.command("list")
def team_list(
    org: str, config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """List an organization's teams and their members."""
    found = _write(config, data_dir, lambda c: acc.teams_of(c, org))
    _print([{"team": f"{org}/{t}", "members": m} for t, m in found], as_json, f"{org} has no teams")


# -- packages --------------------------------------------------------------------------------------


def _package_row(package: acc.PackageInfo) -> dict[str, Any]:
    return {
        "package": package.name,
        "owner": package.owner,
        "visibility": package.visibility,
        "created": package.created_at,
    }


@package_app.command("list")
def package_list(
    owner: Annotated[str | None, typer.Argument()] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List packages, all or one owner's."""
    packages = _write(config, data_dir, lambda c: acc.list_packages(c, owner))
    _print([_package_row(p) for p in packages], as_json, "no packages")


@package_app.command("show")
def package_show(
    name: str, config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Show a package and who has which role on it."""

    def show(conn: Connection) -> dict[str, Any]:
        package = acc.get_package(conn, name)
        grants = [{"kind": k, "name": n, "role": r} for k, n, r in acc.grants_of(conn, name)]
        return {**_package_row(package), "access": grants}

    row = _write(config, data_dir, show)
    if as_json:
        typer.echo(json.dumps({k: _plain(v) for k, v in row.items()}, indent=2))
        return
    access = row.pop("access")
    _print([row], False, "")
    typer.echo("")
    _print(access, False, "nobody has an explicit role")


@package_app.command("visibility")
def package_visibility(
    name: str,
    visibility: str,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a package private, internal (organization members) or public."""
    package = _write(config, data_dir, lambda c: acc.set_visibility(c, name, visibility))
    _done(f"{name} is now {visibility}", _package_row(package), as_json)


@package_app.command("grant")
def package_grant(
    name: str,
    role: Annotated[str, typer.Option("--role", help="read, write or admin")],
    user: Annotated[str | None, typer.Option("--user")] = None,
    team: Annotated[str | None, typer.Option("--team", help="ORG/TEAM")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a user or a team a role on a package."""
    _write(config, data_dir, lambda c: acc.grant(c, name, role, user=user, team=team))
    row = {"package": name, "kind": "user" if user else "team", "name": user or team, "role": role}
    _done(f"{user or team} now has {role} on {name}", row, as_json)


@package_app.command("revoke")
def package_revoke(
    name: str,
    user: Annotated[str | None, typer.Option("--user")] = None,
    team: Annotated[str | None, typer.Option("--team", help="ORG/TEAM")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a user's or team's role on a package away."""
    _write(config, data_dir, lambda c: acc.revoke(c, name, user=user, team=team))
    row = {"package": name, "kind": "user" if user else "team", "name": user or team, "role": None}
    _done(f"{user or team} no longer has a role on {name}", row, as_json)


# -- immutable tags --------------------------------------------------------------------------------

PatternsArgument = Annotated[
    list[str] | None, typer.Argument(help="Shell-style patterns on tag names (quote them: 'v*'); none: show.")
]
ClearOption = Annotated[bool, typer.Option("--clear", help="Remove the patterns.")]


def _rules(config: Path | None, data_dir: Path | None, fn: Callable[[Connection], T]) -> T:
    try:
        return _write(config, data_dir, fn)
    except (immutable.InvalidPatterns, immutable.NotFound) as exc:
        _fail(str(exc))
        raise AssertionError from exc


def _new_patterns(patterns: list[str] | None, clear: bool) -> tuple[str, ...] | None:
    """The patterns to save (() clears), or None to only show them."""
    if clear and patterns:
        _fail("give patterns or --clear, not both")
    if clear:
        return ()
    if not patterns:
        return None
    try:
        return immutable.validate(patterns)
    except immutable.InvalidPatterns as exc:
        _fail(str(exc))
        raise AssertionError from exc


@package_app.command("immutable")
def package_immutable(
    name: str,
    patterns: PatternsArgument = None,
    clear: ClearOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make tags matching PATTERN... immutable in a package (they replace its owner's default); with
    no pattern, show the package's patterns; --clear removes them (the owner's default applies again)."""
    wanted = _new_patterns(patterns, clear)
    if wanted is None:
        setting = _rules(config, data_dir, lambda c: immutable.package_setting(c, name))
    else:
        setting = _rules(config, data_dir, lambda c: immutable.set_package_patterns(c, name, wanted))
    row = {
        "package": setting.package,
        "patterns": list(setting.own or ()),
        "owner_default": list(setting.default or ()),
        "effective": list(setting.effective),
        "effective_from": setting.source,
    }
    if as_json or wanted is None:
        _print([row], as_json, "")
    elif setting.effective:
        typer.echo(f"tags of {name} matching {' '.join(setting.effective)} are immutable ({setting.source}'s rule)")
    else:
        typer.echo(f"no tag of {name} is immutable")


def _owner_immutable(
    owner: str,
    kind: str,
    patterns: list[str] | None,
    clear: bool,
    config: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    wanted = _new_patterns(patterns, clear)
    if wanted is None:
        found = _rules(config, data_dir, lambda c: immutable.owner_setting(c, owner, kind))
    else:
        found = _rules(config, data_dir, lambda c: immutable.set_owner_patterns(c, owner, wanted, kind=kind))
    row = {"owner": found.owner, "type": found.kind, "patterns": list(found.patterns)}
    if as_json or wanted is None:
        _print([row], as_json, "")
    elif found.patterns:
        typer.echo(
            f"tags matching {' '.join(found.patterns)} are immutable in every package of {owner} "
            "that has no patterns of its own"
        )
    else:
        typer.echo(f"{owner} has no default immutable tags")


@org_app.command("immutable")
def org_immutable(
    org: str,
    patterns: PatternsArgument = None,
    clear: ClearOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """The default immutable-tag patterns of every package of an organization (a package's own
    patterns replace them); with no pattern, show them; --clear removes them."""
    _owner_immutable(org, "org", patterns, clear, config, data_dir, as_json)


@user_app.command("immutable")
def user_immutable(
    user: str,
    patterns: PatternsArgument = None,
    clear: ClearOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """The default immutable-tag patterns of every package of a user; as `portside org immutable`."""
    _owner_immutable(user, "user", patterns, clear, config, data_dir, as_json)


@package_app.command("purge")
def package_purge(
    name: str,
    version: Annotated[
        list[str] | None, typer.Option("--version", help="A version's digest; repeat for more. None: the package.")
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a package, or some of its versions, for good: no restore window (a leaked secret).
    The bytes go with the next garbage collection pass; `portside gc` runs one now."""

    def purge(conn: Connection) -> dict[str, Any]:
        repository_id = gc.live_package(conn, name)
        if repository_id is None:
            raise acc.AccessError(f"package {name} not found")
        if not version:
            count = gc.purge_package(conn, repository_id)
            record(conn, "-", "package.purge", name, {"versions": count}, "cli")
            return {"package": name, "versions": count}
        found = gc.version_ids(conn, repository_id, version)
        if missing := [digest for digest in version if digest not in found]:
            raise acc.AccessError(f"version {missing[0]} not found in {name}")
        purged = gc.purge_manifests(conn, repository_id, [found[digest] for digest in version])
        record(conn, "-", "package.purge_versions", name, {"versions": purged}, "cli")
        return {"package": name, "versions": len(purged), "ids": purged}

    try:
        row = _write(config, data_dir, purge)
    except immutable.ImmutableTag as exc:
        _fail(exc.message)
        return
    what = "the package" if not version else f"{row['versions']} version{'s' * (row['versions'] != 1)}"
    _done(f"{name}: {what} deleted for good; run `portside gc` to remove the bytes now", row, as_json)


# -- audit -----------------------------------------------------------------------------------------


def audit(
    since: Annotated[str, typer.Option("--since", help="How far back, e.g. 1h, 7d.")] = "24h",
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Security events: sign-ins and failures, tokens, visibility, grants, deletions."""
    try:
        window: timedelta = acc.parse_duration(since)
    except acc.AccessError as exc:
        _fail(str(exc))
        return
    events = _write(config, data_dir, lambda c: events_since(c, now() - window))
    _print([dataclasses.asdict(e) for e in events], as_json, f"no events in the last {since}")


@keys_app.command("rotate")
def keys_rotate(
    purpose: Annotated[str, typer.Option(help="token (bearer tokens) or session (browser cookies).")] = "token",
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """A new key signs from now on; the old one still verifies what it signed until that expires.
    Rotating the session key signs every browser out."""
    makers = {keys.TOKEN: keys.new_token_key, keys.SESSION: keys.new_session_key}
    if purpose not in makers:
        _fail(f"--purpose must be token or session, not {purpose!r}")
    kid = _write(config, data_dir, lambda c: keys.rotate(c, purpose, makers[purpose]))
    typer.echo(f"new {purpose} key {kid}; replicas use it within {int(keys.RELOAD_SECONDS)} seconds")


@keys_app.command("list")
def keys_list(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Key ids, purpose, created and retired (never the keys themselves)."""
    found = _write(config, data_dir, keys.describe)
    _print(found, as_json, "no keys")


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    app.add_typer(org_app, name="org")
    app.add_typer(team_app, name="team")
    app.add_typer(package_app, name="package")
    app.add_typer(keys_app, name="keys")
    app.command("audit")(audit)
