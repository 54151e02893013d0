"""Package settings: visibility, access, deletion and restore of packages and versions."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.routing import BaseRoute

from portside.http.web.site import Site
from portside.packages.manage import Management
from portside.packages.service import Packages


@dataclass(frozen=True)
class PackageSettings:
    site: Site
    packages: Packages
    management: Management

    def routes(self) -> list[BaseRoute]:
        return []
