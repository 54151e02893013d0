"""The read-only package pages in the browser (ghcr.io's URLs), over real HTTP.

One server for the module, with these people (set up in its database, as the CLI would):

    alice   owns the user namespace alice
    olga    owns the organization acme
    rita    is granted read on the private packages made by `Site.package`
    oscar   belongs to nothing and is granted nothing
    sam     is a site admin
    paige   owns many public packages, for filters and paging

Pages are fetched anonymously unless a test names a viewer (a Bearer personal access token).
No page may answer 5xx: the client's hook fails the test on any.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection

from portside.access import accounts
from tests.support.blobs import Pushed, push_labelled_image, push_platform_index
from tests.support.server import Server, no_server_error, running_server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
USERS = ("alice", "olga", "rita", "oscar", "sam", "paige")
OWN_SCRIPT = '<script src="/static/portside.js" defer></script>'
ENV = {"PORTSIDE_FSYNC": "false", "PORTSIDE_DOWNLOAD_FLUSH_SECONDS": "0.2", "PORTSIDE_AUTH_MAX_FAILURES": "1000"}


@dataclass
class Site:
    server: Server
    tokens: dict[str, str]
    http: httpx.Client  # no credentials of its own
    admin: httpx.Client  # the bootstrap site admin (Basic), for pushes
    empty_home: httpx.Response  # the home page before anything was pushed

    def page(self, path: str, who: str = "anonymous", **kwargs: Any) -> httpx.Response:
        headers = {} if who == "anonymous" else {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.http.get(path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)

    def ok(self, path: str, who: str = "anonymous", **kwargs: Any) -> str:
        response = self.page(path, who, **kwargs)
        assert response.status_code == 200, f"GET {path} as {who}: {response.status_code} {response.text}"
        assert response.headers["content-type"].startswith("text/html")
        return response.text

    def push(
        self, package: str, tag: str | None, *, seed: str, labels: dict[str, str] | None = None, arch: str = "amd64"
    ) -> Pushed:
        return push_labelled_image(self.admin, package, tag, seed=seed, labels=labels, architecture=arch)

    def push_index(self, package: str, tag: str, children: list[tuple[Pushed, str]]) -> Pushed:
        return push_platform_index(self.admin, package, tag, children)

    def visibility(self, package: str, visibility: str, grants: dict[str, str] | None = None) -> None:
        def change(conn: Connection) -> None:
            accounts.set_visibility(conn, package, visibility)
            for user, role in (grants or {}).items():
                accounts.grant(conn, package, role, user=user)

        self.server.write(change)

    def package(self, owner: str, prefix: str, visibility: str = "public", **push: Any) -> str:
        name = f"{owner}/{prefix}-{uuid.uuid4().hex[:8]}"
        self.push(name, push.pop("tag", "v1"), seed=push.pop("seed", name), **push)
        self.visibility(name, visibility, {"rita": "read"} if visibility != "public" else None)
        return name

    def version_ids(self, package: str, state: str = "active") -> dict[str, int]:
        """digest -> version id, from the REST API (as the site admin)."""
        owner, name = package.split("/", 1)
        kind = "orgs" if owner == "acme" else "users"
        response = self.admin.get(
            f"/api/v3/{kind}/{owner}/packages/container/{name.replace('/', '%2F')}/versions",
            params={"state": state, "per_page": 100},
        )
        assert response.status_code == 200, response.text
        return {v["name"]: v["id"] for v in response.json()}


def _accounts(conn: Connection) -> dict[str, str]:
    for user in USERS:
        accounts.create_user(conn, user, admin=user == "sam")
    accounts.create_org(conn, "acme", "olga")
    return {
        user: accounts.create_token(conn, user, accounts.parse_scopes("read:packages,write:packages,delete:packages"))[
            0
        ]
        for user in USERS
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_server(tmp_path_factory.mktemp("web"), "web-pages", extra_args=["--workers", "1"], env=ENV) as server:
        tokens = server.write(_accounts)
        hooks = {"response": [no_server_error]}
        with (
            httpx.Client(base_url=server.url, timeout=60, event_hooks=hooks) as http,
            server.client(event_hooks=hooks) as admin,
        ):
            yield Site(server, tokens, http, admin, http.get("/"))


def text_of(page: str) -> str:
    """The page's text with tags removed and entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def pre_blocks(page: str) -> list[str]:
    return [html.unescape(block) for block in re.findall(r"<pre[^>]*><code>(.*?)</code></pre>", page, re.S)]


