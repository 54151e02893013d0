"""Your personal access tokens: list, generate (shown once), revoke.

Every decision is Management's: a token creates no token beyond its own reach, and revokes none
wider than itself. Its refusals are shown with its message (the page wrapper would turn a bare
Forbidden into a 404, which fits packages, not your own tokens).

Revoked tokens are not listed: they cannot be used or revoked again, so they would only push the
live ones down the page (github.com deletes them); the audit log and `portside token list` keep them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portside.access import accounts as acc
from portside.access.policy import SCOPES, Actor
from portside.clock import now
from portside.http.web.site import PageError, Site, not_found, sentence
from portside.packages.manage import Management
from portside.packages.service import Forbidden, PackageError, Packages

EXPIRIES = {"7": 7, "30": 30, "60": 60, "90": 90, "none": None}  # days; ghcr.io's choices
DEFAULT_EXPIRY = "30"
NOTE_MAX = 255  # the column's size
SCOPE_HELP = {
    "read:packages": "Pull images and read package metadata.",
    "write:packages": "Push images, change package settings; includes read:packages.",
    "delete:packages": "Delete versions, tags and packages (with the admin role on them); use it with read:packages.",
}


class FormProblem(Exception):
    """What is wrong with the submitted form, said to the person who filled it in."""


@dataclass(frozen=True)
class TokenForm:
    """The new-token form as filled in (kept when it is shown again with an error)."""

    note: str = ""
    scopes: tuple[str, ...] = ("read:packages",)
    expiry: str = DEFAULT_EXPIRY
    only: str = ""

    def parsed(self) -> tuple[tuple[str, ...], timedelta | None, tuple[str, ...] | None]:
        """Scopes, lifetime and packages as Management takes them; FormProblem if they are wrong."""
        if not self.note:
            raise FormProblem("Give the token a note, so that you can tell it from your other tokens later.")
        if len(self.note) > NOTE_MAX:
            raise FormProblem(f"The note has {len(self.note)} characters; at most {NOTE_MAX} fit.")
        if not self.scopes:
            raise FormProblem("Choose at least one scope.")
        try:
            scopes = acc.parse_scopes(",".join(self.scopes))
        except acc.AccessError as exc:
            raise FormProblem(sentence(str(exc))) from None
        if self.expiry not in EXPIRIES:
            raise FormProblem("Choose an expiration: 7, 30, 60 or 90 days, or no expiration.")
        days = EXPIRIES[self.expiry]
        return scopes, timedelta(days=days) if days else None, self._only()

    def _only(self) -> tuple[str, ...] | None:
        patterns = tuple(p for p in re.split(r"[\s,]+", self.only) if p)
        for pattern in patterns:
            try:
                acc.parse_only(pattern)
            except acc.AccessError:
                raise FormProblem(
                    f"“{pattern}” is not a package or a namespace: write OWNER/NAME or OWNER/*, in lowercase."
                ) from None
        return patterns or None


@dataclass(frozen=True)
class TokenRow:
    info: acc.TokenInfo
    expired: bool


@dataclass(frozen=True)
class TokenPages:
    site: Site
    packages: Packages
    management: Management

    def routes(self) -> list[BaseRoute]:
        page = self.site.page
        return [
            Route("/settings/tokens", page(self.index), methods=["GET", "HEAD"]),
            Route("/settings/tokens/new", page(self.new), methods=["GET", "HEAD"]),
            Route("/settings/tokens/new", page(self.create), methods=["POST"]),
            Route("/settings/tokens/{token_id:int}/revoke", page(self.revoke), methods=["POST"]),
        ]

    async def index(self, request: Request) -> Response:
        actor = await self.site.signed_in(request)
        tokens = await self.management.tokens(actor)
        moment = now()
        rows = [
            TokenRow(t, t.expires_at is not None and t.expires_at <= moment)
            for t in sorted(tokens, key=lambda t: t.id, reverse=True)
            if t.revoked_at is None
        ]
        return self.site.render(request, "tokens.html", tokens=rows, revoked=len(tokens) - len(rows))

    async def new(self, request: Request) -> Response:
        actor = await self.site.signed_in(request)
        return self._form(request, actor, TokenForm())

    async def create(self, request: Request) -> Response:
        actor = await self.site.signed_in(request)
        form = await self.site.form(request)
        filled = TokenForm(
            note=form.get("note").strip(),
            scopes=tuple(form.getlist("scopes")),
            expiry=form.get("expires", DEFAULT_EXPIRY),
            only=form.get("only").strip(),
        )
        try:
            scopes, lifetime, only = filled.parsed()
        except FormProblem as problem:
            return self._form(request, actor, filled, str(problem), 400)
        try:
            secret, info = await self.management.create_token(
                actor, scopes=scopes, expires_in=lifetime, note=filled.note, only=only
            )
        except PackageError as exc:  # beyond the reach of the token this viewer signed in with
            return self._form(request, actor, filled, sentence(exc.message), exc.status)
        # The secret's one appearance: this answer (no-store), never a URL, a redirect or a cookie.
        host = self.site.host(request)
        return self.site.render(
            request,
            "token_created.html",
            token=secret,
            info=info,
            login=f"echo {secret} | docker login {host} -u {actor.name} --password-stdin",
        )

    async def revoke(self, request: Request) -> Response:
        actor = await self.site.signed_in(request)
        await self.site.form(request)
        token_id = request.path_params["token_id"]
        mine = {t.id: t for t in await self.management.tokens(actor)}
        if token_id not in mine:
            raise not_found(f"Your token {token_id}")
        try:
            await self.management.revoke_token(actor, token_id)
        except Forbidden as exc:
            raise PageError(
                403,
                "Cannot revoke this token",
                sentence(exc.message),
                "Sign in with your password (or with a token that reaches as far), then revoke it.",
            ) from None
        token = mine[token_id]
        label = f'"{token.note}" ({token.prefix}...)' if token.note else f"{token.prefix}..."
        return self.site.done(request, "/settings/tokens", f"Revoked the token {label}: it no longer works.")

    def _form(
        self, request: Request, actor: Actor, filled: TokenForm, error: str | None = None, status: int = 200
    ) -> Response:
        return self.site.render(
            request,
            "token_new.html",
            status,
            form=filled,
            error=error,
            scopes=SCOPES,
            scope_help=SCOPE_HELP,
            expiries=[(value, f"{days} days" if days else "No expiration") for value, days in EXPIRIES.items()],
            limited=actor.scopes is not None,
            note_max=NOTE_MAX,
        )
