"""What the browser fixtures (conftest.py) are made of: the guard, the axe-core check, the settings."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Frame, Locator, Page, Request, Response

from tests.support.server import OUTPUT, ROOT

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright never downloads a browser here
AXE_JS = ROOT / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"  # scripts/test.sh installs it
SCREENSHOTS = OUTPUT / "screenshots"
AXE_RESULTS = OUTPUT / "axe"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA (what accessibility law and procurement ask for: EN 301 549,
# Section 508, the ADA rules), plus axe's best practices (landmarks, one h1, heading order, skip-link
# targets), which catch structure problems WCAG words only loosely. Not AAA (not a goal of these
# pages; e.g. 7:1 contrast) and not "experimental" (rules still changing, false positives).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
FAILING_IMPACTS = ("serious", "critical")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]


@dataclass
class Guard:
    """What went wrong in the browser while the test ran, other than what it said to expect."""

    base_url: str
    problems: list[str] = field(default_factory=list)
    expected: set[tuple[str, int]] = field(default_factory=set)
    opened: list[str] = field(default_factory=list)  # documents shown in the tab, without #fragment
    checked: set[str] = field(default_factory=set)  # documents axe ran on

    def expect_status(self, status: int, path: str) -> None:
        """The test means to cause this response (a 404 page, say): neither it nor its console line is a problem."""
        self.expected.add((urljoin(self.base_url + "/", path), status))

    def _expected(self, url: str, status: int) -> bool:
        return (url, status) in self.expected

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        caused = re.match(r"Failed to load resource: the server responded with a status of (\d+)", message.text)
        if caused and self._expected(url, int(caused.group(1))):
            return
        self.problems.append(f"console error: {message.text} (at {url or 'unknown'})")

    def on_page_error(self, error: Exception) -> None:
        self.problems.append(f"uncaught error in the page: {error}")

    def on_request_failed(self, request: Request) -> None:
        self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def on_response(self, response: Response) -> None:
        if response.status >= 400 and not self._expected(response.url, response.status):
            self.problems.append(f"unexpected status {response.status}: {response.request.method} {response.url}")

    def on_navigated(self, frame: Frame) -> None:
        url = frame.url.split("#", 1)[0]
        if frame.parent_frame is None and url != "about:blank" and url not in self.opened:
            self.opened.append(url)

    def unchecked(self) -> list[str]:
        return [url for url in self.opened if url not in self.checked]


def describe(violation: dict[str, Any]) -> str:
    nodes = "\n".join(
        f"      {' '.join(map(str, node['target']))}  {node['html'][:120]}" for node in violation["nodes"]
    )
    return f"{violation['id']} ({violation['impact']}): {violation['help']} ({violation['helpUrl']})\n{nodes}"


class Axe:
    """`axe()` checks the page as it is now with axe-core (AXE_TAGS); serious or critical violations fail the test."""

    def __init__(self, page: Page, guard: Guard, name: str) -> None:
        self.page, self.guard, self.name = page, guard, name
        self.runs: list[dict[str, Any]] = []
        (AXE_RESULTS / f"{name}.json").unlink(missing_ok=True)  # no results of an earlier run

    def __call__(self) -> list[dict[str, Any]]:
        """Returns every violation (minor and moderate ones too); all are saved to test-output/axe/TEST.json."""
        if not AXE_JS.exists():
            pytest.fail(f"{AXE_JS} is missing: bash scripts/test.sh installs axe-core from npm", pytrace=False)
        if not self.page.evaluate("() => typeof window.axe === 'object'"):
            self.page.add_script_tag(path=AXE_JS)
        results = self.page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})", AXE_TAGS
        )
        violations: list[dict[str, Any]] = results["violations"]
        self.guard.checked.add(self.page.url.split("#", 1)[0])
        self.runs.append({"url": self.page.url, "axe": results["testEngine"]["version"], "violations": violations})
        AXE_RESULTS.mkdir(parents=True, exist_ok=True)
        (AXE_RESULTS / f"{self.name}.json").write_text(json.dumps(self.runs, indent=1))
        failing = [v for v in violations if v["impact"] in FAILING_IMPACTS]
        if failing:
            pytest.fail(
                f"axe-core: {len(failing)} serious or critical violation(s) on {self.page.url}:\n"
                + "\n".join(f"  - {describe(v)}" for v in failing),
                pytrace=False,
            )
        return violations


class Visit(Protocol):
    def __call__(self, path: str, status: int = 200) -> Response: ...


def open_tab(browser: Browser, options: dict[str, Any], guard: Guard) -> Page:
    """A page in a browser context of its own (its own cookies: one person), watched by the guard."""
    context = browser.new_context(**options)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.on("console", guard.on_console)
    tab.on("pageerror", guard.on_page_error)
    tab.on("requestfailed", guard.on_request_failed)
    tab.on("response", guard.on_response)
    tab.on("framenavigated", guard.on_navigated)
    return tab


def close_tab(tab: Page, name: str) -> None:
    """Save a full-page screenshot as test-output/screenshots/NAME.png, then close the tab's context."""
    try:
        if tab.url != "about:blank":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=SCREENSHOTS / f"{safe_name(name)}.png", full_page=True)
    finally:
        tab.context.close()


def visitor(page: Page, guard: Guard) -> Visit:
    """`visit(path, status=200)` for this page: open it and check its status (an error status is declared)."""

    def open_page(path: str, status: int = 200) -> Response:
        if status >= 400:
            guard.expect_status(status, path)
        response = page.goto(path)
        assert response is not None, path
        assert response.status == status, f"GET {path}: {response.status}, expected {status}"
        return response

    return open_page


@dataclass
class Tab:
    """Another browser context in the same test (a second person): its page, axe and visit."""

    page: Page
    axe: Axe
    visit: Visit


class OpenTab(Protocol):
    def __call__(self, label: str, **options: Any) -> Tab: ...


class Snapshot(Protocol):
    def __call__(self, label: str, page: Page | None = None, mask: Sequence[Locator] = ()) -> None: ...


# Every element that reaches past the right edge of the screen, whether a box scrolls it or not: an
# absolutely positioned one escapes a scrolling box whose position is static, and widens the page.
STICKING_OUT = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const element of document.querySelectorAll("body *")) {
    const right = element.getBoundingClientRect().right;
    if (right <= width + 1) continue;
    const classes = element.className ? "." + String(element.className).split(" ").join(".") : "";
    const name = element.tagName.toLowerCase() + classes;
    out.push(`${name} (${getComputedStyle(element).position}) reaches x=${Math.round(right)}: ` +
             JSON.stringify((element.textContent || "").trim().slice(0, 60)));
  }
  return out;
}"""


def no_sideways_scroll(page: Page) -> None:
    """Nothing makes the whole page scroll sideways (a wide table may scroll within its own box)."""
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    if widths[0] > widths[1]:
        culprits = [line for line in page.evaluate(STICKING_OUT) if "(absolute)" in line] or page.evaluate(STICKING_OUT)
        pytest.fail(
            f"{page.url} is {widths[0]} px wide on a {widths[1]} px screen; sticking out:\n"
            + "\n".join(f"  - {line}" for line in culprits[:6]),
            pytrace=False,
        )