# -- home ---------------------------------------------------------------------------------------


def test_home_without_public_packages_shows_login_and_push_commands_for_this_host(site: Site) -> None:
    response = site.empty_home
    assert response.status_code == 200, response.text
    host = site.server.host
    assert f"docker login {host}\ndocker push {host}/OWNER/NAME:TAG" in pre_blocks(response.text)


def test_home_lists_public_packages_and_yours_to_you_only(site: Site) -> None:
    public = site.package("alice", "home-public", labels={"org.opencontainers.image.description": "A fine image"})
    private = site.package("alice", "home-private", "private")
    for who in ("anonymous", "alice", "oscar"):
        page = site.ok("/", who)
        public_part = page.split('id="public"', 1)[1]
        assert f'href="/users/alice/packages/container/package/{public.split("/", 1)[1]}"' in public_part
        assert "A fine image" in public_part
        assert private not in public_part
        assert "docker push" not in public_part
    # Signed in, alice also sees her own packages, the private one too; others do not.
    mine = site.ok("/", "alice").split('id="public"', 1)[0]
    assert "Your packages" in mine and private in mine and public in mine
    assert private not in site.ok("/", "oscar")
    assert "Your packages" not in site.ok("/")


# -- the owner's packages -----------------------------------------------------------------------


def test_owner_packages_list_what_the_viewer_may_see(site: Site) -> None:
    public = site.package("acme", "list-public", labels={"org.opencontainers.image.description": "org image"})
    private = site.package("acme", "list-private", "private")
    anonymous = site.ok("/orgs/acme/packages")
    assert public.split("/", 1)[1] in anonymous and "org image" in anonymous
    assert private.split("/", 1)[1] not in anonymous
    for who in ("olga", "rita", "sam"):
        assert private.split("/", 1)[1] in site.ok("/orgs/acme/packages", who), who
    assert private.split("/", 1)[1] not in site.ok("/orgs/acme/packages", "oscar")
    table = text_of(site.ok("/orgs/acme/packages", "olga"))
    assert "Private" in table and "Public" in table
    # An org under /users/ (and a user under /orgs/), or nobody at all: a 404 page saying what to do.
    for path in ("/users/acme/packages", "/orgs/alice/packages", "/users/nobody-here/packages"):
        response = site.page(path)
        assert response.status_code == 404, path
        assert "What to do next" in response.text


def test_owner_packages_filter_by_visibility_and_name_and_page_by_thirty(site: Site) -> None:
    names = [f"paige/page-{i:02d}" for i in range(33)]
    for name in names:
        site.push(name, "v1", seed=name)
        site.visibility(name, "public")
    site.package("paige", "secret-one", "private")
    first = site.ok("/users/paige/packages", "paige")
    assert "34 packages" in text_of(first)
    assert 'rel="next" href="/users/paige/packages?page=2"' in first
    assert 'rel="prev"' not in first
    second = site.ok("/users/paige/packages", "paige", params={"page": 2})
    assert 'rel="prev" href="/users/paige/packages?page=1"' in second and 'rel="next"' not in second
    listed = set(re.findall(r">(page-\d\d)</a>", first)) | set(re.findall(r">(page-\d\d)</a>", second))
    assert listed == {n.split("/", 1)[1] for n in names}

    public = site.ok("/users/paige/packages", "paige", params={"visibility": "private"})
    assert "1 package " in text_of(public) and "secret-one" in public
    assert 'option value="private" selected' in public

    found = site.ok("/users/paige/packages", "anonymous", params={"q": "PAGE-1"})
    assert sorted(re.findall(r">(page-\d\d)</a>", found)) == [f"page-1{i}" for i in range(10)]
    assert 'value="PAGE-1"' in found and '<label for="q">' in found
    for wildcard in ("%", "_", "\\"):  # searched for as themselves, not as LIKE patterns
        assert "0 packages" in text_of(site.ok("/users/paige/packages", params={"q": wildcard})), wildcard
    # Filters survive paging; bad filters and pages are a 400 page, not a crash.
    paged = site.ok("/users/paige/packages", params={"q": "page", "page": 1})
    assert 'href="/users/paige/packages?q=page&amp;page=2"' in paged
    for params in ({"visibility": "secret"}, {"page": "0"}, {"page": "x"}, {"page": "999"}):
        assert site.page("/users/paige/packages", params=params).status_code == 400, params


