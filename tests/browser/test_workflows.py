"""Whole tasks through the pages, in Chromium, with the real docker engine on the other side.

A server and a private dockerd of this module's own (logs: test-output/logs/browser-workflows.log,
test-output/logs/dockerd-browser.log; every docker command: test-output/logs/e2e-commands.log). Each
test has people of its own, so the tests do not depend on one another or on their order:

dana   signs in, generates a token on its page, docker login + push with it
pia    sees her pushed package: pull command, copy button, versions
vic    makes his package public with the typed confirmation; an anonymous docker pull then works
olga   owner of the organization harbor: adds mia, creates the team readers, grants it read on harbor/tools
mia    a member of harbor, in a browser of her own: a 404 page before the grant, the package after
rita   deletes and restores a version on the versions page; docker pull follows
rex    revokes the token docker is logged in with; docker is refused
phil   generates a token on a phone
the site admin creates nina (with a password) on /admin/users; nina signs in
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from portside.access import accounts
from tests.browser.browsing import PHONE, Axe, Guard, OpenTab, Snapshot, Tab, Visit, no_sideways_scroll
from tests.browser.site import Site, running_site
from tests.browser.workflows import Docker, generate_token, sign_in
from tests.support.commands import require
from tests.support.dockerd import Dockerd, running_dockerd

PASSWORDS = {
    name: f"{name}-correct-horse-battery" for name in ("dana", "pia", "vic", "olga", "mia", "rita", "rex", "phil")
}
NINA = "nina-staple-horse-7"
CLIPBOARD = {"permissions": ["clipboard-read", "clipboard-write"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("browser-workflows"), "browser-workflows") as site:
        site.users(*PASSWORDS, orgs={"harbor": "olga"}, passwords=PASSWORDS)
        site.push("harbor/phone", "1.0", key="phone")  # for the settings pages at phone width
        yield site


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """A real docker engine for this module (it talks plain HTTP to 127.0.0.1 registries: no setting needed)."""
    binary = require("dockerd")
    require("docker")
    with running_dockerd(tmp_path_factory.mktemp("dockerd"), binary, name="dockerd-browser") as daemon:
        yield daemon


@pytest.fixture
def base_url(site: Site) -> str:
    return site.url


@pytest.fixture
def me(page: Page, axe: Axe, visit: Visit) -> Tab:
    """The test's first browser (the `page` fixture) as a Tab, for the helpers."""
    return Tab(page, axe, visit)


@pytest.fixture
def docker_as(engine: Dockerd, tmp_path: Path) -> Callable[[str], Docker]:
    """`docker_as(who)`: the engine with a DOCKER_CONFIG of `who`'s own (no login until they log in)."""
    return lambda who: Docker(engine, tmp_path / f"docker-config-{who}")


def pushed(site: Site, docker: Docker, user: str, reference: str, context: Path) -> str:
    """`user` logs docker in with a token made as the CLI would, builds a tiny image and pushes it: its digest."""
    assert "Login Succeeded" in docker.login(site.host, user, site.token(user, "write:packages")).stdout
    docker.build(reference, context)
    return docker.push(reference)


