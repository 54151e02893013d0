"""Organization settings: members and roles, teams, the container-registry switch, visibilities.

For the organization's owners and site admins. Management decides who may (`org_settings`): someone
outside the organization gets the same 404 as a missing one, a member a 403 saying only owners can.
Every change is a form (CSRF) answered by a redirect back with a notice; a refusal (the last owner,
an unknown user) shows the settings again with Management's message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portside.access.policy import VISIBILITIES, Actor
from portside.http.web.site import Form, PageError, Site, not_found, sentence
from portside.packages.manage import Management, OrgSettingsView
from portside.packages.service import Forbidden, NotFound, PackageError, Packages

ROLES = ("member", "owner")
# A change: does it (Management decides whether the actor may) and returns the notice to show.
Change = Callable[[Actor, str, Form, dict[str, str]], Awaitable[str]]


@dataclass(frozen=True)
class OrgSettings:
    site: Site
    packages: Packages
    management: Management

    def routes(self) -> list[BaseRoute]:
        page, base = self.site.page, "/orgs/{org}/settings"
        changes: dict[str, Change] = {
            "/members": self._add_member,
            "/members/{user}/role": self._set_role,
            "/members/{user}/remove": self._remove_member,
            "/teams": self._create_team,
            "/teams/{team}/members": self._add_team_member,
            "/teams/{team}/members/{user}/remove": self._remove_team_member,
            "/registry": self._registry,
            "/visibilities": self._visibilities,
        }
        return [
            Route(base, page(self.show), methods=["GET", "HEAD"]),
            *(Route(base + path, page(self._post(change)), methods=["POST"]) for path, change in changes.items()),
        ]

    # -- the page ------------------------------------------------------------------------------

    async def show(self, request: Request) -> Response:
        actor = await self.site.signed_in(request)
        org = request.path_params["org"]
        return self._render(request, await self._view(actor, org))

    async def _view(self, actor: Actor, org: str) -> OrgSettingsView:
        try:
            return await self.management.org_settings(actor, org)
        except NotFound:
            raise not_found(f"The organization {org}") from None
        except Forbidden as exc:
            raise PageError(
                403,
                "Only owners can change these settings",
                sentence(exc.message),
                f"Ask an owner of {org} to make the change, or to make you an owner.",
            ) from None

    def _render(
        self,
        request: Request,
        view: OrgSettingsView,
        error: str | None = None,
        status: int = 200,
        values: dict[str, str] | None = None,
    ) -> Response:
        members = [name for name, _ in view.members]
        return self.site.render(
            request,
            "org_settings.html",
            status,
            org=view.account,
            role=view.role,
            members=view.members,
            owners=sum(1 for _, role in view.members if role == "owner"),
            # (team, its members, the organization's members who could join it)
            teams=[(team, names, [m for m in members if m not in names]) for team, names in view.teams],
            roles=ROLES,
            visibilities=VISIBILITIES,
            error=error,
            values=values or {},
        )

    # -- changes -------------------------------------------------------------------------------

    def _post(self, change: Change) -> Callable[[Request], Awaitable[Response]]:
        """CSRF first, then who may see the page, then the change; back to the page with a notice."""

        async def handler(request: Request) -> Response:
            actor = await self.site.signed_in(request)
            form = await self.site.form(request)
            org = request.path_params["org"]
            await self._view(actor, org)  # outsiders: 404; members: 403, before anything changes
            try:
                notice = await change(actor, org, form, request.path_params)
            except PackageError as exc:
                values = {key: form.get(key) for key in ("user", "role", "team")}
                return self._render(request, await self._view(actor, org), sentence(exc.message), exc.status, values)
            target = f"/orgs/{org}/settings"
            if request.path_params.get("user") == actor.name and not await self._still_owner(actor, org):
                target = f"/orgs/{org}/packages"  # an owner who left or stepped down sees the page no more
            return self.site.done(request, target, notice)

        return handler

    async def _still_owner(self, actor: Actor, org: str) -> bool:
        try:
            await self.management.org_settings(actor, org)
        except PackageError:
            return False
        return True

    async def _add_member(self, actor: Actor, org: str, form: Form, _path: dict[str, str]) -> str:
        user, role = form.get("user").strip(), form.get("role", "member")
        if not user:
            raise PackageError("Enter the user name of the person to add")
        added = await self.management.set_member(actor, org, user, role)
        return f"Added {user} to {org} as {role}." if added else f"{user} was already in {org}; now {_a(role)}."

    async def _set_role(self, actor: Actor, org: str, form: Form, path: dict[str, str]) -> str:
        user, role = path["user"], form.get("role")
        if await self.management.set_member(actor, org, user, role):  # a hand-made form can name a non-member
            return f"Added {user} to {org} as {role}."
        return f"{user} is now {_a(role)} of {org}."

    async def _remove_member(self, actor: Actor, org: str, _form: Form, path: dict[str, str]) -> str:
        await self.management.remove_member(actor, org, path["user"])
        return f"Removed {path['user']} from {org} and its teams."

    async def _create_team(self, actor: Actor, org: str, form: Form, _path: dict[str, str]) -> str:
        team = form.get("team").strip()
        if not team:
            raise PackageError("Enter a name for the new team")
        await self.management.create_team(actor, org, team)
        return f"Created the team {org}/{team}. Add members, then grant it access in a package's settings."

    async def _add_team_member(self, actor: Actor, org: str, form: Form, path: dict[str, str]) -> str:
        team, user = path["team"], form.get("member").strip()
        if not user:
            raise PackageError(f"Choose a member of {org} to add to {team}")
        added = await self.management.add_team_member(actor, org, team, user)
        return f"Added {user} to {org}/{team}." if added else f"{user} was already in {org}/{team}."

    async def _remove_team_member(self, actor: Actor, org: str, _form: Form, path: dict[str, str]) -> str:
        team, user = path["team"], path["user"]
        await self.management.remove_team_member(actor, org, team, user)
        return f"Removed {user} from {org}/{team}; they are still a member of {org}."

    async def _registry(self, actor: Actor, org: str, form: Form, _path: dict[str, str]) -> str:
        wanted = form.get("enabled")
        if wanted not in ("true", "false"):
            raise PackageError("Choose whether to enable or disable the container registry")
        await self.management.set_org(actor, org, registry_enabled=wanted == "true", allowed_visibilities=None)
        if wanted == "true":
            return f"Enabled the container registry for {org}: its packages can be pulled and pushed again."
        return f"Disabled the container registry for {org}: every pull and push of its packages is refused."

    async def _visibilities(self, actor: Actor, org: str, form: Form, _path: dict[str, str]) -> str:
        chosen = form.getlist("visibilities")
        if not chosen:
            raise PackageError("Allow at least one visibility")
        account = await self.management.set_org(actor, org, registry_enabled=None, allowed_visibilities=chosen)
        return f"Packages of {org} may now be {', '.join(account.allowed_visibilities)}."


def _a(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"