# -- the package page ---------------------------------------------------------------------------


def test_package_page_shows_pull_command_labels_and_recent_tags(site: Site) -> None:
    labels = {
        "org.opencontainers.image.description": "Serves hello",
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.source": "https://example.com/hello",
    }
    name = site.package("alice", "hello", labels=labels, tag="1.0")
    second = site.push(name, "2.0", seed="second", labels=labels)
    path = f"/users/alice/packages/container/package/{name.split('/', 1)[1]}"
    page = site.ok(path)
    text = text_of(page)
    assert f'<dt>Size</dt><dd><data value="{_stored(second)}">' in page
    # No "latest": the newest tag.
    assert pre_blocks(page) == [f"docker pull {site.server.host}/{name}:2.0"]
    assert "Serves hello" in text and "Apache-2.0" in text
    assert '<a href="https://example.com/hello"' in page
    assert "Install from the command line" in text and "Recent tagged versions" in text
    assert text.index("2.0") < text.index("1.0 ")
    assert f'href="/users/alice/packages/container/{name.split("/", 1)[1]}/versions"' in page
    assert "Total downloads" in text
    # With a "latest" tag, that is what the command pulls; the host is the one the browser asked.
    site.push(name, "latest", seed="third")
    assert pre_blocks(site.ok(path))[0] == f"docker pull {site.server.host}/{name}:latest"
    forwarded = site.ok(path, headers={"Host": "registry.example:5000"})
    assert pre_blocks(forwarded)[0] == f"docker pull registry.example:5000/{name}:latest"


def _stored(pushed: Pushed, *children: Pushed) -> int:
    """Manifests, configs and layers as stored: what the pages call an image's size."""
    total = 0
    for item in (pushed, *children):
        doc = json.loads(item.manifest)
        total += len(item.manifest) + sum(b["size"] for b in [doc.get("config", {"size": 0}), *doc.get("layers", [])])
    return total


def test_a_multi_platform_package_counts_every_platform(site: Site) -> None:
    name = f"alice/multi-size-{uuid.uuid4().hex[:6]}"
    amd = site.push(name, None, seed="size-amd")
    arm = site.push(name, None, seed="size-arm", arch="arm64")
    index = site.push_index(name, "latest", [(amd, "amd64"), (arm, "arm64")])
    site.visibility(name, "public")
    page = site.ok(f"/users/alice/packages/container/package/{name.split('/', 1)[1]}")
    assert f'<dt>Size</dt><dd><data value="{_stored(index, amd, arm)}">' in page
    # Each version in the list, and the index's own page, say the same.
    base = f"/users/alice/packages/container/{name.split('/', 1)[1]}"
    versions = site.ok(f"{base}/versions")
    for pushed in (amd, arm):
        assert f'<td><data value="{_stored(pushed)}">' in versions
    assert f'<td><data value="{_stored(index, amd, arm)}">' in versions
    index_page = site.ok(
        f"/users/alice/packages/container/{name.split('/', 1)[1]}/{site.version_ids(name)[index.digest]}"
    )
    assert f'<dt>Size</dt><dd><data value="{_stored(index, amd, arm)}">' in index_page
    assert "manifests, configurations and layers of every platform, as stored" in text_of(index_page)


def test_untagged_package_pulls_by_digest_and_nested_names_work(site: Site) -> None:
    name = f"alice/tools/untagged-{uuid.uuid4().hex[:6]}"
    pushed = site.push(name, None, seed=name)
    site.visibility(name, "public")
    page = site.ok(f"/users/alice/packages/container/package/{name.split('/', 1)[1]}")
    assert pre_blocks(page) == [f"docker pull {site.server.host}/{name}@{pushed.digest}"]
    assert "No tagged versions." in page


