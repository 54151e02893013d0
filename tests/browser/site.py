"""A real `portside serve` with accounts and packages, for the browser tests to look at.

Accounts are made in the server's database (as the CLI would) and images are pushed over HTTP as
the bootstrap site admin, with the same helpers as the HTTP tests (tests/support/blobs.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from sqlalchemy import Connection

from portside.access import accounts
from tests.support.blobs import Pushed, push_labelled_image, push_platform_index
from tests.support.server import Server, running_server

ENV = {"PORTSIDE_FSYNC": "false"}
T = TypeVar("T")


@dataclass
class Site:
    server: Server
    admin: httpx.Client  # the bootstrap site admin (Basic credentials), for pushes and the REST API
    pushed: dict[str, Pushed] = field(default_factory=dict)  # by a name the test data gives it

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.host

    def write(self, change: Callable[..., T], *args: object) -> T:
        return self.server.write(change, *args)

    def read(self, query: Callable[..., T], *args: object) -> T:
        return self.server.read(query, *args)

    def users(self, *names: str, orgs: dict[str, str] | None = None, passwords: dict[str, str] | None = None) -> None:
        """Users (those in `passwords` with that password, to sign in to the pages), and organizations
        given as {org: owner}."""

        def create(conn: Connection) -> None:
            for name in names:
                accounts.create_user(conn, name, password=(passwords or {}).get(name))
            for org, owner in (orgs or {}).items():
                accounts.create_org(conn, org, owner)

        self.write(create)

    def push(
        self,
        package: str,
        tag: str | None,
        *,
        key: str,
        labels: dict[str, str] | None = None,
        arch: str = "amd64",
    ) -> Pushed:
        """An image tagged `tag` (None: pushed by digest only), remembered as pushed[key]."""
        pushed = push_labelled_image(self.admin, package, tag, seed=key, labels=labels, architecture=arch)
        self.pushed[key] = pushed
        return pushed

    def push_index(self, package: str, tag: str, children: list[tuple[Pushed, str]], *, key: str) -> Pushed:
        pushed = push_platform_index(self.admin, package, tag, children)
        self.pushed[key] = pushed
        return pushed

    def token(self, user: str, *scopes: str, note: str = "browser tests") -> str:
        """A personal access token of `user`, made in the database as `portside token create` would."""
        return self.write(lambda conn: accounts.create_token(conn, user, scopes, note=note)[0])

    def visibility(self, package: str, visibility: str) -> None:
        self.write(lambda conn: accounts.set_visibility(conn, package, visibility))

    def version_id(self, package: str, key: str) -> int:
        """The version id of pushed[key] in `package`, from the REST API."""
        owner, name = package.split("/", 1)
        kind = "orgs" if self.read(accounts.get_account, owner).kind == "org" else "users"
        response = self.admin.get(
            f"/api/v3/{kind}/{owner}/packages/container/{name.replace('/', '%2F')}/versions", params={"per_page": 100}
        )
        assert response.status_code == 200, response.text
        ids = {v["name"]: v["id"] for v in response.json()}
        return ids[self.pushed[key].digest]


@contextmanager
def running_site(tmp: Path, name: str) -> Iterator[Site]:
    """A server of its own (log: test-output/logs/NAME.log), stopped on exit."""
    with running_server(tmp, name, extra_args=["--workers", "1"], env=ENV) as server, server.client() as admin:
        yield Site(server, admin)
