"""Authentication on the registry surface: credentials in, an actor or a spec error out.

Every `/v2/` request passes through `RegistryAuth.require`, which asks the one decision function.
A denied request gets the error a client can act on: 401 with a Bearer challenge naming the scope
it needs (so docker fetches a token), 403 DENIED with the reason, or 404 when the caller may not
know the package exists.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request

from portside.access.bearer import Claims, InvalidToken
from portside.access.policy import ANONYMOUS, Action, Actor
from portside.access.service import Access, Authenticated, AuthenticationFailed, RateLimited, Rider
from portside.http.base_url import BaseUrl, client_address
from portside.registry.errors import RegistryError

T = TypeVar("T")
_CREDENTIALS = "portside.credentials"  # where a request's checked credentials are kept
SCOPE_ACTIONS = {Action.PULL: "pull", Action.PUSH: "pull,push", Action.DELETE: "delete"}


class Unauthorized(RegistryError):
    code, status = "UNAUTHORIZED", 401


class Denied(RegistryError):
    code, status = "DENIED", 403


class NotFound(RegistryError):
    code, status = "NAME_UNKNOWN", 404


class TooManyRequests(RegistryError):
    code, status = "TOOMANYREQUESTS", 429


class RegistryAuth:
    def __init__(self, access: Access, base_url: BaseUrl) -> None:
        self.access = access
        self.base_url = base_url

    def challenge(self, request: Request, scope: str | None = None, error: str | None = None) -> dict[str, str]:
        value = f'Bearer realm="{self.base_url(request)}/token",service="{self.access.service}"'
        if scope:
            value += f',scope="{scope}"'
        if error:
            value += f',error="{error}"'
        return {"WWW-Authenticate": value}

    async def credentials(self, request: Request, scope: str | None = None) -> tuple[Actor, Claims | None]:
        """Who is asking; wrong credentials are an error, none at all is the anonymous actor."""
        known = request.scope.get(_CREDENTIALS)
        if known is None:
            known = request.scope[_CREDENTIALS] = await self._credentials(request, scope)
        return known

    async def _credentials(self, request: Request, scope: str | None) -> tuple[Actor, Claims | None]:
        header = request.headers.get("authorization")
        if not header:
            return ANONYMOUS, None
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        try:
            if scheme == "bearer" and value:
                return await self.access.bearer(value)
            if scheme == "basic" and value:
                username, secret = parse_basic(value)
                authenticated = await self.access.basic(username, secret, client_address(request))
                return authenticated.actor, None
        except (InvalidToken, AuthenticationFailed) as exc:
            raise Unauthorized(str(exc), headers=self.challenge(request, scope, "invalid_token")) from None
        except RateLimited as exc:
            raise TooManyRequests(str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        raise Unauthorized(
            "malformed Authorization header: send `Bearer <token>` or `Basic <base64 of user:token>`",
            headers=self.challenge(request, scope),
        )

    async def require(self, request: Request, name: str, action: Action, *, also: str | None = None) -> Actor:
        """The actor allowed `action` on `name`, or the error a client can act on.

        `also` names a repository the request reads besides its own (a mount's source): every
        challenge then asks for pull on it too, space-separated as CNCF distribution does, so a
        client that fetches exactly the challenged scope gets a token that can mount.
        """
        scope = scope_of(name, action, also)
        actor, claims = await self.credentials(request, scope)
        if claims is not None and action.value in claims.actions_on("repository", name):
            return actor
        decision = await self.access.decide(actor, name, action)
        if decision.allowed and claims is None:
            return actor
        if decision.allowed or (actor.anonymous and not decision.final):
            # The bearer token lacks this scope, or nobody signed in: tell the client to get a token.
            error = "insufficient_scope" if claims is not None else None
            if actor.anonymous:
                message = f"authentication required to {action} {name}: log in with a personal access token"
            else:
                message = f"the bearer token lacks scope {scope}; fetch one that has it from the token endpoint"
            raise Unauthorized(message, headers=self.challenge(request, scope, error))
        if decision.hidden:
            raise NotFound(f"repository {name} not found", detail={"name": name})
        raise Denied(decision.reason)

    async def require_reading(
        self,
        request: Request,
        name: str,
        action: Action,
        read: Callable[[Rider | None], Awaitable[T]],
        *,
        also: str | None = None,
    ) -> tuple[Actor, T]:
        """`require`, then `read(None)`; but for a bearer token whose grant covers `action` on
        `name`, the check that its personal access token still stands rides along with the read
        (`read(rider)`: one database round trip for both on PostgreSQL), and nothing read is
        answered before that check has passed, and a caller must not write before it has either. A
        read that did not take the rider, or that failed (a 404 may yet have to be a 401), falls back
        to `require` first. `also`: as for `require`; the token must then grant pull on it too.

        A read that finds nothing (a blob HEAD before a push: three of the ten requests a small
        image's push makes) is judged by the rider it carried too: the token's check is done, so
        the 404 costs no second round trip; a token that no longer stands is still a 401."""
        claims = self._bearer_claims(request)
        if (
            claims is None
            or action.value not in claims.actions_on("repository", name)
            or (also is not None and Action.PULL.value not in claims.actions_on("repository", also))
        ):
            actor = await self.require(request, name, action, also=also)
            return actor, await read(None)
        rider = self.access.token_rider(claims)
        try:
            value = await read(rider)
        except RegistryError:
            # An invalid token is a 401, not the read's error.
            if rider.done:
                self._judge_rider(request, name, action, also, claims, rider)
            else:
                await self.require(request, name, action, also=also)
            raise
        if not rider.done:
            return await self.require(request, name, action, also=also), value
        return self._judge_rider(request, name, action, also, claims, rider), value

    def _judge_rider(
        self, request: Request, name: str, action: Action, also: str | None, claims: Claims, rider: Rider
    ) -> Actor:
        """The actor of a bearer token whose check rode along with a read, or its 401."""
        try:
            actor = self.access.rider_actor(claims, rider)
        except InvalidToken as exc:
            challenge = self.challenge(request, scope_of(name, action, also), "invalid_token")
            raise Unauthorized(str(exc), headers=challenge) from None
        request.scope[_CREDENTIALS] = (actor, claims)
        return actor

    def _bearer_claims(self, request: Request) -> Claims | None:
        """Verified claims of a bearer token that names a user (no database), else None."""
        if _CREDENTIALS in request.scope:
            return None  # credentials already checked: `require` has them
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return self.access.verified_claims(value.strip())

    async def permits(self, request: Request, name: str, action: Action, *, scope: str) -> bool:
        """Whether the request's credentials allow `action` on another repository than the one in
        its path (the source of a cross-repository mount). A bearer token must carry the scope: one
        that lacks it while its user may read the repository is challenged for `scope` (the whole
        request's), so the client comes back with a token that can mount; otherwise False."""
        actor, claims = await self.credentials(request)
        if claims is not None and action.value in claims.actions_on("repository", name):
            return True
        allowed = (await self.access.decide(actor, name, action)).allowed
        if claims is not None and allowed:
            message = f"the bearer token lacks pull on {name}, which the mount reads; fetch a token for {scope}"
            raise Unauthorized(message, headers=self.challenge(request, scope, "insufficient_scope"))
        return allowed

    async def require_signed_in(self, request: Request) -> Actor:
        actor, _ = await self.credentials(request)
        if actor.anonymous:
            raise Unauthorized("authentication required", headers=self.challenge(request))
        return actor

    async def token_credentials(self, request: Request) -> Authenticated | None:
        """Basic credentials at the token endpoint; None for an anonymous token."""
        header = request.headers.get("authorization")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value.strip():
            raise Unauthorized("the token endpoint takes Basic credentials: your user name and a personal access token")
        try:
            username, secret = parse_basic(value.strip())
        except AuthenticationFailed as exc:
            raise Unauthorized(str(exc)) from None
        return await self.password_grant(request, username, secret)

    async def password_grant(self, request: Request, username: str, secret: str) -> Authenticated:
        try:
            return await self.access.basic(username, secret, client_address(request))
        except AuthenticationFailed as exc:
            raise Unauthorized(str(exc)) from None
        except RateLimited as exc:
            raise TooManyRequests(str(exc), headers={"Retry-After": str(exc.retry_after)}) from None


def scope_of(name: str, action: Action, also: str | None = None) -> str:
    """The scope a request on `name` needs, with pull on `also` (a mount's source) when given."""
    scope = f"repository:{name}:{SCOPE_ACTIONS[action]}"
    if also is not None and also != name:
        scope += f" repository:{also}:{SCOPE_ACTIONS[Action.PULL]}"
    return scope


def parse_basic(value: str) -> tuple[str, str]:
    """User name and secret from the base64 of a Basic `Authorization` value."""
    malformed = AuthenticationFailed("malformed Basic credentials: send the base64 of user:token")
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 (UnicodeDecodeError)
        raise malformed from None
    username, sep, secret = decoded.partition(":")
    if not sep or not username:
        raise malformed
    return username, secret