def test_private_package_is_404_to_anonymous_and_outsiders_and_200_to_readers(site: Site) -> None:
    name = site.package("alice", "private", "private")
    short = name.split("/", 1)[1]
    version = next(iter(site.version_ids(name).values()))
    paths = [
        f"/users/alice/packages/container/package/{short}",
        f"/users/alice/packages/container/{short}/versions",
        f"/users/alice/packages/container/{short}/{version}",
    ]
    missing = "/users/alice/packages/container/package/no-such-package"
    for path in paths:
        for who in ("anonymous", "oscar"):
            response = site.page(path, who)
            assert response.status_code == 404, (path, who)
            assert "does not exist, or you are not allowed to see it" in response.text
            assert "What to do next" in response.text
        for who in ("alice", "rita", "sam"):
            assert site.page(path, who).status_code == 200, (path, who)
    # Exactly what a package that does not exist answers: nothing reveals this one.
    hidden = text_of(site.page(paths[0], "oscar").text).replace(short, "X")
    assert hidden == text_of(site.page(missing, "oscar").text).replace("no-such-package", "X")
    # A bad token is a 401 page, never the package.
    response = site.http.get(paths[0], headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and short not in response.text.split("<main", 1)[1].split("Bearer")[0]


# -- versions -----------------------------------------------------------------------------------


def test_versions_page_groups_platform_images_under_their_index_and_filters(site: Site) -> None:
    name = f"acme/multi-{uuid.uuid4().hex[:8]}"
    lone = site.push(name, "old", seed="lone")
    amd = site.push(name, None, seed="amd", arch="amd64")
    arm = site.push(name, None, seed="arm", arch="arm64")
    index = site.push_index(name, "1.0", [(amd, "amd64"), (arm, "arm64")])
    site.visibility(name, "public")
    base = f"/orgs/acme/packages/container/{name.split('/', 1)[1]}"
    page = site.ok(f"{base}/versions")
    ids = site.version_ids(name)
    assert "4 versions" in text_of(page)
    rows = re.findall(r"<tr( class=\"child\")?>\s*<th scope=\"row\">.*?href=\"[^\"]*/(\d+)\"", page, re.S)
    order = [(bool(child), int(version)) for child, version in rows]
    # The index first (newest), its two platform images right under it, then the lone image.
    assert order[0] == (False, ids[index.digest])
    assert sorted(order[1:3]) == sorted([(True, ids[amd.digest]), (True, ids[arm.digest])])
    assert order[3] == (False, ids[lone.digest])
    text = text_of(page)
    assert "linux/amd64" in text and "linux/arm64" in text and "multi-platform index" in text
    assert index.digest[:19] in page and "1.0" in text and "old" in text

    tagged = site.ok(f"{base}/versions", params={"filter": "tagged"})
    assert "2 versions" in text_of(tagged) and amd.digest[:19] not in tagged
    untagged = site.ok(f"{base}/versions", params={"filter": "untagged"})
    assert "2 versions" in text_of(untagged) and f'/{ids[index.digest]}"' not in untagged
    assert "which is not in this list" in untagged  # their index is tagged: filtered out
    for params in ({"filter": "nope"}, {"state": "gone"}):
        assert site.page(f"{base}/versions", params=params).status_code == 400


def test_deleted_versions_only_for_those_who_may_restore(site: Site) -> None:
    name = site.package("alice", "deleting", "private", tag="keep")
    doomed = site.push(name, "gone", seed="doomed")
    short = name.split("/", 1)[1]
    doomed_id = site.version_ids(name)[doomed.digest]
    response = site.http.delete(
        f"/api/v3/users/alice/packages/container/{short}/versions/{doomed_id}",
        headers={"Authorization": f"Bearer {site.tokens['alice']}"},
    )
    assert response.status_code == 204, response.text
    base = f"/users/alice/packages/container/{short}"
    assert doomed.digest[:19] not in site.ok(f"{base}/versions", "alice")
    for who in ("alice", "sam"):
        page = site.ok(f"{base}/versions", who, params={"state": "deleted"})
        assert doomed.digest[:19] in page and "gone" in page and "1 deleted version" in text_of(page)
        assert "was deleted" in site.ok(f"{base}/{doomed_id}", who)
    for who in ("rita", "oscar", "anonymous"):  # rita may read the package, not restore it
        assert site.page(f"{base}/versions", who, params={"state": "deleted"}).status_code == 404, who
        assert site.page(f"{base}/{doomed_id}", who).status_code == 404, who


def test_version_page_shows_details_indexes_and_the_raw_manifest(site: Site) -> None:
    name = f"alice/versioned-{uuid.uuid4().hex[:8]}"
    amd = site.push(name, None, seed="amd", labels={"org.opencontainers.image.licenses": "MIT"})
    index = site.push_index(name, "latest", [(amd, "amd64")])
    site.visibility(name, "public")
    ids = site.version_ids(name)
    base = f"/users/alice/packages/container/{name.split('/', 1)[1]}"
    page = site.ok(f"{base}/{ids[amd.digest]}")
    text = text_of(page)
    assert OCI_MANIFEST in text and "linux/amd64" in text and "untagged" in text and "MIT" in text
    doc = json.loads(amd.manifest)
    stored = len(amd.manifest) + doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])
    assert f"Size {stored} B (manifest, configuration and layers, as stored)" in text
    assert f'<a href="{base}/{ids[index.digest]}"><code class="wrap">{index.digest}</code></a>' in page  # listed by
    blocks = pre_blocks(page)
    assert blocks[0] == f"docker pull {site.server.host}/{name}@{amd.digest}"
    assert json.loads(blocks[-1]) == json.loads(amd.manifest)  # indented for reading, the same document
    assert "\n  " in blocks[-1]
    index_page = site.ok(f"{base}/{ids[index.digest]}")
    assert OCI_INDEX in text_of(index_page) and "latest" in text_of(index_page)
    assert "No multi-platform index lists this version." in index_page
    for missing in (f"{base}/999999", f"{base}/{2**64}", "/users/alice/packages/container/nope/1"):
        assert site.page(missing).status_code == 404, missing


