"""Authentication and authorisation for the HTTP surfaces.

Credentials become an `Actor`; the database's facts about a package and the actor go to
`policy.decide`. Nothing here knows about HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, Connection, and_, bindparam, case, func, or_, select, update

from portside.access import keys, secrets
from portside.access.audit import record
from portside.access.bearer import Claims, Grant, InvalidToken, TokenSigner, UnknownKey
from portside.access.policy import ANONYMOUS, REGISTRY_ACTIONS, Action, Actor, Decision, Facts, Role, decide
from portside.access.ratelimit import FailureLimiter
from portside.access.visibility import readable
from portside.clock import now
from portside.metadata.database import Database, Rider
from portside.metadata.schema import (
    accounts,
    org_members,
    package_grants,
    personal_tokens,
    repositories,
    team_members,
)

NEW_TOKEN = "generate a token under Your tokens (/settings/tokens) or with `portside token create`"
LAST_USED_EVERY = 60.0  # seconds between last-used updates of one token


KEY_LOOKUP_SECONDS = 5.0  # an unknown key id sends a process to the database at most this often


class AuthenticationFailed(Exception):
    """Credentials were presented and are wrong, expired or revoked."""


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-in attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Authenticated:
    actor: Actor
    token_id: int | None


class Access:
    def __init__(
        self, db: Database, signer: TokenSigner, *, service: str, allow_password_login: bool, limiter: FailureLimiter
    ) -> None:
        self.db = db
        self.signer = signer
        self._keys_loaded = time.monotonic()
        self.service = service
        self.allow_password_login = allow_password_login
        self.limiter = limiter
        self._last_used: dict[int, float] = {}
        # Checked on every request that carries a bearer token: prepared once (metadata.database.Query).
        self._bearer_query = db.query(
            select(
                accounts.c.name,
                accounts.c.is_site_admin,
                accounts.c.is_disabled,
                personal_tokens.c.id,
                personal_tokens.c.revoked_at,
                personal_tokens.c.expires_at,
                personal_tokens.c.scopes,
                personal_tokens.c.only,
            )
            .select_from(
                accounts.outerjoin(
                    personal_tokens,
                    and_(personal_tokens.c.user_id == accounts.c.id, personal_tokens.c.id == bindparam("token_id")),
                )
            )
            .where(accounts.c.id == bindparam("user_id"))
        )
        self._prepare_facts()

    def _prepare_facts(self) -> None:
        """The decision function's facts in one prepared read: every request asks for them, and on
        PostgreSQL each read is a round trip (a blob HEAD on the fleet was four of them; now three)."""
        role = (
            select(org_members.c.role)
            .where(org_members.c.org_id == accounts.c.id, org_members.c.user_id == bindparam("user_id"))
            .scalar_subquery()
        )
        teams = select(team_members.c.team_id).where(team_members.c.user_id == bindparam("user_id"))
        # The strongest role granted on the package to the actor or one of their teams, as a Role.
        granted = (
            select(func.max(case({r.name.lower(): r.value for r in Role if r}, value=package_grants.c.role, else_=0)))
            .where(
                package_grants.c.repository_id == repositories.c.id,
                or_(package_grants.c.user_id == bindparam("user_id"), package_grants.c.team_id.in_(teams)),
            )
            .scalar_subquery()
        )
        self._facts_query = self.db.query(
            select(
                accounts.c.id,
                accounts.c.kind,
                accounts.c.registry_enabled,
                role,
                repositories.c.id,
                repositories.c.visibility,
                granted,
            )
            .select_from(accounts.outerjoin(repositories, repositories.c.name == bindparam("package")))
            .where(accounts.c.name == bindparam("owner"))
        )

    async def facts(self, actor: Actor, package: str) -> Facts:
        """What the database says about the package's namespace and the actor's relation to it."""
        owner = package.split("/", 1)[0] if "/" in package else ""
        row = await self.db.fetch_one(self._facts_query, owner=owner, package=package, user_id=actor.user_id)
        if row is None:
            return Facts(package=package, owner_exists=False)
        owner_id, kind, registry_enabled, org_role, package_id, visibility, granted = row
        return Facts(
            package=package,
            owner_exists=True,
            owner_kind=kind,
            registry_enabled=kind != "org" or bool(registry_enabled),
            actor_owns_namespace=kind == "user" and owner_id == actor.user_id,
            org_role=org_role if kind == "org" else None,
            package_exists=package_id is not None,
            visibility=visibility if package_id is not None else "private",
            granted=Role(granted or 0) if actor.user_id is not None else Role.NONE,
        )

    # -- authentication ------------------------------------------------------------------------

    async def basic(self, username: str, secret: str, client: str) -> Authenticated:
        """A user name with a personal access token (or, if the operator allows it, a password)."""
        keys = (f"ip:{client}", f"user:{username}")
        if wait := self.limiter.retry_after(*keys):
            raise RateLimited(wait)
        result = await self.db.read(self._check_basic, username, secret)
        if isinstance(result, str):
            self.limiter.fail(*keys)
            await self.db.write(record, username or "-", "auth.failure", username, {"reason": result}, client)
            raise AuthenticationFailed(result)
        await self._signed_in(result, username, client)
        return result

    def _check_basic(self, conn: Connection, username: str, secret: str) -> Authenticated | str:
        if secrets.looks_like_token(secret):
            return self._check_token(conn, secret, username)
        if not self.allow_password_login:
            return f"the registry accepts personal access tokens, not passwords; {NEW_TOKEN}"
        return check_password(conn, username, secret)

    def _check_token(self, conn: Connection, secret: str, username: str | None) -> Authenticated | str:
        """A personal access token; `username`, when given, must be its owner's."""
        row = conn.execute(
            select(personal_tokens).where(personal_tokens.c.secret_hash == secrets.token_hash(secret))
        ).first()
        if row is None or not secrets.hashes_match(row.secret_hash, secrets.token_hash(secret)):
            return f"unknown token; {NEW_TOKEN}"
        user = conn.execute(
            select(accounts.c.name, accounts.c.is_site_admin, accounts.c.is_disabled).where(
                accounts.c.id == row.user_id
            )
        ).one()
        if username is not None and user.name != username:
            return f"the token does not belong to {username}"
        problem = _token_problem(row)
        if problem:
            return problem
        if user.is_disabled:
            return f"user {user.name} is disabled"
        return Authenticated(_token_actor(user.name, row.user_id, user.is_site_admin, row), row.id)

    async def password(self, username: str, password: str, client: str) -> Authenticated:
        """A user name and password, as the sign-in page sends them (always allowed there: browsers
        sign in with passwords whatever `allow_password_login` says about the registry)."""
        keys = (f"ip:{client}", f"user:{username}")
        if wait := self.limiter.retry_after(*keys):
            raise RateLimited(wait)
        result = await self.db.read(check_password, username, password)
        if isinstance(result, str):
            self.limiter.fail(*keys)
            await self.db.write(record, username or "-", "auth.failure", username, {"reason": result}, client)
            raise AuthenticationFailed(result)
        await self.db.write(record, username, "auth.web_login", username, None, client)
        return result

    async def token(self, secret: str, client: str) -> Authenticated:
        """A personal access token on its own (the REST API's `Authorization: Bearer <token>`)."""
        keys = (f"ip:{client}",)
        if wait := self.limiter.retry_after(*keys):
            raise RateLimited(wait)
        result = await self.db.read(self._check_token, secret, None)
        if isinstance(result, str):
            self.limiter.fail(*keys)
            await self.db.write(record, "-", "auth.failure", "-", {"reason": result}, client)
            raise AuthenticationFailed(result)
        await self._signed_in(result, result.actor.name or "-", client)
        return result

    async def reload_keys(self) -> None:
        """The token keys as the database has them now (another replica may have rotated them)."""
        self._keys_loaded = time.monotonic()
        found = await self.db.read(keys.token_keys, self.signer.lifetime)
        if found:
            self.signer.use(found)

    async def bearer(self, token: str) -> tuple[Actor, Claims]:
        """A bearer token from our token endpoint; its personal access token must still be valid."""
        try:
            claims = self.signer.verify(token, self.service)
        except UnknownKey:
            # Perhaps a key rotated in on another replica: look once (at most every few seconds).
            if time.monotonic() - self._keys_loaded < KEY_LOOKUP_SECONDS:
                raise
            await self.reload_keys()
            claims = self.signer.verify(token, self.service)
        if claims.refresh:
            raise InvalidToken("a refresh token cannot be used as a bearer token; exchange it at the token endpoint")
        if claims.user_id is None:
            return ANONYMOUS, claims
        actor = await self._bearer_actor(claims)
        if isinstance(actor, str):
            raise InvalidToken(actor)
        return actor, claims

    def verified_claims(self, token: str) -> Claims | None:
        """A bearer token's claims when its signature is good and it names a user, without the
        database; None for anything else (`bearer` then says what is wrong, or who is anonymous)."""
        try:
            claims = self.signer.verify(token, self.service)
        except InvalidToken:
            return None
        return None if claims.refresh or claims.user_id is None else claims

    def token_rider(self, claims: Claims) -> Rider:
        """The read of the bearer token's user and personal access token, to ride along with the
        read a request makes anyway (metadata.database.Rider): one round trip for both."""
        return Rider(self._bearer_query, user_id=claims.user_id, token_id=claims.token_id)

    def rider_actor(self, claims: Claims, rider: Rider) -> Actor:
        """The actor of `claims` after `token_rider`'s read, or InvalidToken saying why not."""
        assert rider.done
        actor = _actor_from_row(claims, rider.row)
        if isinstance(actor, str):
            raise InvalidToken(actor)
        return actor

    async def _bearer_actor(self, claims: Claims) -> Actor | str:
        row = await self.db.fetch_one(self._bearer_query, user_id=claims.user_id, token_id=claims.token_id)
        return _actor_from_row(claims, row)

    async def _signed_in(self, result: Authenticated, username: str, client: str) -> None:
        """Record a sign-in and the token's last use, at most once a minute per token and process:
        clients sign in for every pull, and the audit log should show who, not every request."""
        key = result.token_id if result.token_id is not None else -(result.actor.user_id or 0)
        moment = time.monotonic()
        if moment - self._last_used.get(key, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        self._last_used[key] = moment

        def change(conn: Connection) -> None:
            if result.token_id is not None:
                conn.execute(
                    update(personal_tokens).where(personal_tokens.c.id == result.token_id).values(last_used_at=now())
                )
            record(conn, username, "auth.login", username, {"token": result.token_id}, client)

        await self.db.write(change)

    # -- authorisation -------------------------------------------------------------------------

    async def decide(self, actor: Actor, package: str, action: Action) -> Decision:
        return decide(actor, await self.facts(actor, package), action)

    async def audit(self, actor: Actor, action: str, target: str, client: str, **detail: object) -> None:
        await self.db.write(record, actor.name or "-", action, target, detail or None, client)

    def readable(self, actor: Actor) -> ColumnElement[bool]:
        return readable(actor)

    def package_creator(self, actor: Actor) -> Callable[[Connection, int], None]:
        """Makes a new repository a package: owned by its namespace, private, its creator an admin."""

        def create(conn: Connection, repository_id: int) -> None:
            name = conn.execute(select(repositories.c.name).where(repositories.c.id == repository_id)).scalar_one()
            owner_id = conn.execute(select(accounts.c.id).where(accounts.c.name == name.split("/", 1)[0])).scalar()
            conn.execute(
                update(repositories)
                .where(repositories.c.id == repository_id)
                .values(owner_id=owner_id, visibility="private")
            )
            if actor.user_id is not None:
                conn.execute(
                    package_grants.insert().values(repository_id=repository_id, user_id=actor.user_id, role="admin")
                )
            record(conn, actor.name or "-", "package.create", name)

        return create

    async def grants(self, actor: Actor, package: str, actions: set[Action]) -> tuple[Action, ...]:
        facts = await self.facts(actor, package)
        return tuple(a for a in REGISTRY_ACTIONS if a in actions and decide(actor, facts, a).allowed)

    async def issue(self, auth: Authenticated | None, scopes: list[str], *, refresh: bool) -> dict[str, object]:
        """The token endpoint's answer: granted = asked for, allowed by the token and by the roles."""
        actor = auth.actor if auth else ANONYMOUS
        access: list[Grant] = []
        for scope in scopes:
            grant = await self._grant_for_scope(actor, scope)
            if grant is not None and grant.actions:
                access.append(grant)
        token, issued, expires_in = self.signer.issue(
            actor.name or "",
            user_id=actor.user_id,
            token_id=auth.token_id if auth else None,
            audience=self.service,
            access=access,
        )
        answer: dict[str, object] = {
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued)),
            # What was granted, in the form it was asked for (the OAuth2 answer lists it).
            "scope": " ".join(f"{g.type}:{g.name}:{','.join(g.actions)}" for g in access),
        }
        if refresh and auth is not None:
            answer["refresh_token"] = self.signer.issue(
                actor.name or "",
                user_id=actor.user_id,
                token_id=auth.token_id,
                audience=self.service,
                access=[],
                lifetime=30 * 24 * 3600,
                refresh=True,
            )[0]
        return answer

    async def _grant_for_scope(self, actor: Actor, scope: str) -> Grant | None:
        parts = scope.split(":")
        if len(parts) < 3:
            return None
        kind, name, wanted = parts[0], ":".join(parts[1:-1]), set(parts[-1].split(","))
        if kind == "registry" and name == "catalog":
            return Grant(kind, name, ("*",)) if "*" in wanted else None
        if kind != "repository":
            return None
        if "*" in wanted:
            wanted = {a.value for a in REGISTRY_ACTIONS}
        actions = {a for a in REGISTRY_ACTIONS if a.value in wanted}
        granted = await self.grants(actor, name, actions)
        return Grant(kind, name, tuple(a.value for a in granted))

    async def refresh(self, refresh_token: str) -> Authenticated:
        claims = self.signer.verify(refresh_token, self.service)
        if not claims.refresh or claims.user_id is None:
            raise InvalidToken("not a refresh token")
        actor = await self._bearer_actor(claims)
        if isinstance(actor, str):
            raise InvalidToken(actor)
        return Authenticated(actor, claims.token_id)


