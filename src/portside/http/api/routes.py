"""GitHub's REST API for packages under /api/v3 (the GitHub Enterprise Server convention).

Scripts written for ghcr.io (`gh api`, githubkit, PyGithub, actions/delete-package-versions)
work against Portside with the base URL changed. Authentication is a personal access token as
`Authorization: Bearer <token>`, `token <token>`, or Basic user:token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portside.access.policy import Actor
from portside.access.service import Access, Authenticated, AuthenticationFailed, RateLimited
from portside.http.api import render
from portside.http.auth import parse_basic
from portside.http.base_url import BaseUrl, client_address
from portside.packages.service import Owner, PackageError, Packages

Handler = Callable[[Request], Awaitable[Response]]
VISIBILITIES = ("private", "public", "internal")


class ApiError(PackageError):
    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, *, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.reason = reason  # what to do, when the message itself must be GitHub's exact words


def _answer(handler: Handler) -> Handler:
    """GitHub's error shape for every refusal: {"message", "documentation_url"}."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except PackageError as exc:
            message = exc.message
            if exc.status == 404 and "not found" not in message.lower():
                message = f"Not Found: {message}"  # clients look for these words (PyGithub's UnknownObjectException)
            body = render.error(message, getattr(exc, "reason", None))
            return JSONResponse(body, status_code=exc.status, headers=getattr(exc, "headers", None))

    return wrapped


