"""Users, organizations, teams, personal access tokens and package grants.

Plain functions on a database connection, so that the command line (which works on the database
directly, also while the server runs) and the HTTP surfaces share them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NewType

from sqlalchemy import Connection, delete, select, update

from portside.access import secrets
from portside.access.audit import record
from portside.access.policy import SCOPES, VISIBILITIES
from portside.clock import now
from portside.metadata.schema import (
    accounts,
    org_members,
    package_grants,
    personal_tokens,
    repositories,
    team_members,
    teams,
    web_sessions,
)
from portside.registry.references import NAME_RE

# The sign-in page reads at most 256 characters: a longer password could never be used there.
PASSWORD_MIN, PASSWORD_MAX = 8, 256
PasswordHash = NewType("PasswordHash", str)  # argon2id, from hash_new_password only
ACCOUNT_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,38}")
TEAM_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class AccessError(Exception):
    """Bad input or a missing account: the message says what to do."""


class NotFound(AccessError):
    pass


class Conflict(AccessError):
    pass


def check_account_name(name: str, what: str = "name") -> str:
    if name != name.lower():
        raise AccessError(
            f"{what} {name!r} has uppercase letters; names are lowercase, as on ghcr.io: use {name.lower()!r}"
        )
    if not ACCOUNT_NAME_RE.fullmatch(name):
        raise AccessError(
            f"{what} {name!r} is invalid: use 1-39 lowercase letters, digits and single hyphens, not at either end"
        )
    return name


# -- accounts --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    kind: str
    is_site_admin: bool
    is_disabled: bool
    registry_enabled: bool
    allowed_visibilities: tuple[str, ...]
    has_password: bool
    created_at: datetime
    storage_quota_bytes: int | None = None  # None: the site's default (registry.quotas)


def _account(row: object) -> Account:
    m = row._mapping  # type: ignore[attr-defined]
    return Account(
        id=m["id"],
        name=m["name"],
        kind=m["kind"],
        is_site_admin=m["is_site_admin"],
        is_disabled=m["is_disabled"],
        registry_enabled=m["registry_enabled"],
        allowed_visibilities=tuple(v for v in m["allowed_visibilities"].split(",") if v),
        has_password=m["password_hash"] is not None,
        created_at=m["created_at"],
        storage_quota_bytes=m["storage_quota_bytes"],
    )


def find_account(conn: Connection, name: str) -> Account | None:
    row = conn.execute(select(accounts).where(accounts.c.name == name)).first()
    return _account(row) if row else None


def get_account(conn: Connection, name: str, kind: str | None = None) -> Account:
    check_account_name(name)  # "Alice" gets "names are lowercase", not "does not exist"
    account = find_account(conn, name)
    if account is None or (kind is not None and account.kind != kind):
        what = {"user": "user", "org": "organization"}.get(kind or "", "account")
        raise NotFound(f"{what} {name} does not exist")
    return account


def list_accounts(conn: Connection, kind: str) -> list[Account]:
    rows = conn.execute(select(accounts).where(accounts.c.kind == kind).order_by(accounts.c.name))
    return [_account(row) for row in rows]


def _create_account(conn: Connection, name: str, kind: str, **values: object) -> Account:
    check_account_name(name)
    if find_account(conn, name) is not None:
        raise Conflict(f"the name {name} is already taken by a user or organization")
    defaults: dict[str, object] = {
        "is_site_admin": False,
        "is_disabled": False,
        "registry_enabled": True,
        "allowed_visibilities": ",".join(VISIBILITIES),
    }
    conn.execute(accounts.insert().values(name=name, kind=kind, created_at=now(), **{**defaults, **values}))
    account = get_account(conn, name)
    # Repositories pushed before accounts existed (or whose owner was deleted) belong to the new namespace.
    conn.execute(
        update(repositories)
        .where(repositories.c.owner_id.is_(None), repositories.c.name.like(f"{name}/%"))
        .values(owner_id=account.id)
    )
    return account


def create_user(
    conn: Connection, name: str, *, admin: bool = False, password: str | None = None, actor: str = "cli"
) -> Account:
    password_hash = secrets.hash_password(password) if password else None
    user = _create_account(conn, name, "user", is_site_admin=admin, password_hash=password_hash)
    record(conn, actor, "user.create", name, {"admin": admin})
    return user


def delete_account(conn: Connection, name: str, kind: str, *, actor: str = "cli") -> None:
    account = get_account(conn, name, kind)
    conn.execute(delete(accounts).where(accounts.c.id == account.id))
    record(conn, actor, f"{kind}.delete", name)


def hash_new_password(password: str) -> PasswordHash:
    """Check a new password's length and hash it (argon2id). Slow on purpose: call it before the
    write transaction, not inside it, so that other writes do not wait for it."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AccessError(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters, not {len(password)}")
    return PasswordHash(secrets.hash_password(password))