# -- safety and accessibility -------------------------------------------------------------------


def test_user_data_is_escaped_everywhere(site: Site) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    labels = {
        "org.opencontainers.image.description": evil,
        "org.opencontainers.image.licenses": evil,
        "org.opencontainers.image.source": "javascript:alert(1)",
    }
    name = site.package("alice", "evil", labels=labels)
    short = name.split("/", 1)[1]
    ids = site.version_ids(name)
    for path in (
        "/",
        "/users/alice/packages",
        f"/users/alice/packages/container/package/{short}",
        f"/users/alice/packages/container/{short}/versions",
        f"/users/alice/packages/container/{short}/{next(iter(ids.values()))}",
        "/users/alice/packages?q=<script>x</script>",
    ):
        page = site.ok(path).replace(OWN_SCRIPT, "", 1)  # the pages' one script, from this site
        assert "<script" not in page and "<img" not in page, path
        assert 'href="javascript:' not in page, path
    page = site.ok(f"/users/alice/packages/container/package/{short}")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "javascript:alert(1)" in text_of(page)  # shown as text, not as a link


def test_pages_are_accessible_html_and_the_stylesheet_is_served(site: Site) -> None:
    name = site.package("alice", "a11y")
    short = name.split("/", 1)[1]
    version = next(iter(site.version_ids(name).values()))
    for path in (
        "/",
        "/users/alice/packages",
        f"/users/alice/packages/container/package/{short}",
        f"/users/alice/packages/container/{short}/versions",
        f"/users/alice/packages/container/{short}/{version}",
        "/users/nobody/packages",
    ):
        page = site.page(path).text
        assert '<html lang="en">' in page, path
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page, path
        assert '<a class="skip" href="#main">' in page and 'id="main"' in page, path
        levels = [int(level) for level in re.findall(r"<h([1-6])", page)]
        assert levels[0] == 1 and levels.count(1) == 1, path
        assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), (path, levels)
        for select_id in re.findall(r'<(?:select|input) id="([^"]+)"', page):
            assert f'<label for="{select_id}">' in page, (path, select_id)
        if "<table" in page:
            assert '<th scope="col">' in page and '<th scope="row">' in page, path
    css = site.http.get("/static/portside.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".skip" in css.text


def test_registry_and_api_routes_are_not_shadowed(site: Site) -> None:
    assert site.http.get("/healthz").json() == {"status": "ok"}
    assert site.http.get("/v2/").status_code == 401
    assert site.http.get("/api/v3/users/alice/packages?package_type=container").status_code == 401
    assert site.http.get("/api/v3/openapi.json").status_code == 200
    assert site.http.get("/token").status_code in (200, 401)
    assert site.http.head("/").status_code == 200


def test_a_browser_gets_pages_for_unknown_addresses_and_machines_keep_json(site: Site) -> None:
    html_accept = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    missing = site.page("/no/such/page", headers=html_accept)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "does not exist, or you are not allowed to see it" in text_of(missing.text)
    form_only = site.page("/logout", headers=html_accept)
    assert form_only.status_code == 405 and "is a form's address" in text_of(form_only.text)
    # The registry, the APIs and clients that do not ask for HTML keep their JSON errors.
    for path, headers in (("/v2/no/such/thing", html_accept), ("/api/v3/nothing", html_accept), ("/nope", {})):
        response = site.page(path, headers=headers)
        assert response.status_code == 404 and response.headers["content-type"] == "application/json", path
