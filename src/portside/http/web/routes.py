"""Read-only package pages in the browser, at ghcr.io's URLs (the API's html_url values point here).

Every page asks the packages service (`Packages.owner/list/get/versions/version`), which calls the one
decision function: what a viewer may not read is a 404 page, never a 403 that would reveal it. The
viewer is anonymous unless the request carries a personal access token (Bearer) or Basic credentials,
as the REST API accepts them; cookie sessions come later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from portside.access.policy import ANONYMOUS, Action, Actor
from portside.http.api.routes import ApiError, PackagesApi
from portside.http.base_url import BaseUrl
from portside.packages.service import (
    MAX_WINDOW,
    Forbidden,
    NotFound,
    Owner,
    PackageError,
    PackageInfo,
    Packages,
    VersionInfo,
)

HERE = Path(__file__).resolve().parent
PER_PAGE = 30
SCAN = 100  # the service's largest page, used when the web layer filters what the service cannot
VISIBILITIES = ("public", "private", "internal")
HOME_OWNERS = 50  # owners with public packages shown on the home page
Handler = Callable[[Request], Awaitable[Response]]


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _short(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if hexpart else digest[:19]


def _web_url(url: str | None) -> str | None:
    """A label's URL, only when it is plain http(s): never a javascript: link."""
    if url and url.strip().lower().startswith(("https://", "http://")):
        return url.strip()
    return None


def _owner_path(owner: Owner) -> str:
    return f"/{'orgs' if owner.kind == 'org' else 'users'}/{owner.login}/packages"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, iso=_iso, size=_size, short=_short)
    env.globals.update(owner_path=_owner_path, web_url=_web_url)
    return env


