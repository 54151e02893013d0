"""What every page shares: templates, the viewer, forms with CSRF protection, notices, error pages.

Who is looking: a personal access token in an Authorization header (as the REST API accepts it),
else the browser's session cookie, else nobody. Every form is a POST carrying a CSRF token bound to
the session (an HMAC of its secret), or, before sign-in, to a random cookie of its own; a POST from
another origin is refused before its token is even looked at.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets as random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from itsdangerous import BadSignature, Signer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from portside.access.policy import ANONYMOUS, Actor
from portside.access.sessions import Sessions
from portside.http.api.routes import ApiError, PackagesApi
from portside.http.base_url import BaseUrl
from portside.packages.service import MAX_WINDOW, Forbidden, NotFound, Owner, PackageError
from portside.registry.quotas import percent
from portside.sizes import human

HERE = Path(__file__).resolve().parent
PER_PAGE = 30
SESSION_COOKIE = "portside_session"
CSRF_COOKIE = "portside_csrf"  # before sign-in only: what the sign-in form's token is bound to
NOTICE_COOKIE = "portside_notice"
MAX_FORM_BYTES = 64 * 1024
Handler = Callable[[Request], Awaitable[Response]]
_VIEWER = "portside.viewer"
_SESSION = "portside.session"
_NEW_CSRF = "portside.new_csrf"


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if hexpart else digest[:19]


_BACKTICKS = re.compile(r"`([^`]+)`")


def _prose(text: str | None) -> Markup:
    """A message as a sentence on a page: escaped, with its `commands` set as code."""
    return Markup(_BACKTICKS.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text or ""))))


def web_url(url: str | None) -> str | None:
    """A label's URL, only when it is plain http(s): never a javascript: link."""
    if url and url.strip().lower().startswith(("https://", "http://")):
        return url.strip()
    return None


def owner_path(owner: Owner) -> str:
    return f"/{'orgs' if owner.kind == 'org' else 'users'}/{owner.login}/packages"


def package_path(owner: Owner, name: str) -> str:
    return f"{owner_path(owner)}/container/package/{name}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, iso=_iso, size=human, short=_short, prose=_prose, quota_size=human)
    env.globals.update(owner_path=owner_path, package_path=package_path, web_url=web_url, percent=percent)
    return env


