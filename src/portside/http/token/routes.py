"""The Docker token service (`/token`): GET with Basic credentials, POST with OAuth2 grants."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portside.access.bearer import InvalidToken
from portside.access.service import Access
from portside.http.auth import RegistryAuth, Unauthorized
from portside.registry.errors import Unsupported


@dataclass(frozen=True)
class TokenService:
    access: Access
    auth: RegistryAuth

    def routes(self) -> list[Route]:
        return [Route("/token", self.get_token, methods=["GET"]), Route("/token", self.post_token, methods=["POST"])]

    async def get_token(self, request: Request) -> Response:
        self._check_service(request.query_params.get("service"))
        authenticated = await self.auth.token_credentials(request)
        # `scope` repeats; some clients also put several in one, space-separated, as the POST form does.
        scopes = [scope for value in request.query_params.getlist("scope") for scope in value.split(" ") if scope]
        offline = request.query_params.get("offline_token") == "true"
        return _answer(await self.access.issue(authenticated, scopes, refresh=offline))

    async def post_token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        self._check_service(_field(form, "service"))
        scopes = [s for s in (_field(form, "scope") or "").split(" ") if s]
        grant_type = _field(form, "grant_type")
        if grant_type == "password":
            username, password = _field(form, "username"), _field(form, "password")
            if not username or not password:
                raise Unsupported("the password grant needs username and password")
            authenticated = await self.auth.password_grant(request, username, password)
            offline = _field(form, "access_type") == "offline"
            return _answer(await self.access.issue(authenticated, scopes, refresh=offline))
        if grant_type == "refresh_token":
            refresh_token = _field(form, "refresh_token")
            if not refresh_token:
                raise Unsupported("the refresh_token grant needs refresh_token")
            try:
                authenticated = await self.access.refresh(refresh_token)
            except InvalidToken as exc:
                raise Unauthorized(str(exc)) from None
            answer = await self.access.issue(authenticated, scopes, refresh=False)
            answer["refresh_token"] = refresh_token
            return _answer(answer)
        raise Unsupported(f"unsupported grant_type {grant_type!r}: use password or refresh_token")

    def _check_service(self, service: str | None) -> None:
        if service and service != self.access.service:
            raise Unsupported(f"this token service issues tokens for service {self.access.service!r}, not {service!r}")


def _field(form: dict[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None


def _answer(body: dict[str, object]) -> Response:
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
