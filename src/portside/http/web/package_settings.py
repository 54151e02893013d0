"""Package settings: visibility, access, immutable tags, deletion and restore of packages and versions.

Every decision is the services': `Management` and `Packages` ask the one decision function and refuse
with a reason, which these pages show. A package the viewer may not read is the same 404 page as one
that does not exist; one they may read but not administer is a 403 page saying why and whom to ask.
Dangerous changes (visibility, deletion) need the package's full name typed again, checked here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portside.access.policy import VISIBILITIES, Action, Actor
from portside.http.web.lookup import path_owner, path_package
from portside.http.web.site import (
    PER_PAGE,
    Form,
    PageError,
    Site,
    bad_request,
    not_found,
    owner_path,
    package_path,
    page_number,
    pager,
    sentence,
)
from portside.packages.manage import Management
from portside.packages.service import Conflict, Forbidden, NotFound, Owner, PackageError, PackageInfo, Packages
from portside.registry import immutable

GET, POST = ["GET", "HEAD"], ["POST"]
ROLES = ("read", "write", "admin")
KINDS = ("user", "team")
MAX_NAME = 256  # longer than any user, team or package name
MAX_ID = 2**63 - 1


def deleted_packages_path(owner: Owner) -> str:
    return f"/{'orgs' if owner.kind == 'org' else 'users'}/{owner.login}/settings/packages"


def _base(info: PackageInfo) -> str:
    return f"{owner_path(info.owner)}/container/{info.name}"


def _whom(owner: Owner, package: str | None = None) -> str:
    """Who can help: the namespace's owner(s), or an admin of the package."""
    if owner.kind == "user":
        return f"{owner.login}, who owns the namespace"
    return f"an owner of the organization {owner.login}" + (f" or an admin of {package}" if package else "")


def _refused(exc: Forbidden, owner: Owner, package: str | None = None) -> PageError:
    """A refusal from the services as a 403 page: their reason, and whom to ask."""
    return PageError(403, "Not allowed", sentence(exc.message), f"Ask {_whom(owner, package)} if this needs doing.")


def _requested(request: Request, suffix: str) -> str:
    """A page of the package the URL names, before knowing whether it exists (where to go after signing in)."""
    kind = "orgs" if request.url.path.startswith("/orgs/") else "users"
    name = request.path_params["name"].strip("/")
    return f"/{kind}/{request.path_params['owner']}/packages/container/{name}{suffix}"


