"""The home page of a registry with no public package yet, in Chromium (a server of this module's own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.browsing import Axe, Visit
from tests.browser.site import Site, running_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("browser-empty"), "browser-empty") as site:
        yield site


@pytest.fixture
def base_url(site: Site) -> str:
    return site.url


def test_home_without_public_packages_shows_docker_login_and_push_for_this_host(
    page: Page, visit: Visit, axe: Axe, site: Site
) -> None:
    visit("/")
    expect(page).to_have_title("Packages · Portside")
    expect(page.get_by_role("heading", level=1)).to_have_text("Portside")
    expect(page.get_by_role("heading", name="Public packages")).to_be_visible()
    expect(page.get_by_text("There are no public packages yet.")).to_be_visible()
    command = page.locator("pre.command")
    expect(command).to_be_visible()
    assert command.inner_text() == f"docker login {site.host}\ndocker push {site.host}/OWNER/NAME:TAG"
    expect(page.locator(".card")).to_have_count(0)
    # The header names this host too.
    expect(page.get_by_role("navigation", name="Site")).to_contain_text(site.host)
    axe()


def test_pages_have_a_favicon(page: Page, visit: Visit, axe: Axe) -> None:
    """Browsers fetch the page's icon (or /favicon.ico) on every page: it must not be a 404."""
    visit("/")
    axe()
    declared = page.evaluate("() => document.querySelector('link[rel~=icon]')?.href ?? null")
    icon = declared or "/favicon.ico"
    response = page.request.get(icon)
    assert response.ok, f"the page's icon {icon} answers {response.status}: declare one, or serve /favicon.ico"
    assert response.headers["content-type"].startswith("image/"), response.headers["content-type"]
    fallback = page.request.get("/favicon.ico")  # for pages without the link, such as the API docs
    assert fallback.ok and fallback.headers["content-type"].startswith("image/")