def registry_digest(site: Site, repository: str, tag: str) -> str | None:
    """What the registry answers for the tag (as the site admin): its digest, or None when it is unknown."""
    response = site.admin.head(
        f"/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response
    return response.headers["docker-content-digest"]


def secrets_on(page: Page) -> list[Locator]:
    """Where the new-token page shows the token: masked in screenshots."""
    return [page.locator("#new-token"), page.locator("#docker-login + .command-row code")]


def notice(page: Page) -> Locator:
    """The one-line notice a form's redirect leaves on the next page (expect() waits for the new page's)."""
    return page.locator("main > p.notice")


def definition(dl: Locator, term: str) -> Locator:
    """The <dd> after the <dt> that says `term`."""
    return dl.locator("dt", has_text=re.compile(f"^{re.escape(term)}$")).locator("xpath=following-sibling::dd[1]")


# -- 1. sign in, generate a token, docker login + push --------------------------------------------


def test_sign_in_generate_a_token_and_push_with_docker(
    me: Tab, site: Site, docker_as: Callable[[str], Docker], tmp_path: Path, snapshot: Snapshot
) -> None:
    page = me.page
    sign_in(me, "dana", PASSWORDS["dana"])
    expect(page).to_have_url(site.url + "/")

    token = generate_token(me, "docker on the build box", scope="write:packages", expiry="90 days")
    generated = datetime.now(UTC)
    snapshot("token-created", mask=secrets_on(page))
    assert token.details["Scopes"] == "read:packages, write:packages"
    assert token.details["Packages"] == "every package you can reach"
    expires = datetime.fromisoformat(token.expires.replace("Z", "+00:00"))
    assert abs(expires - (generated + timedelta(days=90))) < timedelta(minutes=5), token.expires
    assert token.details["Expires"] == expires.strftime("%Y-%m-%d %H:%M UTC")
    assert token.login_command == f"echo {token.secret} | docker login {site.host} -u dana --password-stdin"

    # Shown once: back on the list only its prefix is, and it has not been used yet.
    page.get_by_role("link", name="Back to your tokens").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Personal access tokens")
    row = page.locator("table.tokens tbody tr")
    expect(row).to_have_count(1)
    expect(row.get_by_role("rowheader")).to_have_text("docker on the build box")
    expect(row.locator(".tag")).to_have_text(["read:packages", "write:packages"])
    expect(row.locator("td").nth(3)).to_have_text("Never used")
    prefix = row.locator("td code").inner_text()
    assert prefix.endswith("…") and len(prefix) > 4 and token.secret.startswith(prefix[:-1]), prefix
    assert token.secret not in page.content()
    me.axe()

    # The real docker engine, with the token as the password (what the page's command does).
    docker = docker_as("dana")
    login = docker.login(site.host, "dana", token.secret)
    assert "Login Succeeded" in login.stdout, login.describe()
    assert site.host in docker.logins()
    reference = f"{site.host}/dana/hello:1.0"
    docker.build(reference, tmp_path / "context")
    digest = docker.push(reference)
    assert registry_digest(site, "dana/hello", "1.0") == digest
    package = site.read(accounts.get_package, "dana/hello")
    assert (package.owner, package.visibility) == ("dana", "private")  # the first push made it, private

    # The list says the token was used: docker signed in with it.
    me.visit("/settings/tokens")
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$"))
    me.axe()


# -- 2. the package page: pull command, copy button, versions -------------------------------------


@pytest.mark.browser_context(**CLIPBOARD)
def test_package_page_pull_command_copy_button_and_versions(
    me: Tab, site: Site, docker_as: Callable[[str], Docker], tmp_path: Path, snapshot: Snapshot
) -> None:
    page = me.page
    docker = docker_as("pia")
    reference = f"{site.host}/pia/tool:2.1"
    digest = pushed(site, docker, "pia", reference, tmp_path / "context")

    sign_in(me, "pia", PASSWORDS["pia"])
    page.get_by_role("navigation", name="Site").get_by_role("link", name="Your packages").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Packages of pia")
    me.axe()
    page.get_by_role("link", name="tool", exact=True).click()
    expect(page).to_have_url(site.url + "/users/pia/packages/container/package/tool")
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^tool\s+Private$"))

    install = page.get_by_role("region", name="Install from the command line")
    expect(install.locator("pre.command")).to_have_text(f"docker pull {reference}")
    status = install.get_by_role("status")
    expect(status).to_have_text("")
    me.axe()
    install.get_by_role("button", name="Copy the pull command").click()
    expect(status).to_have_text("Copied")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == f"docker pull {reference}"
    me.axe()  # with the status filled in
    snapshot("copied")

    # What was copied works, as it is: docker pulls the pushed image back.
    docker("rmi", reference)
    assert not docker.has_image(reference)
    command = shlex.split(copied)
    assert command[0] == "docker"
    docker(*command[1:])
    assert f"{site.host}/pia/tool@{digest}" in docker.repo_digests(reference)

    expect(page.locator("ul.versions > li > a")).to_have_text(["2.1"])
    page.get_by_role("link", name="View all 1 version").click()
    expect(page).to_have_url(site.url + "/users/pia/packages/container/tool/versions")
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Versions of tool\s+Private$"))
    expect(page.get_by_role("heading", level=2)).to_have_text("1 version")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("th code")).to_have_text(digest[: len("sha256:") + 12])
    expect(rows.locator(".tag")).to_have_text(["2.1"])
    expect(rows.locator("td").nth(1)).to_have_text("linux/amd64")
    me.axe()
    snapshot("versions")

    rows.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"tool {digest[: len('sha256:') + 12]}")
    details = page.locator("main dl").first
    expect(definition(details, "Digest").locator("code")).to_have_text(digest)
    expect(definition(details, "Tags")).to_have_text("2.1")
    me.axe()


