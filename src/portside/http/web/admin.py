"""Site admin: users (create, make admin, disable, set a password).

Management decides who may. To anyone who is not a site admin the pages are a 404, like any page
they may not see: the header links them only for site admins, and a 403 would advertise an admin
area to those who probe for one. A site admin refused for another reason (a token without
write:packages, or disabling themselves) is told why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portside.access.accounts import PASSWORD_MAX, PASSWORD_MIN
from portside.access.policy import Actor
from portside.http.web.site import Form, PageError, Site, not_found, sentence
from portside.packages.manage import Management
from portside.packages.service import Forbidden, PackageError, Packages

USERS = "/admin/users"
# A change: does it (Management decides whether the actor may) and returns the notice to show.
Change = Callable[[Actor, Form, dict[str, str]], Awaitable[str]]


@dataclass(frozen=True)
class SiteAdmin:
    site: Site
    packages: Packages
    management: Management

    def routes(self) -> list[BaseRoute]:
        page = self.site.page
        changes: dict[str, Change] = {
            "": self._create,
            "/{name}/admin": self._set_admin,
            "/{name}/disabled": self._set_disabled,
            "/{name}/password": self._set_password,
        }
        return [
            Route(USERS, page(self.users), methods=["GET", "HEAD"]),
            *(Route(USERS + path, page(self._post(change)), methods=["POST"]) for path, change in changes.items()),
        ]

    async def users(self, request: Request) -> Response:
        actor = await self.site.signed_in(request)
        return await self._render(request, actor)

    async def _render(
        self,
        request: Request,
        actor: Actor,
        error: str | None = None,
        status: int = 200,
        values: dict[str, str] | None = None,
    ) -> Response:
        try:
            users = await self.management.users(actor)
        except Forbidden as exc:
            raise _refused(actor, exc) from None
        return self.site.render(
            request,
            "admin_users.html",
            status,
            users=users,
            error=error,
            values=values or {},
            password_min=PASSWORD_MIN,
            password_max=PASSWORD_MAX,
        )

    def _post(self, change: Change) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            actor = await self.site.signed_in(request)
            form = await self.site.form(request)
            try:
                notice = await change(actor, form, request.path_params)
            except Forbidden as exc:
                raise _refused(actor, exc) from None
            except PackageError as exc:
                values = {"name": form.get("name"), "site_admin": form.get("site_admin")}
                return await self._render(request, actor, sentence(exc.message), exc.status, values)
            return self.site.done(request, USERS, notice)

        return handler

    async def _create(self, actor: Actor, form: Form, _path: dict[str, str]) -> str:
        name, admin = form.get("name").strip(), form.get("site_admin") == "on"
        password = _password(form)
        await self.management.create_user(actor, name, site_admin=admin, password=password)
        how = "with a password" if password else "without a password (tokens only)"
        return f"Created the {'site admin' if admin else 'user'} {name}, {how}."

    async def _set_admin(self, actor: Actor, form: Form, path: dict[str, str]) -> str:
        name, admin = path["name"], _flag(form, "admin")
        await self.management.set_site_admin(actor, name, admin)
        return f"{name} is now a site admin." if admin else f"{name} is no longer a site admin."

    async def _set_disabled(self, actor: Actor, form: Form, path: dict[str, str]) -> str:
        name, disabled = path["name"], _flag(form, "disabled")
        await self.management.set_disabled(actor, name, disabled)
        if disabled:
            return f"Disabled {name}: signed out everywhere, and their tokens are refused until enabled again."
        return f"Enabled {name}: their tokens work again, and they can sign in."

    async def _set_password(self, actor: Actor, form: Form, path: dict[str, str]) -> str:
        name, password = path["name"], _password(form)
        if password is None:
            raise PackageError("Enter the new password, twice")
        await self.management.set_password(actor, name, password)
        return f"Set a new password for {name}; they have been signed out of every browser."


def _refused(actor: Actor, exc: Forbidden) -> PageError:
    if not actor.site_admin:
        return not_found("This page")
    return PageError(403, "Cannot do that", sentence(exc.message), "Sign in with your password, or use such a token.")


def _flag(form: Form, name: str) -> bool:
    value = form.get(name)
    if value not in ("true", "false"):
        raise PackageError(f"The form's {name} field must be true or false")
    return value == "true"


def _password(form: Form) -> str | None:
    """The password typed twice, or None when both fields are empty."""
    password, again = form.get("password"), form.get("password_confirm")
    if password != again:
        raise PackageError("The two passwords differ: type the same password in both fields")
    return password or None