class PageError(Exception):
    def __init__(self, status: int, title: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.hint = status, title, message, hint


def _not_found(what: str) -> PageError:
    return PageError(
        404,
        "Not found",
        f"{what} does not exist, or you are not allowed to see it.",
        "Check the spelling of the address. If it is a private package, send your personal access token "
        "(Authorization: Bearer TOKEN) or ask its owner for access.",
    )


@dataclass(frozen=True)
class Web:
    packages: Packages
    api: PackagesApi
    base_url: BaseUrl

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", _environment())

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/", self._page(self.home), methods=["GET", "HEAD"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        for prefix in ("/users/{owner}", "/orgs/{owner}"):
            base = prefix + "/packages"
            routes += [
                Route(base, self._page(self.owner_packages), methods=["GET", "HEAD"]),
                # The package page's fixed "package/" segment goes first, then versions, then one version.
                Route(base + "/container/package/{name:path}", self._page(self.package), methods=["GET", "HEAD"]),
                Route(base + "/container/{name:path}/versions", self._page(self.versions), methods=["GET", "HEAD"]),
                Route(
                    base + "/container/{name:path}/{version_id:int}", self._page(self.version), methods=["GET", "HEAD"]
                ),
            ]
        return routes

    # -- plumbing ------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, **context: object) -> HTMLResponse:
        body = self.env.get_template(template).render(  # type: ignore[attr-defined]
            request_path=request.url.path, host=self._host(request), **context
        )
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    def _page(self, handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except PageError as exc:
                return self._error(request, exc.status, exc.title, exc.message, exc.hint, {})
            except ApiError as exc:
                if exc.status == 401:
                    return self._error(
                        request,
                        401,
                        "Sign-in failed",
                        f"{exc.message}{': ' + exc.reason if exc.reason else ''}.",
                        "Send a valid personal access token, or none at all to browse public packages.",
                        exc.headers,
                    )
                return self._error(
                    request, exc.status, "Request refused", exc.message, "Wait a moment and try again.", exc.headers
                )
            except (NotFound, Forbidden):
                return self._error(request, 404, *_args(_not_found("This page")), {})
            except PackageError as exc:
                return self._error(
                    request, 400, "Bad request", exc.message, "Go back to the first page and try again.", {}
                )

        return wrapped

    def _error(
        self, request: Request, status: int, title: str, message: str, hint: str, headers: dict[str, str]
    ) -> HTMLResponse:
        response = self.render(request, "error.html", status, title=title, message=message, hint=hint, code=status)
        response.headers.update(headers)
        return response

    def _host(self, request: Request) -> str:
        return self.base_url(request).split("://", 1)[1]

    async def viewer(self, request: Request) -> Actor:
        """Anonymous without an Authorization header; otherwise the token's (or Basic) actor, 401 if bad."""
        if not request.headers.get("authorization", "").strip():
            return ANONYMOUS
        return await self.api.authenticate(request)

    async def _owner(self, request: Request) -> Owner:
        login = request.path_params["owner"]
        kind = "org" if request.url.path.startswith("/orgs/") else "user"
        try:
            return await self.packages.owner(login, kind)
        except NotFound:
            raise _not_found(f"The {'organization' if kind == 'org' else 'user'} {login}") from None

    async def _package(self, request: Request, actor: Actor) -> PackageInfo:
        owner = await self._owner(request)
        name = request.path_params["name"].strip("/")
        try:
            return await self.packages.get(actor, f"{owner.login}/{name}")
        except (NotFound, Forbidden):
            raise _not_found(f"The package {owner.login}/{name}") from None

    # -- pages ---------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        # The signed-out view: public packages of the owners that have any, newest first.
        found: list[PackageInfo] = []
        for owner in await self.packages.public_owners(HOME_OWNERS):
            page = await self.packages.list(
                ANONYMOUS, owner, visibility="public", deleted=False, page=1, per_page=PER_PAGE
            )
            found += page.items
        found.sort(key=lambda p: (p.updated_at, p.full_name), reverse=True)
        return self.render(request, "home.html", packages=found[:PER_PAGE])

    async def owner_packages(self, request: Request) -> Response:
        actor = await self.viewer(request)
        owner = await self._owner(request)
        visibility = request.query_params.get("visibility") or None
        if visibility is not None and visibility not in VISIBILITIES:
            raise PageError(
                400, "Bad filter", f"There is no visibility {visibility!r}.", "Choose public, private or internal."
            )
        q = (request.query_params.get("q") or "").strip()
        page = _page_number(request)
        if not q:
            found = await self.packages.list(
                actor, owner, visibility=visibility, deleted=False, page=page, per_page=PER_PAGE
            )
            items, total = found.items, found.total
        else:  # the service has no name search: scan its pages and keep what matches
            matches: list[PackageInfo] = []
            scan = 1
            while True:
                chunk = await self.packages.list(
                    actor, owner, visibility=visibility, deleted=False, page=scan, per_page=SCAN
                )
                matches += [p for p in chunk.items if q.lower() in p.name.lower()]
                if scan * SCAN >= min(chunk.total, MAX_WINDOW):
                    break
                scan += 1
            items, total = matches[(page - 1) * PER_PAGE : page * PER_PAGE], len(matches)
        return self.render(
            request,
            "packages.html",
            owner=owner,
            packages=items,
            total=total,
            visibility=visibility or "",
            q=q,
            visibilities=VISIBILITIES,
            paging=_pager(request, page, total),
        )

    async def package(self, request: Request) -> Response:
        actor = await self.viewer(request)
        info = await self._package(request, actor)
        # The newest tagged versions, however many untagged ones were pushed after them.
        tagged = (
            await self.packages.versions(actor, info.full_name, deleted=False, page=1, per_page=10, tagged=True)
        ).items
        host = self._host(request)
        if await self.packages.has_tag(actor, info.full_name, "latest"):
            pull = f"{host}/{info.full_name}:latest"
        elif tagged:
            pull = f"{host}/{info.full_name}:{tagged[0].tags[0]}"
        else:
            newest = await self.packages.versions(actor, info.full_name, deleted=False, page=1, per_page=1)
            pull = f"{host}/{info.full_name}@{newest.items[0].digest}" if newest.items else None
        return self.render(request, "package.html", package=info, pull=pull, recent=tagged)

    async def versions(self, request: Request) -> Response:
        actor = await self.viewer(request)
        info = await self._package(request, actor)
        state = request.query_params.get("state") or "active"
        if state not in ("active", "deleted"):
            raise PageError(400, "Bad filter", f"There is no state {state!r}.", "Choose active or deleted.")
        wanted = request.query_params.get("filter") or ""
        if wanted not in ("", "tagged", "untagged"):
            raise PageError(400, "Bad filter", f"There is no filter {wanted!r}.", "Choose tagged or untagged.")
        deleted = state == "deleted"
        page = _page_number(request)
        try:
            found = await self.packages.versions(
                actor,
                info.full_name,
                deleted=deleted,
                page=page,
                per_page=PER_PAGE,
                tagged=None if not wanted else wanted == "tagged",
            )
            items, total = found.items, found.total
        except (NotFound, Forbidden):  # deleted versions: only for those who may restore them
            raise _not_found(f"The deleted versions of {info.full_name}") from None
        return self.render(
            request,
            "versions.html",
            package=info,
            rows=_grouped(items),
            total=total,
            state=state,
            filter=wanted,
            paging=_pager(request, page, total),
        )

    async def version(self, request: Request) -> Response:
        actor = await self.viewer(request)
        info = await self._package(request, actor)
        version_id = request.path_params["version_id"]
        what = f"Version {version_id} of {info.full_name}"
        if version_id > 2**63 - 1:
            raise _not_found(what)
        try:
            found = await self.packages.version(actor, info.full_name, version_id)
            if found.deleted_at is not None:  # a deleted version: only for those who may restore it
                await self.packages.allow(actor, info.full_name, Action.RESTORE)
        except (NotFound, Forbidden):
            raise _not_found(what) from None

        manifest = (await self.packages.payload(actor, info.full_name, found.id)).decode("utf-8", "replace")
        host = self._host(request)
        pull = f"{host}/{info.full_name}@{found.digest}"
        return self.render(request, "version.html", package=info, version=found, manifest=manifest, pull=pull)


def _args(error: PageError) -> tuple[str, str, str]:
    return error.title, error.message, error.hint


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page") or "1"
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1 or int(raw) * PER_PAGE > MAX_WINDOW:
        raise PageError(
            400, "Bad page number", f"There is no page {raw!r}.", f"Pages are numbered 1 to {MAX_WINDOW // PER_PAGE}."
        )
    return int(raw)


def _pager(request: Request, page: int, total: int) -> dict[str, object]:
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
class Row:
    version: VersionInfo
    children: list[VersionInfo]
    parent: str | None  # the index it belongs to, when that index is not on this page


def _grouped(items: list[VersionInfo]) -> list[Row]:
    """Platform images under the index that lists them, when both are on the page."""
    on_page = {v.digest for v in items}
    children: dict[str, list[VersionInfo]] = {}
    rows: list[Row] = []
    for v in items:
        parent = next((d for d in v.indexes if d in on_page), None)
        if parent is not None:
            children.setdefault(parent, []).append(v)
    for v in items:
        if any(d in on_page for d in v.indexes):
            continue
        rows.append(Row(v, children.get(v.digest, []), v.indexes[0] if v.indexes else None))
    return rows
