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

`@pytest.mark.browser_context(**options)` passes options to browser.new_context (browsing.PHONE, say).

Playwright's sync API keeps its own asyncio loop running in this thread for as long as it lives,
and `asyncio.run()` refuses to start while one is running (tests/unit uses it). So the browser is
package-scoped: Playwright stops after the last browser test, before any later test runs. No test
here may use asyncio itself.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Response, sync_playwright

from tests.browser.browsing import CHROMIUM, DESKTOP, SCREENSHOTS, Axe, Guard, Visit, safe_name


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


@pytest.fixture
def page(browser: Browser, base_url: str, guard: Guard, request: pytest.FixtureRequest) -> Iterator[Page]:
    marker = request.node.get_closest_marker("browser_context")
    options: dict[str, Any] = {
        "viewport": DESKTOP,
        "locale": "en-US",
        "timezone_id": "UTC",
        "color_scheme": "light",
        **(marker.kwargs if marker else {}),
        "base_url": base_url,
    }
    context = browser.new_context(**options)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.on("console", guard.on_console)
    tab.on("pageerror", guard.on_page_error)
    tab.on("requestfailed", guard.on_request_failed)
    tab.on("response", guard.on_response)
    tab.on("framenavigated", guard.on_navigated)
    try:
        yield tab
    finally:
        try:
            if tab.url != "about:blank":
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                tab.screenshot(path=SCREENSHOTS / f"{safe_name(request.node.name)}.png", full_page=True)
        finally:
            context.close()
    problems = list(guard.problems)
    if getattr(request.node, "browser_call_passed", False):  # a failed test may not have reached its axe()
        problems += [f"axe never checked {url}: call axe() on every page the test opens" for url in guard.unchecked()]
    if problems:
        pytest.fail("the browser reported problems:\n" + "\n".join(f"  - {p}" for p in problems), pytrace=False)


@pytest.fixture
def axe(page: Page, guard: Guard, request: pytest.FixtureRequest) -> Axe:
    return Axe(page, guard, safe_name(request.node.name))


@pytest.fixture
def visit(page: Page, guard: Guard) -> Visit:
    def open_page(path: str, status: int = 200) -> Response:
        if status >= 400:
            guard.expect_status(status, path)
        response = page.goto(path)
        assert response is not None, path
        assert response.status == status, f"GET {path}: {response.status}, expected {status}"
        return response

    return open_page