def _end_sessions(conn: Connection, user_id: int) -> int:
    """Sign the user out of every browser at once: their sessions' rows go."""
    return conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id)).rowcount


def set_password(conn: Connection, name: str, password_hash: PasswordHash | None, *, actor: str = "cli") -> Account:
    """Set a user's password (None: remove it, tokens only). Every browser signed in as the user is
    signed out, so that whoever knew the old password loses the sessions it opened."""
    user = get_account(conn, name, "user")
    conn.execute(update(accounts).where(accounts.c.id == user.id).values(password_hash=password_hash))
    ended = _end_sessions(conn, user.id)
    record(conn, actor, "user.password", name, {"removed": password_hash is None, "sessions_ended": ended})
    return get_account(conn, name, "user")


def set_site_admin(conn: Connection, name: str, admin: bool, *, actor: str = "cli") -> Account:
    user = get_account(conn, name, "user")
    conn.execute(update(accounts).where(accounts.c.id == user.id).values(is_site_admin=admin))
    record(conn, actor, "user.site_admin", name, {"admin": admin})
    return get_account(conn, name, "user")


def set_disabled(conn: Connection, name: str, disabled: bool, *, actor: str = "cli") -> Account:
    """Disable a user (sessions end now; tokens and passwords are refused while disabled, since every
    check reads the flag) or enable them again (their tokens work again, their sessions do not)."""
    user = get_account(conn, name, "user")
    conn.execute(update(accounts).where(accounts.c.id == user.id).values(is_disabled=disabled))
    if disabled:
        record(conn, actor, "user.disable", name, {"sessions_ended": _end_sessions(conn, user.id)})
    else:
        record(conn, actor, "user.enable", name)
    return get_account(conn, name, "user")


def create_org(conn: Connection, name: str, owner: str, *, actor: str = "cli") -> Account:
    owner_account = get_account(conn, owner, "user")
    org = _create_account(conn, name, "org")
    conn.execute(org_members.insert().values(org_id=org.id, user_id=owner_account.id, role="owner"))
    record(conn, actor, "org.create", name, {"owner": owner})
    return org


def set_org_member(conn: Connection, org: str, user: str, role: str, *, actor: str = "cli") -> None:
    if role not in ("member", "owner"):
        raise AccessError(f"role {role!r} is invalid: use member or owner")
    org_account, user_account = get_account(conn, org, "org"), get_account(conn, user, "user")
    stmt = org_members.insert().values(org_id=org_account.id, user_id=user_account.id, role=role)
    existing = conn.execute(
        select(org_members.c.role).where(
            org_members.c.org_id == org_account.id, org_members.c.user_id == user_account.id
        )
    ).scalar()
    if existing is None:
        conn.execute(stmt)
    else:
        conn.execute(
            update(org_members)
            .where(org_members.c.org_id == org_account.id, org_members.c.user_id == user_account.id)
            .values(role=role)
        )
    record(conn, actor, "org.member", f"{org}/{user}", {"role": role})


def remove_org_member(conn: Connection, org: str, user: str, *, actor: str = "cli") -> None:
    org_account, user_account = get_account(conn, org, "org"), get_account(conn, user, "user")
    removed = conn.execute(
        delete(org_members).where(org_members.c.org_id == org_account.id, org_members.c.user_id == user_account.id)
    ).rowcount
    if not removed:
        raise NotFound(f"{user} is not a member of {org}")
    team_ids = select(teams.c.id).where(teams.c.org_id == org_account.id)
    conn.execute(
        delete(team_members).where(team_members.c.user_id == user_account.id, team_members.c.team_id.in_(team_ids))
    )
    record(conn, actor, "org.remove_member", f"{org}/{user}")


def org_members_of(conn: Connection, org: str) -> list[tuple[str, str]]:
    org_account = get_account(conn, org, "org")
    rows = conn.execute(
        select(accounts.c.name, org_members.c.role)
        .join(accounts, accounts.c.id == org_members.c.user_id)
        .where(org_members.c.org_id == org_account.id)
        .order_by(accounts.c.name)
    )
    return [(name, role) for name, role in rows]


def orgs_of(conn: Connection, user: str) -> list[tuple[Account, str]]:
    """The organizations a user belongs to, with the user's role in each."""
    user_account = get_account(conn, user, "user")
    rows = conn.execute(
        select(accounts, org_members.c.role)
        .join(org_members, org_members.c.org_id == accounts.c.id)
        .where(org_members.c.user_id == user_account.id)
        .order_by(accounts.c.name)
    )
    return [(_account(row), row.role) for row in rows]


