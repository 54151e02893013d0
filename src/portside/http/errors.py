"""Turning errors into JSON error bodies: the OCI Distribution spec's on /v2, GitHub's on /api."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portside.faults import StorageFull, Unavailable, report
from portside.http.accesslog import API_VERSION_HEADER
from portside.http.api import render
from portside.registry.errors import RegistryError

log = logging.getLogger("portside.errors")


def error_response(
    code: str, message: str, status: int, detail: object = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    error: dict[str, object] = {"code": code, "message": message}
    if detail is not None:
        error["detail"] = detail
    return JSONResponse({"errors": [error]}, status_code=status, headers=headers)


async def registry_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return error_response(exc.code, exc.message, exc.status, exc.detail, exc.headers)


def _github_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _browser_page(request: Request) -> bool:
    """A browser asking for a page: anything but the registry, the APIs and the token endpoint."""
    path = request.url.path
    machine = path.startswith(("/v2/", "/api/", "/token")) or path in ("/v2", "/healthz")
    return not machine and "text/html" in request.headers.get("accept", "")


PageErrors = Callable[[Request, int, str], Response]


def http_errors(pages: PageErrors) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Unknown paths and methods: an HTML page for a browser, the surface's JSON error otherwise."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (404, 405) and _browser_page(request):
            return pages(request, exc.status_code, f"{request.method} {request.url.path}")
        return await http_error(request, exc)

    return handle


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _github_api(request):
        message = {
            404: f"Not Found: no such endpoint {request.method} {request.url.path}; see /api/docs",
            405: f"{request.method} is not supported on {request.url.path}; see /api/docs",
        }.get(exc.status_code, str(exc.detail))
        return JSONResponse(render.error(message), status_code=exc.status_code, headers=exc.headers)
    if exc.status_code == 404:
        return error_response("UNSUPPORTED", f"no such endpoint: {request.method} {request.url.path}", 404)
    if exc.status_code == 405:
        return error_response(
            "UNSUPPORTED", f"{request.method} is not supported on {request.url.path}", 405, headers=exc.headers
        )
    return error_response("UNSUPPORTED", str(exc.detail), exc.status_code, headers=exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    # Starlette answers unhandled errors outside every middleware, so this answer gets the header here.
    if _github_api(request):
        return JSONResponse(render.error("internal error; the server log has the details"), status_code=500)
    name, value = API_VERSION_HEADER
    return error_response(
        "UNKNOWN", "internal error; the server log has the details", 500, headers={name.decode(): value.decode()}
    )


async def unavailable_error(request: Request, exc: Exception) -> Response:
    """A store that cannot serve the request now: 507 when storage is full (more space is what it
    takes, not patience alone), 503 otherwise; both with Retry-After. The log already has the
    operator's line (portside.faults)."""
    assert isinstance(exc, Unavailable)
    report(exc.condition, exc.operator)
    status = 507 if isinstance(exc, StorageFull) else 503
    headers = {"Retry-After": str(exc.retry_after)}
    if _github_api(request):
        return JSONResponse(render.error(exc.message), status_code=status, headers=headers)
    return error_response("UNAVAILABLE", exc.message, status, headers=headers)
