"""Package pages in the browser, at ghcr.io's URLs (the API's html_url values point here).

Every page asks the packages service (`Packages.owner/list/get/versions/version`), which calls the one
decision function: what a viewer may not read is a 404 page, never a 403 that would reveal it. Forms
live in their own modules (sign-in, tokens, package/org settings, site admin); `Web.routes` gathers them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from portside.access.policy import ANONYMOUS, Action, Actor
from portside.http.web.lookup import path_owner, path_package
from portside.http.web.site import (
    HERE,
    PER_PAGE,
    PageError,
    Site,
    not_found,
    page_number,
    pager,
)
from portside.packages.details import VersionDetails
from portside.packages.manage import Management, OrgInfo
from portside.packages.service import (
    Forbidden,
    NotFound,
    Owner,
    PackageInfo,
    Packages,
    VersionInfo,
)
from portside.registry.quotas import Usage

VISIBILITIES = ("public", "private", "internal")
HOME_OWNERS = 50  # owners with public packages shown on the home page
GET = ["GET", "HEAD"]


@dataclass(frozen=True)
class Web:
    site: Site
    packages: Packages
    management: Management
    details: VersionDetails
    extra: tuple[object, ...] = ()  # page groups with their own `routes()`: sign-in, settings, ...

    def routes(self) -> list[BaseRoute]:
        page = self.site.page
        routes: list[BaseRoute] = [
            Route("/", page(self.home), methods=GET),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            Route("/favicon.ico", favicon, methods=GET),  # pages without the icon link (the API docs)
        ]
        packages: list[BaseRoute] = []
        for prefix in ("/users/{owner}", "/orgs/{owner}"):
            base = prefix + "/packages"
            routes += [
                Route(base, page(self.owner_packages), methods=GET),
                # The package page's fixed "package/" segment goes first, so that a package named
                # like a page below (".../settings", ".../versions") keeps its own page.
                Route(base + "/container/package/{name:path}", page(self.package), methods=GET),
            ]
            packages += [
                Route(base + "/container/{name:path}/versions", page(self.versions), methods=GET),
                Route(base + "/container/{name:path}/{version_id:int}", page(self.version), methods=GET),
            ]
        for group in self.extra:
            routes += group.routes()  # type: ignore[attr-defined]
        routes += packages
        return routes

    def render(self, request: Request, template: str, status: int = 200, **context: object) -> Response:
        return self.site.render(request, template, status, **context)

    async def viewer(self, request: Request) -> Actor:
        return await self.site.viewer(request)

    async def _owner(self, request: Request) -> Owner:
        return await path_owner(self.packages, request)

    async def _package(self, request: Request, actor: Actor) -> PackageInfo:
        return await path_package(self.packages, request, actor)

    # -- pages ---------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        actor = await self.viewer(request)
        mine: list[PackageInfo] = []
        orgs: list[OrgInfo] = []
        if not actor.anonymous and actor.name:
            own = await self.packages.owner(actor.name, "user")
            mine = (
                await self.packages.list(actor, own, visibility=None, deleted=False, page=1, per_page=PER_PAGE)
            ).items
            orgs = [org for org in await self.management.orgs(actor) if org.role is not None]
        # Public packages of the owners that have any, newest first.
        found: list[PackageInfo] = []
        for owner in await self.packages.public_owners(HOME_OWNERS):
            page = await self.packages.list(
                ANONYMOUS, owner, visibility="public", deleted=False, page=1, per_page=PER_PAGE
            )
            found += page.items
        found.sort(key=lambda p: (p.updated_at, p.full_name), reverse=True)
        return self.render(request, "home.html", packages=found[:PER_PAGE], mine=mine, orgs=orgs)

    async def owner_packages(self, request: Request) -> Response:
        actor = await self.viewer(request)
        owner = await self._owner(request)
        visibility = request.query_params.get("visibility") or None
        if visibility is not None and visibility not in VISIBILITIES:
            raise PageError(
                400, "Bad filter", f"There is no visibility {visibility!r}.", "Choose public, private or internal."
            )
        q = (request.query_params.get("q") or "").strip()
        page = page_number(request)
        found = await self.packages.list(
            actor, owner, visibility=visibility, deleted=False, page=page, per_page=PER_PAGE, search=q
        )
        items, total = found.items, found.total
        try:  # for the owner, its organization's members and site admins
            usage: Usage | None = await self.management.usage(actor, owner.kind, owner.login)
        except (Forbidden, NotFound):
            usage = None
        return self.render(
            request,
            "packages.html",
            owner=owner,
            usage=usage,
            packages=items,
            total=total,
            visibility=visibility or "",
            q=q,
            visibilities=VISIBILITIES,
            paging=pager(request, page, total),
        )

    async def package(self, request: Request) -> Response:
        actor = await self.viewer(request)
        info = await self._package(request, actor)
        # The newest tagged versions, however many untagged ones were pushed after them.
        tagged = (
            await self.packages.versions(actor, info.full_name, deleted=False, page=1, per_page=10, tagged=True)
        ).items
        host = self.site.host(request)
        # Pull `latest` when there is one, else the newest tag, else the newest version by digest.
        pull, digest = None, await self.packages.tag_digest(actor, info.full_name, "latest")
        if digest is not None:
            pull = f"{host}/{info.full_name}:latest"
        elif tagged:
            pull, digest = f"{host}/{info.full_name}:{tagged[0].tags[0]}", tagged[0].digest
        else:
            newest = await self.packages.versions(actor, info.full_name, deleted=False, page=1, per_page=1)
            if newest.items:
                digest = newest.items[0].digest
                pull = f"{host}/{info.full_name}@{digest}"
        size = await self.packages.image_size(actor, info.full_name, digest) if digest else None
        may_manage = await self.packages.can(actor, info.full_name, Action.MANAGE)  # the settings link
        return self.render(
            request, "package.html", package=info, pull=pull, size=size, recent=tagged, may_manage=may_manage
        )

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
        page = page_number(request)
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
            raise not_found(f"The deleted versions of {info.full_name}") from None
        # Delete buttons only for those who may delete (one decision); deleted versions all get Restore.
        may_delete = not deleted and await self.packages.can(actor, info.full_name, Action.DELETE)
        return self.render(
            request,
            "versions.html",
            package=info,
            rows=_grouped(items),
            total=total,
            state=state,
            filter=wanted,
            paging=pager(request, page, total),
            may_delete=may_delete,
            restore_days=self.packages.restore_window.days,
        )

    async def version(self, request: Request) -> Response:
        actor = await self.viewer(request)
        info = await self._package(request, actor)
        version_id = request.path_params["version_id"]
        what = f"Version {version_id} of {info.full_name}"
        if version_id > 2**63 - 1:
            raise not_found(what)
        try:
            found = await self.packages.version(actor, info.full_name, version_id)
            if found.deleted_at is not None:  # a deleted version: only for those who may restore it
                await self.packages.allow(actor, info.full_name, Action.RESTORE)
        except (NotFound, Forbidden):
            raise not_found(what) from None

        payload = await self.packages.payload(actor, info.full_name, found.id)
        details = await self.details.details(info.id, found, payload)
        manifest = _readable(payload)
        host = self.site.host(request)
        pull = f"{host}/{info.full_name}@{found.digest}"
        listed_by = await self.packages.version_ids(actor, info.full_name, found.indexes)
        return self.render(
            request,
            "version.html",
            package=info,
            version=found,
            manifest=manifest,
            pull=pull,
            details=details,
            listed_by=listed_by,
        )


async def favicon(_request: Request) -> Response:
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


def _readable(payload: bytes) -> str:
    """The manifest indented for reading; as stored when it is not JSON (the digest is of those bytes)."""
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload.decode("utf-8", "replace")


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