def set_org(
    conn: Connection,
    org: str,
    *,
    registry_enabled: bool | None = None,
    allowed_visibilities: list[str] | None = None,
    actor: str = "cli",
) -> Account:
    org_account = get_account(conn, org, "org")
    values: dict[str, object] = {}
    if registry_enabled is not None:
        values["registry_enabled"] = registry_enabled
    if allowed_visibilities is not None:
        bad = [v for v in allowed_visibilities if v not in VISIBILITIES]
        if bad or not allowed_visibilities:
            raise AccessError(f"allowed visibilities must be some of {', '.join(VISIBILITIES)}")
        values["allowed_visibilities"] = ",".join(v for v in VISIBILITIES if v in allowed_visibilities)
    if values:
        conn.execute(update(accounts).where(accounts.c.id == org_account.id).values(**values))
        record(conn, actor, "org.settings", org, {k: v for k, v in values.items()})
    return get_account(conn, org, "org")


def set_storage_quota(conn: Connection, name: str, kind: str, quota: int | None, *, actor: str = "cli") -> Account:
    """Set a user's or organization's storage quota in bytes (None: back to the site's default)."""
    account = get_account(conn, name, kind)
    if quota is not None and quota < 0:
        raise AccessError(f"a storage quota is a number of bytes, 0 or more, not {quota}")
    conn.execute(update(accounts).where(accounts.c.id == account.id).values(storage_quota_bytes=quota))
    record(
        conn,
        actor,
        f"{kind}.storage_quota",
        name,
        {"storage_quota_bytes": quota, "previous": account.storage_quota_bytes},
    )
    return get_account(conn, name, kind)


# -- teams -----------------------------------------------------------------------------------------


def _team_id(conn: Connection, org: str, team: str) -> int:
    org_account = get_account(conn, org, "org")
    team_id = conn.execute(select(teams.c.id).where(teams.c.org_id == org_account.id, teams.c.name == team)).scalar()
    if team_id is None:
        raise NotFound(f"team {org}/{team} does not exist")
    return team_id


def create_team(conn: Connection, org: str, team: str, *, actor: str = "cli") -> None:
    if not TEAM_NAME_RE.fullmatch(team):
        raise AccessError(f"team name {team!r} is invalid: use lowercase letters, digits, '.', '_' and '-'")
    org_account = get_account(conn, org, "org")
    exists = conn.execute(select(teams.c.id).where(teams.c.org_id == org_account.id, teams.c.name == team)).scalar()
    if exists is not None:
        raise Conflict(f"team {org}/{team} already exists")
    conn.execute(teams.insert().values(org_id=org_account.id, name=team))
    record(conn, actor, "team.create", f"{org}/{team}")


def add_team_member(conn: Connection, org: str, team: str, user: str, *, actor: str = "cli") -> None:
    team_id = _team_id(conn, org, team)
    user_account = get_account(conn, user, "user")
    org_account = get_account(conn, org, "org")
    is_member = conn.execute(
        select(org_members.c.role).where(
            org_members.c.org_id == org_account.id, org_members.c.user_id == user_account.id
        )
    ).scalar()
    if is_member is None:
        raise AccessError(
            f"{user} is not a member of {org}; add them first with `portside org add-member {org} {user}`"
        )
    already = conn.execute(
        select(team_members.c.team_id).where(
            team_members.c.team_id == team_id, team_members.c.user_id == user_account.id
        )
    ).scalar()
    if already is None:
        conn.execute(team_members.insert().values(team_id=team_id, user_id=user_account.id))
    record(conn, actor, "team.member", f"{org}/{team}/{user}")


def remove_team_member(conn: Connection, org: str, team: str, user: str, *, actor: str = "cli") -> None:
    """Take a user out of a team (they stay a member of the organization)."""
    team_id = _team_id(conn, org, team)
    user_account = get_account(conn, user, "user")
    removed = conn.execute(
        delete(team_members).where(team_members.c.team_id == team_id, team_members.c.user_id == user_account.id)
    ).rowcount
    if not removed:
        raise NotFound(f"{user} is not in team {org}/{team}")
    record(conn, actor, "team.remove_member", f"{org}/{team}/{user}")


