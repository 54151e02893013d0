"""Signing in and out of the pages with a user name and password."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from portside.access.service import Access, AuthenticationFailed, RateLimited
from portside.http.base_url import client_address
from portside.http.web.site import Site, safe_next

MAX_FIELD = 256  # longer than any user name or sensible password; argon2 is not fed megabytes


@dataclass(frozen=True)
class SignIn:
    site: Site
    access: Access

    def routes(self) -> list[BaseRoute]:
        page = self.site.page
        return [
            Route("/login", page(self.form), methods=["GET", "HEAD"]),
            Route("/login", page(self.sign_in), methods=["POST"]),
            Route("/logout", page(self.sign_out), methods=["POST"]),
        ]

    async def form(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if not (await self.site.viewer(request)).anonymous:
            return RedirectResponse(target, status_code=303)
        return self.site.render(request, "login.html", next=target, username="", error=None)

    async def sign_in(self, request: Request) -> Response:
        form = await self.site.form(request)
        username, password = form.get("username").strip(), form.get("password")
        target = safe_next(form.get("next"))
        error, status, headers = None, 200, {}
        if not username or not password:
            error, status = "Enter your user name and your password.", 400
        elif len(username) > MAX_FIELD or len(password) > MAX_FIELD:
            error, status = f"User names and passwords are at most {MAX_FIELD} characters.", 400
        else:
            try:
                authenticated = await self.access.password(username, password, client_address(request))
            except AuthenticationFailed:
                error, status = (
                    "Wrong user name or password. Users created without a password sign in with tokens only; "
                    "a site admin can set one with `portside user password NAME`.",
                    401,
                )
            except RateLimited as exc:
                error, status = f"Too many failed sign-ins: try again in {exc.retry_after} seconds.", 429
                headers = {"Retry-After": str(exc.retry_after)}
            else:
                secret = await self.site.sessions.start(authenticated.actor, client_address(request))
                response = RedirectResponse(target, status_code=303)
                self.site.start_session(request, response, secret)
                return response
        response = self.site.render(request, "login.html", status, next=target, username=username, error=error)
        response.headers.update(headers)
        return response

    async def sign_out(self, request: Request) -> Response:
        await self.site.form(request)
        secret = self.site.session_secret(request)
        if secret is not None:
            await self.site.sessions.end(secret)
        response = self.site.done(request, "/", "You are signed out.")
        self.site.end_session(response)
        return response
