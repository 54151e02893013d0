"""The owner and the package a page's address names, or the 404 page of one that does not exist."""

from __future__ import annotations

from starlette.requests import Request

from portside.access.policy import Actor
from portside.http.web.site import not_found
from portside.packages.service import Forbidden, NotFound, Owner, PackageInfo, Packages


async def path_owner(packages: Packages, request: Request) -> Owner:
    login = request.path_params["owner"]
    kind = "org" if request.url.path.startswith("/orgs/") else "user"
    try:
        return await packages.owner(login, kind)
    except NotFound:
        raise not_found(f"The {'organization' if kind == 'org' else 'user'} {login}") from None


async def path_package(packages: Packages, request: Request, actor: Actor) -> PackageInfo:
    """The package, or the very 404 page of a package that does not exist (also when hidden)."""
    owner = await path_owner(packages, request)
    name = request.path_params["name"].strip("/")
    try:
        return await packages.get(actor, f"{owner.login}/{name}")
    except (NotFound, Forbidden):
        raise not_found(f"The package {owner.login}/{name}") from None