def teams_of(conn: Connection, org: str) -> list[tuple[str, list[str]]]:
    org_account = get_account(conn, org, "org")
    result = []
    for team_id, name in conn.execute(
        select(teams.c.id, teams.c.name).where(teams.c.org_id == org_account.id).order_by(teams.c.name)
    ).all():
        members = conn.execute(
            select(accounts.c.name)
            .join(team_members, team_members.c.user_id == accounts.c.id)
            .where(team_members.c.team_id == team_id)
            .order_by(accounts.c.name)
        ).scalars()
        result.append((name, list(members)))
    return result


# -- personal access tokens ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    user: str
    prefix: str
    scopes: tuple[str, ...]
    only: tuple[str, ...] | None
    note: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


def parse_scopes(value: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise AccessError(f"unknown scope {', '.join(bad) or '(none given)'}: choose from {', '.join(SCOPES)}")
    return scopes


def parse_only(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    patterns = tuple(p.strip() for p in value.split(",") if p.strip())
    for pattern in patterns:
        owner, _, rest = pattern.partition("/")
        check_account_name(owner, "owner")
        if not rest or (rest != "*" and not NAME_RE.fullmatch(pattern)):
            raise AccessError(f"--only pattern {pattern!r} is invalid: use OWNER/NAME or OWNER/*")
    if not patterns:
        raise AccessError("--only needs at least one OWNER/NAME or OWNER/* pattern")
    return patterns


def parse_duration(value: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhdw])", value.strip())
    if not match:
        raise AccessError(f"duration {value!r} is invalid: use a number and a unit, e.g. 30d, 12h, 90m")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def create_token(
    conn: Connection,
    user: str,
    scopes: tuple[str, ...],
    *,
    expires_in: timedelta | None = None,
    note: str = "",
    only: tuple[str, ...] | None = None,
    actor: str = "cli",
) -> tuple[str, TokenInfo]:
    """Create a token; the secret is returned once and only its hash is kept."""
    account = get_account(conn, user, "user")
    token = secrets.new_token()
    created = now()
    token_id = conn.execute(
        personal_tokens.insert().values(
            user_id=account.id,
            secret_hash=secrets.token_hash(token),
            prefix=secrets.token_prefix(token),
            scopes=",".join(scopes),
            only=json.dumps(list(only)) if only is not None else None,
            note=note,
            expires_at=created + expires_in if expires_in else None,
            created_at=created,
        )
    ).inserted_primary_key[0]
    record(conn, actor, "token.create", user, {"id": token_id, "scopes": list(scopes), "only": only})
    return token, get_token(conn, token_id)


def _token_info(row: object) -> TokenInfo:
    m = row._mapping  # type: ignore[attr-defined]
    return TokenInfo(
        id=m["id"],
        user=m["name"],
        prefix=m["prefix"],
        scopes=tuple(m["scopes"].split(",")),
        only=tuple(json.loads(m["only"])) if m["only"] else None,
        note=m["note"],
        expires_at=m["expires_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
        created_at=m["created_at"],
    )


_TOKEN_COLUMNS = (personal_tokens, accounts.c.name)


def get_token(conn: Connection, token_id: int) -> TokenInfo:
    if not 0 < token_id < 2**63:  # beyond what the database can hold: no such token, not a crash
        raise NotFound(f"token {token_id} does not exist")
    row = conn.execute(
        select(*_TOKEN_COLUMNS)
        .join(accounts, accounts.c.id == personal_tokens.c.user_id)
        .where(personal_tokens.c.id == token_id)
    ).first()
    if row is None:
        raise NotFound(f"token {token_id} does not exist")
    return _token_info(row)


def list_tokens(conn: Connection, user: str) -> list[TokenInfo]:
    account = get_account(conn, user, "user")
    rows = conn.execute(
        select(*_TOKEN_COLUMNS)
        .join(accounts, accounts.c.id == personal_tokens.c.user_id)
        .where(personal_tokens.c.user_id == account.id)
        .order_by(personal_tokens.c.id)
    )
    return [_token_info(row) for row in rows]


def revoke_token(conn: Connection, token_id: int, *, actor: str = "cli") -> TokenInfo:
    info = get_token(conn, token_id)
    if info.revoked_at is None:
        conn.execute(update(personal_tokens).where(personal_tokens.c.id == token_id).values(revoked_at=now()))
    record(conn, actor, "token.revoke", info.user, {"id": token_id})
    return get_token(conn, token_id)


# -- packages --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackageInfo:
    name: str
    owner: str
    visibility: str
    created_at: datetime


def _package_row(conn: Connection, name: str) -> tuple[int, str, str, datetime]:
    row = conn.execute(
        select(repositories.c.id, accounts.c.name, repositories.c.visibility, repositories.c.created_at)
        .join(accounts, accounts.c.id == repositories.c.owner_id)
        .where(repositories.c.name == name, repositories.c.deleted_at.is_(None))
    ).first()
    if row is None:
        raise NotFound(f"package {name} does not exist")
    return row[0], row[1], row[2], row[3]


def get_package(conn: Connection, name: str) -> PackageInfo:
    _, owner, visibility, created = _package_row(conn, name)
    return PackageInfo(name, owner, visibility, created)


def list_packages(conn: Connection, owner: str | None = None) -> list[PackageInfo]:
    stmt = (
        select(repositories.c.name, accounts.c.name, repositories.c.visibility, repositories.c.created_at)
        .join(accounts, accounts.c.id == repositories.c.owner_id)
        .where(repositories.c.deleted_at.is_(None))  # a deleted package waits for restore or purge
        .order_by(repositories.c.name)
    )
    if owner is not None:
        stmt = stmt.where(accounts.c.id == get_account(conn, owner).id)
    return [PackageInfo(*row) for row in conn.execute(stmt)]


def set_visibility(conn: Connection, name: str, visibility: str, *, actor: str = "cli") -> PackageInfo:
    if visibility not in VISIBILITIES:
        raise AccessError(f"visibility {visibility!r} is invalid: use {', '.join(VISIBILITIES)}")
    package_id, owner, _, _ = _package_row(conn, name)
    owner_account = get_account(conn, owner)
    if visibility == "internal" and owner_account.kind != "org":
        raise AccessError(f"internal visibility is for organization packages; {owner} is a user")
    if owner_account.kind == "org" and visibility not in owner_account.allowed_visibilities:
        raise AccessError(
            f"organization {owner} allows only {', '.join(owner_account.allowed_visibilities)} packages; "
            f"an owner can change that with `portside org set {owner} --allowed-visibilities ...`"
        )
    conn.execute(update(repositories).where(repositories.c.id == package_id).values(visibility=visibility))
    record(conn, actor, "package.visibility", name, {"visibility": visibility})
    return get_package(conn, name)


def _grant_subject(
    conn: Connection, package_owner: str, user: str | None, team: str | None
) -> tuple[int | None, int | None]:
    if (user is None) == (team is None):
        raise AccessError("name exactly one of --user NAME or --team ORG/TEAM")
    if user is not None:
        return get_account(conn, user, "user").id, None
    org, _, team_name = (team or "").partition("/")
    if org != package_owner:
        raise AccessError(f"team {team} is not in {package_owner}; only the owning organization's teams can be granted")
    return None, _team_id(conn, org, team_name)


def grant(
    conn: Connection, name: str, role: str, *, user: str | None = None, team: str | None = None, actor: str = "cli"
) -> None:
    if role not in ("read", "write", "admin"):
        raise AccessError(f"role {role!r} is invalid: use read, write or admin")
    package_id, owner, _, _ = _package_row(conn, name)
    user_id, team_id = _grant_subject(conn, owner, user, team)
    _delete_grant(conn, package_id, user_id, team_id)
    conn.execute(package_grants.insert().values(repository_id=package_id, user_id=user_id, team_id=team_id, role=role))
    record(conn, actor, "package.grant", name, {"user": user, "team": team, "role": role})


def revoke(
    conn: Connection, name: str, *, user: str | None = None, team: str | None = None, actor: str = "cli"
) -> None:
    package_id, owner, _, _ = _package_row(conn, name)
    user_id, team_id = _grant_subject(conn, owner, user, team)
    if not _delete_grant(conn, package_id, user_id, team_id):
        raise NotFound(f"{user or team} has no role on {name}")
    record(conn, actor, "package.revoke", name, {"user": user, "team": team})


def _delete_grant(conn: Connection, package_id: int, user_id: int | None, team_id: int | None) -> int:
    subject = package_grants.c.user_id == user_id if user_id is not None else package_grants.c.team_id == team_id
    return conn.execute(delete(package_grants).where(package_grants.c.repository_id == package_id, subject)).rowcount


def grants_of(conn: Connection, name: str) -> list[tuple[str, str, str]]:
    """(kind, name, role) for every user and team with a role on the package."""
    package_id, owner, _, _ = _package_row(conn, name)
    users = conn.execute(
        select(accounts.c.name, package_grants.c.role)
        .join(accounts, accounts.c.id == package_grants.c.user_id)
        .where(package_grants.c.repository_id == package_id)
    ).all()
    team_rows = conn.execute(
        select(teams.c.name, package_grants.c.role)
        .join(teams, teams.c.id == package_grants.c.team_id)
        .where(package_grants.c.repository_id == package_id)
    ).all()
    return sorted([("user", n, r) for n, r in users] + [("team", f"{owner}/{n}", r) for n, r in team_rows])