class PageError(Exception):
    def __init__(self, status: int, title: str, message: str, hint: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.hint = status, title, message, hint
        self.headers = headers or {}


def not_found(what: str) -> PageError:
    return PageError(
        404,
        "Not found",
        f"{what} does not exist, or you are not allowed to see it.",
        "Check the spelling of the address. If it is private, sign in, or ask its owner for access.",
    )


def bad_request(message: str, hint: str) -> PageError:
    return PageError(400, "Cannot do that", message, hint)


def page_number(request: Request) -> int:
    raw = request.query_params.get("page") or "1"
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1 or int(raw) * PER_PAGE > MAX_WINDOW:
        raise PageError(
            400, "Bad page number", f"There is no page {raw!r}.", f"Pages are numbered 1 to {MAX_WINDOW // PER_PAGE}."
        )
    return int(raw)


def pager(request: Request, page: int, total: int) -> dict[str, object]:
    last = max(1, -(-total // PER_PAGE))
    params = {k: v for k, v in request.query_params.items() if k != "page" and v}

    def url(number: int) -> str:
        return f"{request.url.path}?{urlencode({**params, 'page': number})}"

    return {
        "page": page,
        "last": last,
        "prev": url(page - 1) if page > 1 else None,
        "next": url(page + 1) if page < last else None,
    }


@dataclass(frozen=True)
class Form:
    """A submitted urlencoded form whose CSRF token has been checked."""

    fields: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[-1] if values else default

    def getlist(self, name: str) -> list[str]:
        return self.fields.get(name, [])


@dataclass
class Site:
    api: PackagesApi
    sessions: Sessions
    base_url: BaseUrl
    secret: bytes  # signs cookies and derives CSRF tokens
    env: Environment = field(default_factory=_environment)

    def __post_init__(self) -> None:
        self._cookies = Signer(self.secret, salt="portside.web.cookie")

    # -- rendering -----------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        viewer = request.scope.get(_VIEWER, ANONYMOUS)
        notice = self._notice(request)
        body = self.env.get_template(template).render(
            request_path=request.url.path,
            host=self.host(request),
            viewer=viewer,
            csrf=lambda: self.csrf_token(request),
            notice=notice,
            **context,
        )
        response = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
        if notice is not None:
            response.delete_cookie(NOTICE_COOKIE, path="/")
        if fresh := request.scope.get(_NEW_CSRF):
            self._set_cookie(request, response, CSRF_COOKIE, fresh, max_age=None)
        return response

    def page(self, handler: Handler) -> Handler:
        """Turns the services' refusals into error pages people can act on."""

        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except PageError as exc:
                if exc.status == 303:  # sign in first
                    return RedirectResponse(exc.headers["Location"], status_code=303)
                return self.error(request, exc.status, exc.title, exc.message, exc.hint, exc.headers)
            except ApiError as exc:
                if exc.status == 401:
                    return self.error(
                        request,
                        401,
                        "Sign-in failed",
                        f"{exc.message}{': ' + exc.reason if exc.reason else ''}.",
                        "Send a valid personal access token, or none at all to browse public packages.",
                        exc.headers,
                    )
                return self.error(
                    request, exc.status, "Request refused", exc.message, "Wait a moment and try again.", exc.headers
                )
            except (NotFound, Forbidden):
                error = not_found("This page")
                return self.error(request, 404, error.title, error.message, error.hint, {})
            except PackageError as exc:
                return self.error(request, 400, "Cannot do that", exc.message, "Go back, change it and try again.", {})

        return wrapped

    def error(
        self, request: Request, status: int, title: str, message: str, hint: str, headers: dict[str, str]
    ) -> HTMLResponse:
        response = self.render(request, "error.html", status, title=title, message=message, hint=hint, code=status)
        response.headers.update(headers)
        return response

    def unknown(self, request: Request, status: int, what: str) -> HTMLResponse:
        """The page for an address no page answers (404) or a method it does not take (405)."""
        if status == 405:
            return self.error(
                request, 405, "Not a page", f"{what} is a form's address.", "Go back and use the form.", {}
            )
        error = not_found("This page")
        return self.error(request, 404, error.title, error.message, error.hint, {})

    def host(self, request: Request) -> str:
        return self.base_url(request).split("://", 1)[1]

    # -- who is looking ------------------------------------------------------------------------

    async def viewer(self, request: Request) -> Actor:
        """The token's actor (401 if the token is bad), else the session's, else anonymous."""
        if _VIEWER in request.scope:
            return request.scope[_VIEWER]
        if request.headers.get("authorization", "").strip():
            actor = await self.api.authenticate(request)
        else:
            secret = self._cookie(request, SESSION_COOKIE)
            actor = (await self.sessions.actor(secret) if secret else None) or ANONYMOUS
            if not actor.anonymous:
                request.scope[_SESSION] = secret
        request.scope[_VIEWER] = actor
        return actor

    async def signed_in(self, request: Request) -> Actor:
        """The viewer, who must be signed in: otherwise to the sign-in page and back."""
        actor = await self.viewer(request)
        if actor.anonymous:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method not in ("GET", "HEAD"):  # a form's address answers POST only: back to its page
                target = self._same_site_referer(request) or "/"
            raise PageError(
                303, "Sign in", "Sign in to see this page.", "", {"Location": f"/login?next={quote(target, safe='')}"}
            )
        return actor

    def _same_site_referer(self, request: Request) -> str | None:
        """The path of the page a form was sent from, when that page is on this site."""
        referer = urlsplit(request.headers.get("referer", ""))
        if f"{referer.scheme}://{referer.netloc}" != self.base_url(request) or not referer.path.startswith("/"):
            return None
        return referer.path + (f"?{referer.query}" if referer.query else "")

    # -- sessions and cookies ------------------------------------------------------------------

    def start_session(self, request: Request, response: Response, secret: str) -> None:
        self._set_cookie(request, response, SESSION_COOKIE, secret, max_age=int(self.sessions.lifetime.total_seconds()))
        response.delete_cookie(CSRF_COOKIE, path="/")

    def end_session(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")

    def session_secret(self, request: Request) -> str | None:
        return request.scope.get(_SESSION)

    def _cookie(self, request: Request, name: str) -> str | None:
        raw = request.cookies.get(name)
        if not raw:
            return None
        try:
            return self._cookies.unsign(raw).decode()
        except (BadSignature, UnicodeDecodeError):
            return None

    def _set_cookie(self, request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            self._cookies.sign(value).decode(),
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.base_url(request).startswith("https://"),
        )

    def notify(self, request: Request, response: Response, message: str) -> None:
        """A one-line notice shown on the next page (after a form's redirect). Encoded, because a
        cookie carries only a few ASCII characters and notices quote names and notes."""
        encoded = base64.urlsafe_b64encode(message.encode()).decode()
        self._set_cookie(request, response, NOTICE_COOKIE, encoded, max_age=60)

    def _notice(self, request: Request) -> str | None:
        encoded = self._cookie(request, NOTICE_COOKIE)
        try:
            return base64.urlsafe_b64decode(encoded).decode() if encoded else None
        except ValueError:  # signed by us, so only an older format could get here
            return None

    # -- forms ---------------------------------------------------------------------------------

    def csrf_token(self, request: Request) -> str:
        """The token this viewer's forms carry; before sign-in it mints the cookie it is bound to."""
        binding = self._csrf_binding(request) or request.scope.get(_NEW_CSRF)
        if binding is None:
            binding = request.scope[_NEW_CSRF] = random.token_urlsafe(24)
        return self._csrf(binding)

    def _csrf_binding(self, request: Request) -> str | None:
        return self.session_secret(request) or self._cookie(request, CSRF_COOKIE)

    def _csrf(self, binding: str) -> str:
        return hmac.new(self.secret, f"csrf:{binding}".encode(), hashlib.sha256).hexdigest()

    async def form(self, request: Request) -> Form:
        """The posted form, after checking where it came from and its CSRF token."""
        await self.viewer(request)  # the session, which the token is bound to
        origin = request.headers.get("origin")
        if origin and origin != "null" and origin.rstrip("/") != self.base_url(request):
            raise PageError(
                403, "Form refused", f"This form was sent from another site ({origin}).", "Use the form on this site."
            )
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise bad_request("Forms are sent as application/x-www-form-urlencoded.", "Use the form on the page.")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise bad_request(f"The form is larger than {MAX_FORM_BYTES // 1024} KiB.", "Send less.")
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=500, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise bad_request("The form could not be read.", "Use the form on the page.") from None
        fields: dict[str, list[str]] = {}
        for key, value in pairs:
            fields.setdefault(key, []).append(value)
        form = Form(fields)
        binding = self._csrf_binding(request)
        if binding is None or not hmac.compare_digest(form.get("csrf").encode(), self._csrf(binding).encode()):
            raise PageError(
                403,
                "Form expired",
                "This form's security token is missing or out of date (it is tied to your sign-in).",
                "Go back, reload the page and send the form again.",
            )
        return form

    def done(self, request: Request, location: str, message: str | None = None) -> Response:
        """After a form: back to a page (303, so reloading does not send it again), with a notice."""
        response = RedirectResponse(location, status_code=303)
        if message:
            self.notify(request, response, message)
        return response


def sentence(message: str) -> str:
    """A service's message (no full stop, as in the API's JSON) as a sentence on a page. Its first
    letter stays as it is: it is often a user name, and names are lowercase."""
    message = message.strip()
    return message if message.endswith((".", "!", "?")) else f"{message}."


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only, never another host."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value
