"""The read-only package pages in Chromium, viewed anonymously (a server of this module's own).

alice/hello    public, labelled; tags 1.0, 2.0, latest and one untagged version (4 versions)
acme/multi     public (organization acme, owned by olga); tag 0.9 (amd64), then tag 1.0: an index
               of an amd64 and an arm64 image pushed by digest (4 versions)
alice/secret   private
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.browsing import PHONE, Axe, Visit
from tests.browser.site import Site, running_site

HELLO_LABELS = {
    "org.opencontainers.image.description": "Says hello from a container",
    "org.opencontainers.image.licenses": "Apache-2.0",
    "org.opencontainers.image.source": "https://example.com/alice/hello",
}
HELLO = "/users/alice/packages/container/package/hello"
MULTI_VERSIONS = "/orgs/acme/packages/container/multi/versions"
SECRET = "/users/alice/packages/container/package/secret"


def short(digest: str) -> str:
    return digest[: len("sha256:") + 12]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("browser-pages"), "browser-pages") as site:
        site.users("alice", "olga", orgs={"acme": "olga"})
        for tag in ("1.0", "2.0", None, "latest"):
            site.push("alice/hello", tag, key=f"hello-{tag or 'untagged'}", labels=HELLO_LABELS)
        site.visibility("alice/hello", "public")

        site.push("acme/multi", "0.9", key="multi-0.9")
        amd = site.push("acme/multi", None, key="multi-amd64", arch="amd64")
        arm = site.push("acme/multi", None, key="multi-arm64", arch="arm64")
        site.push_index("acme/multi", "1.0", [(amd, "amd64"), (arm, "arm64")], key="multi-1.0")
        site.visibility("acme/multi", "public")

        site.push("alice/secret", "1.0", key="secret-1.0")
        site.visibility("alice/secret", "private")
        yield site


@pytest.fixture
def base_url(site: Site) -> str:
    return site.url


def test_home_lists_public_packages_newest_first(page: Page, visit: Visit, axe: Axe) -> None:
    visit("/")
    cards = page.locator("li.card")
    expect(cards.get_by_role("heading", level=3).get_by_role("link")).to_have_text(["acme/multi", "alice/hello"])
    hello = cards.filter(has_text="alice/hello")
    expect(hello).to_contain_text("Public")
    expect(hello).to_contain_text("Says hello from a container")
    expect(hello).to_contain_text("4 versions")
    expect(hello.get_by_role("link", name="alice/hello")).to_have_attribute("href", HELLO)
    expect(page.get_by_text("alice/secret")).to_have_count(0)
    expect(page.locator("pre.command")).to_have_count(0)  # the empty state's commands are gone
    axe()


def test_owner_page_lists_the_package_and_searches_by_name(page: Page, visit: Visit, axe: Axe) -> None:
    visit("/users/alice/packages")
    expect(page.get_by_role("heading", level=1)).to_have_text("Packages of alice")
    expect(page.get_by_role("heading", level=2, name="1 package")).to_be_visible()  # secret is not counted
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    cells = rows.first.locator("th, td")
    expect(cells).to_have_text(["hello", "Public", "Says hello from a container", "4", re.compile(r"\d{4}-\d\d-\d\d")])
    expect(rows.first.get_by_role("link", name="hello")).to_have_attribute("href", HELLO)
    axe()

    # The search form, as a person uses it: type, press Enter.
    page.get_by_label("Find a package").fill("nothing-like-this")
    page.get_by_label("Find a package").press("Enter")
    expect(page).to_have_url(re.compile(r"/users/alice/packages\?q=nothing-like-this"))
    expect(page.get_by_role("heading", level=2, name="0 packages")).to_be_visible()
    expect(page.get_by_label("Find a package")).to_have_value("nothing-like-this")
    axe()
    page.get_by_role("link", name="Clear the filters").click()
    expect(page).to_have_url(re.compile(r"/users/alice/packages$"))
    expect(page.locator("table tbody tr")).to_have_count(1)
    axe()


def test_package_page_shows_pull_command_recent_tags_and_links_to_all_versions(
    page: Page, visit: Visit, axe: Axe, site: Site
) -> None:
    visit(HELLO)
    expect(page).to_have_title("alice/hello · Portside")
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^hello\s+Public$"))
    expect(page.locator("p.lead")).to_have_text("Says hello from a container")

    command = page.locator("pre.command")
    expect(command).to_be_visible()
    assert command.inner_text() == f"docker pull {site.host}/alice/hello:latest"

    recent = page.locator("ul.versions > li > a")
    expect(recent).to_have_text(["latest", "2.0", "1.0"])  # tagged only, newest first
    for tag in ("latest", "2.0", "1.0"):
        version = site.version_id("alice/hello", f"hello-{tag}")
        expect(recent.filter(has_text=tag)).to_have_attribute(
            "href", f"/users/alice/packages/container/hello/{version}"
        )

    details = page.get_by_role("region", name="Details")
    expect(details.locator("dt")).to_contain_text(["Owner", "Source", "License", "Total downloads", "Last published"])
    expect(details.get_by_role("link", name="https://example.com/alice/hello")).to_have_attribute(
        "href", "https://example.com/alice/hello"
    )
    expect(details).to_contain_text("Apache-2.0")
    axe()

    page.get_by_role("link", name="View all 4 versions").click()
    expect(page).to_have_url(site.url + "/users/alice/packages/container/hello/versions")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Versions of hello")
    expect(page.get_by_role("heading", level=2, name="4 versions")).to_be_visible()
    axe()


@pytest.mark.browser_context(**PHONE)
def test_package_page_at_phone_width(page: Page, visit: Visit, axe: Axe, site: Site) -> None:
    visit(HELLO)
    assert page.viewport_size == {"width": 390, "height": 844}
    # Nothing makes the whole page scroll sideways (the pull command scrolls within its own box).
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"
    # The two columns stack: Details comes under the install section, as wide as it.
    install = page.locator("section[aria-labelledby=install]").bounding_box()
    details = page.get_by_role("region", name="Details").bounding_box()
    assert install and details
    assert details["y"] >= install["y"] + install["height"], (install, details)
    assert abs(details["x"] - install["x"]) < 1 and abs(details["width"] - install["width"]) < 1, (install, details)
    command = page.locator("pre.command")
    expect(command).to_be_in_viewport()
    assert command.inner_text() == f"docker pull {site.host}/alice/hello:latest"
    axe()


def test_versions_page_shows_platform_images_under_their_index_and_filters(
    page: Page, visit: Visit, axe: Axe, site: Site
) -> None:
    index, amd, arm, lone = (
        short(site.pushed[k].digest) for k in ("multi-1.0", "multi-amd64", "multi-arm64", "multi-0.9")
    )
    rows = page.locator("table tbody tr")
    show = page.get_by_label("Show")

    visit(MULTI_VERSIONS + "?filter=tagged")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Versions of multi")
    expect(show).to_have_value("tagged")
    expect(page.get_by_role("heading", level=2, name="2 versions")).to_be_visible()
    expect(rows.locator("th code")).to_have_text([index, lone])
    axe()

    show.select_option(label="Untagged")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"\?filter=untagged&state=active$"))
    expect(page.get_by_role("heading", level=2, name="2 versions")).to_be_visible()
    expect(rows.locator("th code")).to_have_text([arm, amd])  # newest first
    # Their index is not in this list: each says which one it belongs to.
    expect(rows.filter(has_text="Platform image of")).to_have_text([re.compile(f"Platform image of {index}")] * 2)
    axe()

    show.select_option(label="All versions")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"\?filter=&state=active$"))
    expect(page.get_by_role("heading", level=2, name="4 versions")).to_be_visible()
    expect(rows).to_have_count(4)
    # The index first (newest), its platform images right under it, marked and indented, then 0.9.
    expect(page.locator("table tbody tr.child")).to_have_count(2)
    expect(rows.nth(0)).not_to_have_class("child")
    expect(rows.nth(0).locator("th, td")).to_contain_text([index, "1.0", "multi-platform index"])
    expect(rows.nth(1)).to_have_class("child")
    expect(rows.nth(2)).to_have_class("child")
    children = {
        rows.nth(i).locator("th code").inner_text(): rows.nth(i).locator("td").nth(1).inner_text() for i in (1, 2)
    }
    assert children == {amd: "linux/amd64", arm: "linux/arm64"}
    expect(rows.nth(1).get_by_role("rowheader")).to_contain_text("platform image")  # for screen readers
    expect(rows.nth(3)).not_to_have_class("child")
    expect(rows.nth(3).locator("th, td")).to_contain_text([lone, "0.9", "linux/amd64"])
    index_link = rows.nth(0).locator("th a").bounding_box()
    child_link = rows.nth(1).locator("th a").bounding_box()
    assert index_link and child_link and child_link["x"] > index_link["x"] + 10, "platform images are not indented"
    axe()


def test_version_page_shows_digest_platform_index_and_manifest(page: Page, visit: Visit, axe: Axe, site: Site) -> None:
    arm = site.pushed["multi-arm64"]
    index = site.pushed["multi-1.0"]
    visit(f"/orgs/acme/packages/container/multi/{site.version_id('acme/multi', 'multi-arm64')}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"multi {short(arm.digest)}")
    assert page.locator("pre.command").first.inner_text() == f"docker pull {site.host}/acme/multi@{arm.digest}"
    details = {
        dt.inner_text(): dt.locator("xpath=following-sibling::dd[1]").inner_text()
        for dt in page.locator("main dl").first.locator("dt").all()
    }
    assert details["Digest"].split()[0] == arm.digest  # then its copy button
    expect(page.get_by_role("button", name="Copy the digest", exact=True)).to_be_visible()
    assert details["Media type"] == "application/vnd.oci.image.manifest.v1+json"
    assert details["Platform"] == "linux/arm64"
    assert details["Tags"] == "untagged"
    doc = json.loads(arm.manifest)
    stored = len(arm.manifest) + doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])
    assert details["Size"] == f"{stored} B (manifest, configuration and layers, as stored)"
    expect(page.get_by_role("heading", name="Listed by")).to_be_visible()
    expect(page.locator("#indexes + ul")).to_contain_text(index.digest)
    assert json.loads(page.locator("pre.manifest").inner_text()) == json.loads(arm.manifest)
    crumbs = page.locator("p.crumbs a")
    expect(crumbs).to_have_text(["acme", "multi", "versions"])
    expect(crumbs.last).to_have_attribute("href", MULTI_VERSIONS)
    axe()


def test_private_package_is_a_404_page_for_anonymous_viewers(page: Page, visit: Visit, axe: Axe) -> None:
    visit(SECRET, status=404)
    expect(page).to_have_title("Not found · Portside")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.locator("main")).to_contain_text(
        "The package alice/secret does not exist, or you are not allowed to see it."
    )
    expect(page.get_by_role("heading", level=2, name="What to do next")).to_be_visible()
    expect(page.get_by_role("link", name="Browse public packages")).to_have_attribute("href", "/")
    expect(page.get_by_text("HTTP status 404")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("1.0")  # nothing of the package shows
    axe()


def test_tab_reaches_skip_link_first_then_the_navigation(page: Page, visit: Visit, axe: Axe) -> None:
    visit(HELLO)
    axe()
    focused = page.locator("*:focus")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()  # shown on focus, not left off-screen
    assert skip.evaluate("e => getComputedStyle(e).outlineStyle") != "none", "no focus outline on the skip link"
    page.keyboard.press("Tab")
    site_nav = page.get_by_role("navigation", name="Site")
    expect(site_nav.get_by_role("link", name="Portside")).to_be_focused()
    # The skip link does skip: after it, Tab goes to the first link in the main content.
    page.keyboard.press("Shift+Tab")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(focused).to_have_count(1)
    expect(page.locator("main p.crumbs").get_by_role("link", name="alice")).to_be_focused()
