"""Browser tests: real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's sync API.

Fixtures:

    browser   one Chromium for all of tests/browser (package scope, see below)
    base_url  the server the test's pages come from: every test module defines it
    guard     collects console errors, uncaught page errors, failed requests and responses >= 400;
              `guard.expect_status(404, path)` allows one the test means to cause
    page      a Playwright Page in a fresh context (relative URLs resolve against base_url); at
              teardown it saves a full-page screenshot to test-output/screenshots/TEST.png, then
              fails the test if the guard collected anything, or if a page it opened was never
              checked with axe
    axe       `axe()` checks the page as it is now with axe-core and fails on any serious or
              critical violation; every result goes to test-output/axe/TEST.json
    visit     `visit(path, status=200)`: open a page and check its status (an error status is
              declared expected)

    snapshot  `snapshot(label, page=None, mask=())`: a full-page screenshot of the page as it is now (a state
              worth looking at before the test moves on), as test-output/screenshots/TEST--LABEL.png;
              `mask` covers secrets (a new token) with a box
    new_tab   `new_tab(label, **options)`: a Tab (page, axe, visit) in another browser context of the same
              test (a second person signed in, say), watched by the same guard; its screenshot is
              test-output/screenshots/TEST-LABEL.png

`@pytest.mark.browser_context(**options)` passes options to browser.new_context (browsing.PHONE, say).

Playwright's sync API keeps its own asyncio loop running in this thread for as long as it lives,
and `asyncio.run()` refuses to start while one is running (tests/unit uses it). So the browser is
package-scoped: Playwright stops after the last browser test, before any later test runs. No test
here may use asyncio itself.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from tests.browser.browsing import (
    CHROMIUM,
    DESKTOP,
    SCREENSHOTS,
    Axe,
    Guard,
    OpenTab,
    Snapshot,
    Tab,
    Visit,
    close_tab,
    open_tab,
    safe_name,
    visitor,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser_context(**options): options for the test's browser context")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test's own body passed (the page fixture's teardown asks)."""
    report = yield
    if report.when == "call":
        item.browser_call_passed = report.passed  # type: ignore[attr-defined]
    return report


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package chromium (bash scripts/test.sh does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def base_url() -> str:
    raise pytest.UsageError("a browser test module must define a `base_url` fixture (its server's URL)")


@pytest.fixture
def guard(base_url: str) -> Guard:
    return Guard(base_url.rstrip("/"))


def context_options(request: pytest.FixtureRequest, base_url: str, **options: Any) -> dict[str, Any]:
    marker = request.node.get_closest_marker("browser_context")
    return {
        "viewport": DESKTOP,
        "locale": "en-US",
        "timezone_id": "UTC",
        "color_scheme": "light",
        **(marker.kwargs if marker else {}),
        **options,
        "base_url": base_url,
    }


@pytest.fixture
def page(browser: Browser, base_url: str, guard: Guard, request: pytest.FixtureRequest) -> Iterator[Page]:
    tab = open_tab(browser, context_options(request, base_url), guard)
    try:
        yield tab
    finally:
        close_tab(tab, request.node.name)
    problems = list(guard.problems)
    if getattr(request.node, "browser_call_passed", False):  # a failed test may not have reached its axe()
        problems += [f"axe never checked {url}: call axe() on every page the test opens" for url in guard.unchecked()]
    if problems:
        pytest.fail("the browser reported problems:\n" + "\n".join(f"  - {p}" for p in problems), pytrace=False)


@pytest.fixture
def new_tab(
    browser: Browser, base_url: str, guard: Guard, page: Page, request: pytest.FixtureRequest
) -> Iterator[OpenTab]:
    """Closed before `page` (which it needs for that), so that page's teardown reports their problems too."""
    with ExitStack() as closing:  # every tab is closed, even when closing another one fails

        def open_another(label: str, **options: Any) -> Tab:
            name = f"{request.node.name}-{label}"
            tab = open_tab(browser, context_options(request, base_url, **options), guard)
            closing.callback(close_tab, tab, name)
            return Tab(tab, Axe(tab, guard, safe_name(name)), visitor(tab, guard))

        yield open_another


@pytest.fixture
def snapshot(page: Page, request: pytest.FixtureRequest) -> Snapshot:
    def take(label: str, tab: Page | None = None, mask: Sequence[Locator] = ()) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{safe_name(request.node.name)}--{safe_name(label)}.png"
        (tab or page).screenshot(path=path, full_page=True, mask=list(mask))

    return take


@pytest.fixture
def axe(page: Page, guard: Guard, request: pytest.FixtureRequest) -> Axe:
    return Axe(page, guard, safe_name(request.node.name))


@pytest.fixture
def visit(page: Page, guard: Guard) -> Visit:
    return visitor(page, guard)