@dataclass(frozen=True)
class PackagesApi:
    packages: Packages
    access: Access
    base_url: BaseUrl

    def routes(self) -> list[Route]:
        routes = [
            Route("/api/v3/user/packages", _answer(self.list_packages), methods=["GET"]),
            Route("/api/v3/users/{username}/packages", _answer(self.list_packages), methods=["GET"]),
            Route("/api/v3/orgs/{org}/packages", _answer(self.list_packages), methods=["GET"]),
        ]
        for prefix in ("/api/v3/user", "/api/v3/users/{username}", "/api/v3/orgs/{org}"):
            # Nested names arrive %2F-encoded and decoded, so the name is a path: the longer
            # patterns go first.
            one = prefix + "/packages/{package_type}/{package_name:path}"
            routes += [
                Route(one + "/versions/{version_id:int}/restore", _answer(self.restore_version), methods=["POST"]),
                Route(one + "/versions/{version_id:int}", _answer(self.version), methods=["GET", "DELETE"]),
                Route(one + "/versions", _answer(self.versions), methods=["GET"]),
                Route(one + "/restore", _answer(self.restore), methods=["POST"]),
                Route(one, _answer(self.package), methods=["GET", "DELETE"]),
            ]
        return routes

    # -- who and whose -------------------------------------------------------------------------

    async def authenticate(self, request: Request) -> Actor:
        """The actor behind a request's personal access token; 401 without one."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        try:
            if scheme in ("bearer", "token") and value:
                authenticated: Authenticated = await self.access.token(value, client_address(request))
            elif scheme == "basic" and value:
                username, secret = parse_basic(value)
                authenticated = await self.access.basic(username, secret, client_address(request))
            else:
                raise ApiError(401, "Requires authentication: send a personal access token as `Bearer <token>`")
        except AuthenticationFailed as exc:
            # Clients match GitHub's exact message (PyGithub raises BadCredentialsException on it).
            raise ApiError(401, "Bad credentials", reason=str(exc)) from None
        except RateLimited as exc:
            raise ApiError(429, str(exc), {"Retry-After": str(exc.retry_after)}) from None
        return authenticated.actor

    async def _owner(self, request: Request, actor: Actor) -> Owner:
        params = request.path_params
        if "org" in params:
            return await self.packages.owner(params["org"], "org")
        if "username" in params:
            return await self.packages.owner(params["username"], "user")
        return await self.packages.owner(actor.name or "", "user")

    async def _target(self, request: Request) -> tuple[Actor, str]:
        actor = await self.authenticate(request)
        if request.path_params["package_type"] != "container":
            raise ApiError(
                404, f"this registry holds container packages only, not {request.path_params['package_type']}"
            )
        owner = await self._owner(request, actor)
        return actor, f"{owner.login}/{request.path_params['package_name']}"

    # -- packages ------------------------------------------------------------------------------

    async def list_packages(self, request: Request) -> Response:
        actor = await self.authenticate(request)
        query = request.query_params
        package_type = query.get("package_type")
        if not package_type:
            raise ApiError(400, 'Invalid request: "package_type" was not supplied; use package_type=container')
        visibility = query.get("visibility")
        if visibility is not None and visibility not in VISIBILITIES:
            raise ApiError(400, f"Invalid request: visibility must be one of {', '.join(VISIBILITIES)}")
        deleted = _state(request)
        page, per_page = _paging(request)
        owner = await self._owner(request, actor)
        if package_type != "container":
            return JSONResponse([])
        found = await self.packages.list(
            actor, owner, visibility=visibility, deleted=deleted, page=page, per_page=per_page
        )
        base = self.base_url(request)
        body = [render.package(base, p) for p in found.items]
        return JSONResponse(body, headers=_links(request, base, page, per_page, found.total))

    async def package(self, request: Request) -> Response:
        actor, name = await self._target(request)
        if request.method == "DELETE":
            await self.packages.delete(actor, name)
            return Response(status_code=204)
        return JSONResponse(render.package(self.base_url(request), await self.packages.get(actor, name)))

    async def restore(self, request: Request) -> Response:
        actor, name = await self._target(request)
        chosen = request.query_params.get("id")
        if chosen is not None and not (chosen.isascii() and chosen.isdigit()):
            raise ApiError(400, f"Invalid request: id must be a package id (a number), not {chosen!r}")
        await self.packages.restore(actor, name, int(chosen) if chosen is not None else None)
        return Response(status_code=204)

    # -- versions ------------------------------------------------------------------------------

    async def versions(self, request: Request) -> Response:
        actor, name = await self._target(request)
        page, per_page = _paging(request)
        found = await self.packages.versions(actor, name, deleted=_state(request), page=page, per_page=per_page)
        info = await self.packages.get(actor, name)
        base = self.base_url(request)
        body = [render.version(base, info, v) for v in found.items]
        return JSONResponse(body, headers=_links(request, base, page, per_page, found.total))

    async def version(self, request: Request) -> Response:
        actor, name = await self._target(request)
        version_id = _version_id(request)
        if request.method == "DELETE":
            force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
            await self.packages.delete_version(actor, name, version_id, force=force)
            return Response(status_code=204)
        found = await self.packages.version(actor, name, version_id)
        info = await self.packages.get(actor, name)
        return JSONResponse(render.version(self.base_url(request), info, found))

    async def restore_version(self, request: Request) -> Response:
        actor, name = await self._target(request)
        kept = await self.packages.restore_version(actor, name, _version_id(request))
        # GitHub answers 204 with no body; the tags that had moved to another version meanwhile
        # stay there, and this header names them.
        headers = {"Portside-Tags-Not-Restored": ", ".join(kept)} if kept else None
        return Response(status_code=204, headers=headers)


def _version_id(request: Request) -> int:
    version_id = request.path_params["version_id"]
    if version_id > 2**63 - 1:  # larger than any id the database can hold
        raise ApiError(404, f"Not Found: no version {version_id}")
    return int(version_id)


def _state(request: Request) -> bool:
    state = request.query_params.get("state", "active")
    if state not in ("active", "deleted"):
        raise ApiError(400, "Invalid request: state must be active or deleted")
    return state == "deleted"


def _paging(request: Request) -> tuple[int, int]:
    def number(key: str, default: int) -> int:
        raw = request.query_params.get(key)
        if raw is None or raw == "":
            return default
        if not (raw.isascii() and raw.isdigit()):
            raise ApiError(400, f"Invalid request: {key} must be a positive integer, not {raw!r}")
        return int(raw)

    return number("page", 1), number("per_page", 30)


def _links(request: Request, base: str, page: int, per_page: int, total: int) -> dict[str, str]:
    """GitHub's Link header: next, last, first and prev, as they apply."""
    last = max(1, -(-total // per_page))
    params = dict(request.query_params)

    def url(number: int) -> str:
        return f"{base}{request.url.path}?{urlencode({**params, 'page': number, 'per_page': per_page})}"

    links = []
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links += [f'<{url(1)}>; rel="first"', f'<{url(min(page - 1, last))}>; rel="prev"']
    return {"Link": ", ".join(links)} if links else {}