def _actor_from_row(claims: Claims, row: tuple[object, ...] | None) -> Actor | str:
    """The actor of verified bearer-token claims given its user's and token's row (Access's bearer
    query), or why the token no longer stands."""
    if row is None:
        return "the user this token was issued to no longer exists or is disabled"
    name, site_admin, disabled, token_id, revoked_at, expires_at, scopes, only = row
    if disabled:
        return "the user this token was issued to no longer exists or is disabled"
    if claims.token_id is None:
        return Actor(claims.user_id, name, site_admin)
    if token_id is None:
        return "the personal access token behind this bearer token was deleted"
    token = _TokenRow(revoked_at, expires_at, scopes, only)
    return _token_problem(token) or _token_actor(name, claims.user_id, site_admin, token)


def check_password(conn: Connection, username: str, password: str) -> Authenticated | str:
    user = conn.execute(
        select(accounts.c.id, accounts.c.is_site_admin, accounts.c.is_disabled, accounts.c.password_hash).where(
            accounts.c.name == username, accounts.c.kind == "user"
        )
    ).first()
    stored = user.password_hash if user is not None and not user.is_disabled else None
    # Always run the (slow) check, so that timing does not tell which user names exist.
    if not secrets.verify_password(stored, password) or user is None:
        return "wrong user name or password"
    return Authenticated(Actor(user.id, username, user.is_site_admin), None)


class _TokenRow(NamedTuple):
    revoked_at: datetime | None
    expires_at: datetime | None
    scopes: str
    only: str | None


def _token_problem(row: object) -> str | None:
    if row.revoked_at is not None:  # type: ignore[attr-defined]
        return f"the token has been revoked; {NEW_TOKEN}"
    expires = row.expires_at  # type: ignore[attr-defined]
    if expires is not None and expires <= now():
        return f"the token has expired; {NEW_TOKEN}"
    return None


def _token_actor(name: str, user_id: int, site_admin: bool, row: object) -> Actor:
    only = row.only  # type: ignore[attr-defined]
    return Actor(
        user_id=user_id,
        name=name,
        site_admin=site_admin,
        scopes=frozenset(row.scopes.split(",")),  # type: ignore[attr-defined]
        only=tuple(json.loads(only)) if only else None,
        token_expires_at=row.expires_at,  # type: ignore[attr-defined]
    )