@dataclass(frozen=True)
class PackageSettings:
    site: Site
    packages: Packages
    management: Management

    def routes(self) -> list[BaseRoute]:
        page = self.site.page
        routes: list[BaseRoute] = []
        for prefix in ("/users/{owner}", "/orgs/{owner}"):
            package = prefix + "/packages/container/{name:path}"
            routes += [
                Route(package + "/settings", page(self.settings), methods=GET),
                Route(package + "/settings/visibility", page(self.set_visibility), methods=POST),
                Route(package + "/settings/collaborators", page(self.set_collaborator), methods=POST),
                Route(package + "/settings/collaborators/remove", page(self.remove_collaborator), methods=POST),
                Route(package + "/settings/immutable-tags", page(self.set_immutable_tags), methods=POST),
                Route(package + "/settings/delete", page(self.delete), methods=POST),
                Route(package + "/settings/purge", page(self.purge), methods=POST),
                Route(package + "/versions/{version_id:int}/delete", page(self.delete_version), methods=POST),
                Route(package + "/versions/{version_id:int}/restore", page(self.restore_version), methods=POST),
                Route(prefix + "/settings/packages", page(self.deleted), methods=GET),
                Route(prefix + "/settings/packages/{package_id:int}/restore", page(self.restore), methods=POST),
            ]
        return routes

    # -- who and what --------------------------------------------------------------------------

    async def _owner(self, request: Request) -> Owner:
        return await path_owner(self.packages, request)

    async def _package(self, request: Request, actor: Actor) -> PackageInfo:
        return await path_package(self.packages, request, actor)

    async def _form(self, request: Request, back: str) -> tuple[Form, Actor]:
        """The posted form (CSRF checked) and its signed-in sender; signed out: sign in, then `back`."""
        form = await self.site.form(request)
        actor = await self.site.viewer(request)
        if actor.anonymous:
            raise PageError(303, "Sign in", "Sign in first.", "", {"Location": f"/login?next={quote(back, safe='')}"})
        return form, actor

    @staticmethod
    def _version_id(request: Request, info: PackageInfo) -> int:
        version_id: int = request.path_params["version_id"]
        if version_id > MAX_ID:
            raise not_found(f"Version {version_id} of {info.full_name}")
        return version_id

    # -- the settings page ---------------------------------------------------------------------

    async def settings(self, request: Request) -> Response:
        actor = await self.site.signed_in(request)
        return await self._settings_page(request, actor, await self._package(request, actor))

    async def _settings_page(
        self,
        request: Request,
        actor: Actor,
        info: PackageInfo,
        status: int = 200,
        errors: dict[str, str] | None = None,
        form: Form | None = None,
    ) -> Response:
        try:  # needs admin (Action.MANAGE): the service's refusal says why
            collaborators = await self.management.collaborators(actor, info.full_name)
        except Forbidden as exc:
            raise PageError(
                403,
                "Admin access needed",
                sentence(exc.message),
                f"To change its settings you need the admin role on it: ask {_whom(info.owner, info.full_name)}.",
            ) from None
        rules = await self.management.immutable_tags(actor, info.full_name)
        allowed = await self.packages.visibilities(info.owner)
        # The current visibility stays on offer even when the owner no longer allows it.
        choices = [v for v in VISIBILITIES if v in allowed or v == info.visibility]
        return self.site.render(
            request,
            "package_settings.html",
            status,
            package=info,
            base=_base(info),
            collaborators=collaborators,
            choices=choices,
            allowed=allowed,
            may_delete=await self.packages.can(actor, info.full_name, Action.DELETE),
            restore_days=self.packages.restore_window.days,
            deleted_path=deleted_packages_path(info.owner),
            errors=errors or {},
            form=form or Form({}),
            roles=ROLES,
            rules=rules,
        )

    async def _invalid(
        self, request: Request, actor: Actor, info: PackageInfo, section: str, message: str, form: Form, status: int
    ) -> Response:
        """The settings page again, with what went wrong next to the form that was sent."""
        return await self._settings_page(request, actor, info, status, {section: sentence(message)}, form)

    async def set_visibility(self, request: Request) -> Response:
        form, actor = await self._form(request, _requested(request, "/settings"))
        info = await self._package(request, actor)
        visibility = form.get("visibility")
        if visibility not in VISIBILITIES:
            problem = "Choose a visibility: public, private or internal. Nothing was changed"
            return await self._invalid(request, actor, info, "visibility", problem, form, 400)
        if form.get("confirm").strip() != info.full_name:
            problem = f"Type {info.full_name} exactly to confirm the change. Nothing was changed"
            return await self._invalid(request, actor, info, "visibility", problem, form, 400)
        try:
            await self.management.set_visibility(actor, info.full_name, visibility)
        except PackageError as exc:
            return await self._invalid(request, actor, info, "visibility", exc.message, form, exc.status)
        return self.site.done(request, _base(info) + "/settings", f"{info.full_name} is now {visibility}.")

    def _subject(self, form: Form, info: PackageInfo) -> tuple[str, str] | str:
        """(kind, name) of the user or team the form names, or what is wrong with it."""
        kind, name = form.get("kind", "user"), form.get("name").strip()
        if kind not in KINDS:
            return "Choose a user or a team"
        if not name or len(name) > MAX_NAME:
            return f"Enter the name of a {kind}"
        # A team may be typed as ORG/TEAM; the service names it within the package's organization.
        if kind == "team" and name.startswith(f"{info.owner.login}/"):
            name = name.split("/", 1)[1]
        return kind, name

    async def set_collaborator(self, request: Request) -> Response:
        form, actor = await self._form(request, _requested(request, "/settings"))
        info = await self._package(request, actor)
        subject = self._subject(form, info)
        if isinstance(subject, str):
            return await self._invalid(request, actor, info, "access", subject, form, 400)
        role = form.get("role")
        if role not in ROLES:
            return await self._invalid(request, actor, info, "access", "Choose a role: read, write or admin", form, 400)
        kind, name = subject
        try:
            added = await self.management.set_collaborator(actor, info.full_name, kind, name, role)
        except PackageError as exc:
            return await self._invalid(request, actor, info, "access", exc.message, form, exc.status)
        message = (
            f"Added {kind} {name} with the {role} role." if added else f"The {kind} {name} now has the {role} role."
        )
        return self.site.done(request, _base(info) + "/settings", message)

    async def remove_collaborator(self, request: Request) -> Response:
        form, actor = await self._form(request, _requested(request, "/settings"))
        info = await self._package(request, actor)
        subject = self._subject(form, info)
        if isinstance(subject, str):
            return await self._invalid(request, actor, info, "access", subject, form, 400)
        kind, name = subject
        try:
            await self.management.remove_collaborator(actor, info.full_name, kind, name)
        except PackageError as exc:
            return await self._invalid(request, actor, info, "access", exc.message, form, exc.status)
        return self.site.done(request, _base(info) + "/settings", f"Removed the {kind} {name} from {info.full_name}.")

    async def set_immutable_tags(self, request: Request) -> Response:
        """The package's own patterns, separated by spaces, commas or lines; empty clears them."""
        form, actor = await self._form(request, _requested(request, "/settings"))
        info = await self._package(request, actor)
        try:
            patterns = immutable.validate(form.get("patterns").replace(",", " ").split())
        except immutable.InvalidPatterns as exc:
            return await self._invalid(request, actor, info, "immutable", f"{exc}. Nothing was changed", form, 400)
        try:
            setting = await self.management.set_immutable_tags(actor, info.full_name, patterns)
        except PackageError as exc:
            return await self._invalid(request, actor, info, "immutable", exc.message, form, exc.status)
        if setting.own:
            message = f"Tags of {info.full_name} matching {' '.join(setting.own)} are immutable."
        elif setting.default:
            message = (
                f"{info.full_name} has no patterns of its own: the default of {info.owner.login} applies "
                f"({' '.join(setting.default)})."
            )
        else:
            message = f"No tag of {info.full_name} is immutable."
        return self.site.done(request, _base(info) + "/settings", message)

    async def delete(self, request: Request) -> Response:
        form, actor = await self._form(request, _requested(request, "/settings"))
        info = await self._package(request, actor)
        if form.get("confirm").strip() != info.full_name:
            problem = f"Type {info.full_name} exactly to confirm the deletion. Nothing was deleted"
            return await self._invalid(request, actor, info, "delete", problem, form, 400)
        try:
            await self.packages.delete(actor, info.full_name)
        except PackageError as exc:
            return await self._invalid(request, actor, info, "delete", exc.message, form, exc.status)
        days = self.packages.restore_window.days
        message = (
            f"Deleted {info.full_name}. It can be restored within {days} days from the deleted packages of "
            f"{info.owner.login} ({deleted_packages_path(info.owner)})."
        )
        return self.site.done(request, owner_path(info.owner), message)

    async def purge(self, request: Request) -> Response:
        form, actor = await self._form(request, _requested(request, "/settings"))
        info = await self._package(request, actor)
        if form.get("confirm").strip() != info.full_name:
            problem = f"Type {info.full_name} exactly to confirm the permanent deletion. Nothing was deleted"
            return await self._invalid(request, actor, info, "purge", problem, form, 400)
        try:
            versions = await self.management.purge_package(actor, info.full_name)
        except PackageError as exc:
            return await self._invalid(request, actor, info, "purge", exc.message, form, exc.status)
        message = (
            f"Deleted {info.full_name} permanently with its {versions} version{'s' * (versions != 1)}; "
            "its layers leave storage with the next garbage collection."
        )
        return self.site.done(request, owner_path(info.owner), message)

    # -- versions ------------------------------------------------------------------------------

    async def delete_version(self, request: Request) -> Response:
        form, actor = await self._form(request, _requested(request, "/versions"))
        info = await self._package(request, actor)
        version_id = self._version_id(request, info)
        try:
            await self.packages.delete_version(actor, info.full_name, version_id, force=form.get("force") == "true")
        except Conflict as exc:  # a live multi-platform index lists it: say so, offer to go on anyway
            version = await self.packages.version(actor, info.full_name, version_id)
            return self.site.render(
                request,
                "version_delete.html",
                409,
                package=info,
                base=_base(info),
                version=version,
                message=exc.message,
                restore_days=self.packages.restore_window.days,
            )
        except Forbidden as exc:
            raise _refused(exc, info.owner, info.full_name) from None
        except NotFound as exc:
            raise PageError(404, "Not found", sentence(exc.message), "Reload the list of versions.") from None
        version = await self.packages.version(actor, info.full_name, version_id)
        tags = f" (tags {', '.join(version.tags)})" if version.tags else ""
        message = (
            f"Deleted version {version.digest}{tags}. It can be restored within {self.packages.restore_window.days} "
            "days from the deleted versions (State: Deleted)."
        )
        return self.site.done(request, _base(info) + "/versions", message)

    async def restore_version(self, request: Request) -> Response:
        _, actor = await self._form(request, _requested(request, "/versions?state=deleted"))
        info = await self._package(request, actor)
        version_id = self._version_id(request, info)
        try:
            kept_elsewhere = await self.packages.restore_version(actor, info.full_name, version_id)
        except Forbidden as exc:
            raise _refused(exc, info.owner, info.full_name) from None
        except NotFound as exc:
            raise PageError(404, "Not found", sentence(exc.message), "Reload the list of deleted versions.") from None
        version = await self.packages.version(actor, info.full_name, version_id)
        message = f"Restored version {version.digest}"
        message += f" with the tags {', '.join(version.tags)}." if version.tags else "."
        if kept_elsewhere:
            message += f" Not restored, because they now point to other versions: {', '.join(kept_elsewhere)}."
        return self.site.done(request, _base(info) + "/versions?state=deleted", message)

    # -- deleted packages ----------------------------------------------------------------------

    async def deleted(self, request: Request) -> Response:
        actor = await self.site.signed_in(request)
        return await self._deleted_page(request, actor, await self._owner(request))

    async def _deleted_page(
        self, request: Request, actor: Actor, owner: Owner, status: int = 200, error: str | None = None
    ) -> Response:
        page = page_number(request)
        try:  # only those who may restore them see them
            found = await self.packages.list(actor, owner, visibility=None, deleted=True, page=page, per_page=PER_PAGE)
        except Forbidden as exc:
            raise _refused(exc, owner) from None
        window = self.packages.restore_window
        return self.site.render(
            request,
            "deleted_packages.html",
            status,
            owner=owner,
            rows=[(p, p.deleted_at + window if p.deleted_at else None) for p in found.items],
            total=found.total,
            restore_days=window.days,
            action_base=deleted_packages_path(owner),
            error=error,
            paging=pager(request, page, found.total),
        )

    async def restore(self, request: Request) -> Response:
        owner = await self._owner(request)
        form, actor = await self._form(request, deleted_packages_path(owner))
        name = form.get("name").strip().strip("/")
        if not name or len(name) > MAX_NAME:
            raise bad_request("The form names no package.", "Use the Restore button of the deleted packages page.")
        package_id: int = request.path_params["package_id"]
        full_name = f"{owner.login}/{name}"
        try:
            await self.packages.restore(actor, full_name, package_id)
        except Conflict as exc:  # the name was pushed to again meanwhile: the message says what to do
            return await self._deleted_page(request, actor, owner, exc.status, sentence(exc.message))
        except Forbidden as exc:
            raise _refused(exc, owner) from None
        except NotFound as exc:
            raise PageError(404, "Not found", sentence(exc.message), "Reload the list of deleted packages.") from None
        return self.site.done(request, package_path(owner, name), f"Restored {full_name}.")