# -- 3. visibility, with the typed confirmation -------------------------------------------------------


def test_make_a_package_public_with_the_typed_confirmation(
    me: Tab, site: Site, guard: Guard, docker_as: Callable[[str], Docker], tmp_path: Path, snapshot: Snapshot
) -> None:
    page = me.page
    owner, anonymous = docker_as("vic"), docker_as("anonymous")
    reference = f"{site.host}/vic/site:1.0"
    digest = pushed(site, owner, "vic", reference, tmp_path / "context")
    owner("rmi", reference)
    denied = anonymous.fails("pull", reference)
    assert (
        f"pull access denied for {site.host}/vic/site, repository does not exist or may require 'docker login'"
        in denied.stderr
    ), denied.describe()

    sign_in(me, "vic", PASSWORDS["vic"])
    me.visit("/users/vic/packages/container/package/site")
    me.axe()
    page.get_by_role("link", name="Package settings").click()
    settings = "/users/vic/packages/container/site/settings"
    expect(page).to_have_url(site.url + settings)
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Package settings\s+vic/site$"))
    section = page.get_by_role("region", name="Change visibility")
    expect(section.locator("p").first).to_have_text("vic/site is Private.")
    expect(section.get_by_label("Private", exact=True)).to_be_checked()
    me.axe()

    # A slip of the keyboard: refused, said next to the form, nothing changed.
    section.get_by_label("Public", exact=True).check()
    confirm = section.get_by_label("Type vic/site to confirm")
    confirm.fill("vic/sites")
    guard.expect_status(400, settings + "/visibility")
    section.get_by_role("button", name="Change visibility").click()
    error = section.get_by_role("alert")
    expect(error).to_have_text("Type vic/site exactly to confirm the change. Nothing was changed.")
    expect(confirm).to_have_attribute("aria-describedby", "visibility-error")
    expect(confirm).to_have_value("")
    expect(section.get_by_label("Public", exact=True)).to_be_checked()  # the choice is kept for the next try
    expect(section.locator("p").first).to_have_text("vic/site is Private.")
    assert site.read(accounts.get_package, "vic/site").visibility == "private"
    anonymous.fails("pull", reference)
    me.axe()
    snapshot("wrong-name")

    confirm.fill("vic/site")
    section.get_by_role("button", name="Change visibility").click()
    expect(page).to_have_url(site.url + settings)
    expect(notice(page)).to_have_text("vic/site is now public.")
    expect(section.locator("p").first).to_have_text("vic/site is Public.")
    expect(section.get_by_role("alert")).to_have_count(0)
    assert site.read(accounts.get_package, "vic/site").visibility == "public"
    me.axe()
    snapshot("public")

    # Anyone can pull it now: docker with no login at all.
    assert anonymous.logins() == {}
    anonymous("pull", reference)
    assert f"{site.host}/vic/site@{digest}" in anonymous.repo_digests(reference)

    # And the signed-out home page lists it.
    page.get_by_role("button", name="Sign out vic").click()
    expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    expect(notice(page)).to_have_text("You are signed out.")
    expect(page.locator("li.card").get_by_role("link", name="vic/site")).to_be_visible()
    me.axe()


# -- 4. a team's read access, seen by its member ----------------------------------------------------


def test_grant_a_team_read_access_and_its_member_sees_the_package(
    me: Tab, site: Site, new_tab: OpenTab, snapshot: Snapshot
) -> None:
    package, settings = (
        "/orgs/harbor/packages/container/package/tools",
        "/orgs/harbor/packages/container/tools/settings",
    )
    site.push("harbor/tools", "1.0", key="tools")
    assert site.read(accounts.get_package, "harbor/tools").visibility == "private"

    # mia, in a browser of her own, is not in harbor yet: to her the package does not exist.
    mia = new_tab("mia")
    sign_in(mia, "mia", PASSWORDS["mia"])
    mia.visit(package, status=404)
    expect(mia.page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(mia.page.locator("main")).to_contain_text(
        "The package harbor/tools does not exist, or you are not allowed to see it."
    )
    mia.axe()
    snapshot("mia-not-found", mia.page)

    # olga, the owner: mia joins harbor, then the new team readers.
    page = me.page
    sign_in(me, "olga", PASSWORDS["olga"])
    me.visit("/orgs/harbor/settings")
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings of harbor")
    me.axe()
    members = page.get_by_role("region", name="Members and roles")
    members.get_by_label("User name", exact=True).fill("mia")
    members.get_by_label("Role", exact=True).select_option(label="Member")
    members.get_by_role("button", name="Add member").click()
    expect(notice(page)).to_have_text("Added mia to harbor as member.")
    expect(members.get_by_label("Role of mia")).to_have_value("member")
    me.axe()

    teams = page.get_by_role("region", name="Teams")
    expect(teams).to_contain_text("harbor has no teams yet.")
    teams.get_by_label("Team name").fill("readers")
    teams.get_by_role("button", name="Create team").click()
    expect(notice(page)).to_have_text(
        "Created the team harbor/readers. Add members, then grant it access in a package's settings."
    )
    card = teams.locator(".card").filter(has=page.get_by_role("heading", name="readers", exact=True))
    expect(card).to_contain_text("No members yet.")
    me.axe()
    card.get_by_label("Add a member to readers").select_option("mia")
    card.get_by_role("button", name="Add to team readers").click()
    expect(notice(page)).to_have_text("Added mia to harbor/readers.")
    expect(card.locator("ul.plain > li")).to_have_text([re.compile(r"^mia\s+Remove")])
    me.axe()
    snapshot("org-settings")

    # Being a member of harbor and of a team without a grant still shows mia nothing.
    mia.visit(package, status=404)
    mia.axe()

    # The grant, on the package's settings page.
    me.visit(package)
    me.axe()
    page.get_by_role("link", name="Package settings").click()
    expect(page).to_have_url(site.url + settings)
    access = page.get_by_role("region", name="Manage access")
    expect(access.get_by_role("rowheader", name="Team harbor/readers")).to_have_count(0)
    me.axe()
    access.get_by_label("Kind").select_option(label="Team of harbor")
    access.get_by_label("User or team name").fill("readers")
    access.get_by_label("Role", exact=True).select_option(label="Read")
    access.get_by_role("button", name="Add", exact=True).click()
    expect(page).to_have_url(site.url + settings)
    expect(notice(page)).to_have_text("Added team readers with the read role.")
    expect(access.get_by_label("Role of team harbor/readers")).to_have_value("read")
    assert ("team", "harbor/readers", "read") in site.read(accounts.grants_of, "harbor/tools")
    me.axe()

    # mia sees it now, as a reader: no settings for her.
    mia.visit(package)
    expect(mia.page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^tools\s+Private$"))
    expect(mia.page.locator("pre.command")).to_have_text(f"docker pull {site.host}/harbor/tools:1.0")
    expect(mia.page.get_by_role("link", name="Package settings")).to_have_count(0)
    mia.axe()
    snapshot("mia-reads", mia.page)
    mia.visit(settings, status=403)
    expect(mia.page.get_by_role("heading", level=1)).to_have_text("Admin access needed")
    mia.axe()


# -- 5. delete and restore a version ----------------------------------------------------------------


def test_delete_and_restore_a_version_on_the_versions_page(
    me: Tab, site: Site, docker_as: Callable[[str], Docker], tmp_path: Path, snapshot: Snapshot
) -> None:
    page = me.page
    docker = docker_as("rita")
    reference = f"{site.host}/rita/app:3.0"
    digest = pushed(site, docker, "rita", reference, tmp_path / "context")
    versions = "/users/rita/packages/container/app/versions"
    heading2 = page.get_by_role("heading", level=2)
    rows = page.locator("table tbody tr")

    sign_in(me, "rita", PASSWORDS["rita"])
    me.visit(versions)
    expect(heading2).to_have_text("1 version")
    expect(rows.locator(".tag")).to_have_text(["3.0"])
    me.axe()

    page.get_by_role("button", name=f"Delete version {digest}").click()
    expect(page).to_have_url(site.url + versions)
    expect(notice(page)).to_have_text(
        f"Deleted version {digest} (tags 3.0). It can be restored within 30 days from the deleted versions "
        "(State: Deleted)."
    )
    expect(heading2).to_have_text("0 versions")
    expect(rows).to_have_count(0)
    me.axe()
    snapshot("deleted")
    assert registry_digest(site, "rita/app", "3.0") is None
    docker("rmi", reference)
    gone = docker.fails("pull", reference)
    assert f"manifest for {reference} not found: manifest unknown" in gone.stderr, gone.describe()

    page.get_by_label("State").select_option(label="Deleted")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"\?filter=&state=deleted$"))
    expect(heading2).to_have_text("1 deleted version")
    expect(rows.locator("th code")).to_have_text(digest[: len("sha256:") + 12])
    expect(rows.locator(".tag")).to_have_text(["3.0"])
    me.axe()
    snapshot("deleted-list")

    page.get_by_role("button", name=f"Restore version {digest}").click()
    expect(page).to_have_url(site.url + versions + "?state=deleted")
    expect(notice(page)).to_have_text(f"Restored version {digest} with the tags 3.0.")
    expect(heading2).to_have_text("0 deleted versions")
    me.axe()
    snapshot("restored")
    assert registry_digest(site, "rita/app", "3.0") == digest
    docker("pull", reference)
    assert f"{site.host}/rita/app@{digest}" in docker.repo_digests(reference)

    page.get_by_label("State").select_option(label="Active")
    page.get_by_role("button", name="Filter").click()
    expect(heading2).to_have_text("1 version")
    expect(rows.locator(".tag")).to_have_text(["3.0"])
    me.axe()


# -- 6. revoke the token docker uses ----------------------------------------------------------------


def test_revoked_token_is_refused_by_docker(
    me: Tab, site: Site, docker_as: Callable[[str], Docker], tmp_path: Path, snapshot: Snapshot
) -> None:
    page = me.page
    sign_in(me, "rex", PASSWORDS["rex"])
    token = generate_token(me, "laptop", expiry="7 days")
    docker = docker_as("rex")
    assert "Login Succeeded" in docker.login(site.host, "rex", token.secret).stdout
    reference = f"{site.host}/rex/cli:1.0"
    docker.build(reference, tmp_path / "context")
    digest = docker.push(reference)

    page.get_by_role("link", name="Back to your tokens").click()
    row = page.locator("table.tokens tbody tr").filter(has_text="laptop")
    expect(row).to_have_count(1)
    prefix = row.locator("td code").inner_text().removesuffix("…")
    me.axe()
    snapshot("before-revoking")
    row.get_by_role("button", name=f"Revoke the token laptop ({prefix}…)").click()
    expect(page).to_have_url(site.url + "/settings/tokens")
    expect(notice(page)).to_have_text(f'Revoked the token "laptop" ({prefix}...): it no longer works.')
    expect(page.locator("table.tokens")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("You have no tokens.")
    expect(page.locator("main")).to_contain_text("1 revoked token is not listed")
    me.axe()

    # docker still holds the token in its config: every use of it is refused, saying why.
    revoked = "unauthorized: the token has been revoked"
    assert site.host in docker.logins()
    docker("tag", reference, f"{site.host}/rex/cli:1.1")
    refused_push = docker.fails("push", f"{site.host}/rex/cli:1.1")
    assert revoked in refused_push.stderr, refused_push.describe()
    docker("rmi", reference, f"{site.host}/rex/cli:1.1")
    refused_pull = docker.fails("pull", reference)
    assert (
        f'Error response from daemon: Head "{site.url}/v2/rex/cli/manifests/1.0": {revoked}' in refused_pull.stderr
    ), refused_pull.describe()
    refused_login = docker.login_refused(site.host, "rex", token.secret)
    assert f'Error response from daemon: Get "{site.url}/v2/": {revoked}' in refused_login.stderr, (
        refused_login.describe()
    )
    assert registry_digest(site, "rex/cli", "1.0") == digest  # the image is still there: only the token is gone
    assert registry_digest(site, "rex/cli", "1.1") is None


# -- 7. the site admin's users page -------------------------------------------------------------------


def test_site_admin_creates_a_user_with_a_password_who_then_signs_in(me: Tab, site: Site, new_tab: OpenTab) -> None:
    page = me.page
    admin, _token = site.server.admin
    sign_in(me, admin, site.server.admin_password)
    page.get_by_role("navigation", name="Site").get_by_role("link", name="Site admin").click()
    expect(page).to_have_url(site.url + "/admin/users")
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    me.axe()

    create = page.get_by_role("region", name="Create a user")
    create.get_by_label("User name").fill("nina")
    create.get_by_label("Password (optional)").fill(NINA)
    create.get_by_label("The same password again").fill(NINA)
    create.get_by_role("button", name="Create user").click()
    expect(page).to_have_url(site.url + "/admin/users")
    expect(notice(page)).to_have_text("Created the user nina, with a password.")
    row = page.locator("table.users tbody tr").filter(has=page.get_by_role("rowheader", name="nina", exact=True))
    expect(row.locator("td").nth(0)).to_have_text("No")  # site admin
    expect(row.locator("td").nth(1)).to_have_text("Active")
    expect(row.locator("td").nth(2)).to_have_text("Yes")  # has a password
    me.axe()

    nina = new_tab("nina")
    sign_in(nina, "nina", NINA)
    expect(nina.page.get_by_role("link", name="Site admin")).to_have_count(0)
    nina.visit("/admin/users", status=404)
    nina.axe()


# -- the new pages at phone width ---------------------------------------------------------------------


@pytest.mark.browser_context(**PHONE)
def test_token_pages_at_phone_width(me: Tab, site: Site, snapshot: Snapshot) -> None:
    sign_in(me, "phil", PASSWORDS["phil"])
    token = generate_token(me, "phone")
    snapshot("token-created", mask=secrets_on(me.page))
    # The token is one long word: it breaks within the screen, whole, and the page does not scroll sideways.
    code = me.page.locator("#new-token")
    expect(code).to_have_text(token.secret)
    box = code.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["viewport"]["width"], box
    no_sideways_scroll(me.page)
    me.page.get_by_role("link", name="Back to your tokens").click()
    expect(me.page.get_by_role("heading", level=1)).to_have_text("Personal access tokens")
    me.axe()
    no_sideways_scroll(me.page)


@pytest.mark.browser_context(**PHONE)
@pytest.mark.parametrize(
    "path",
    [
        "/orgs/harbor/packages/container/phone/settings",
        "/orgs/harbor/packages/container/phone/versions",
        "/orgs/harbor/settings",
    ],
    ids=["package-settings", "versions", "org-settings"],
)
def test_settings_pages_at_phone_width(me: Tab, site: Site, path: str) -> None:
    sign_in(me, "olga", PASSWORDS["olga"])
    me.visit(path)
    me.axe()
    no_sideways_scroll(me.page)


@pytest.mark.browser_context(**PHONE)
def test_admin_users_page_at_phone_width(me: Tab, site: Site) -> None:
    name, _token = site.server.admin
    sign_in(me, name, site.server.admin_password)
    me.visit("/admin/users")
    me.axe()
    no_sideways_scroll(me.page)
