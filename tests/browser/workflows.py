"""What the workflow tests (test_workflows.py) do again and again: sign in through the form, generate a
token on its page, and drive the real docker engine with a login of one person's own."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.browsing import Tab
from tests.support.commands import Result, run, run_failing
from tests.support.dockerd import Dockerd


def sign_in(tab: Tab, user: str, password: str) -> None:
    """The sign-in form, filled in and sent as a person does; axe checks the form and the page after it."""
    page = tab.page
    tab.visit("/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Portside")
    tab.axe()
    page.get_by_label("Username", exact=True).fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("button", name=f"Sign out {user}")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in", exact=True)).to_have_count(0)
    tab.axe()


@dataclass(frozen=True)
class NewToken:
    secret: str
    note: str
    details: dict[str, str]  # what the page says of it: Scopes, Packages, Expires
    expires: str  # the datetime attribute of its expiry's <time>, UTC
    login_command: str  # the docker login command the page shows


def generate_token(tab: Tab, note: str, scope: str = "write:packages", expiry: str = "90 days") -> NewToken:
    """From any page: Your tokens, Generate a new token, the form filled in by its labels, the token read
    from the one page that shows it."""
    page = tab.page
    heading = page.get_by_role("heading", level=1)
    page.get_by_role("navigation", name="Site").get_by_role("link", name="Your tokens").click()
    expect(heading).to_have_text("Personal access tokens")
    tab.axe()
    page.get_by_role("link", name="Generate a new token").click()
    expect(heading).to_have_text("New personal access token")
    tab.axe()
    page.get_by_label("Note", exact=True).fill(note)
    expect(page.get_by_label("read:packages", exact=True)).to_be_checked()  # the default scope
    page.get_by_label(scope, exact=True).check()
    expect(page.get_by_label("30 days", exact=True)).to_be_checked()  # the default expiry
    page.get_by_label(expiry, exact=True).check()
    expect(page.get_by_label("30 days", exact=True)).not_to_be_checked()
    page.get_by_role("button", name="Generate token").click()
    expect(heading).to_have_text(f"Your new token “{note}”")
    expect(page.locator("main .warning")).to_contain_text("This is the only time it is shown")
    tab.axe()
    secret = page.locator("#new-token").inner_text()
    assert re.fullmatch(r"\S{20,}", secret), f"not a token: {secret!r}"
    terms = page.locator("main dl dt")
    details = {dt.inner_text(): dt.locator("xpath=following-sibling::dd[1]").inner_text() for dt in terms.all()}
    return NewToken(
        secret=secret,
        note=note,
        details=details,
        expires=page.locator("main dl dd time").get_attribute("datetime") or "",
        login_command=page.locator("#docker-login + .command-row code").inner_text(),
    )


class Docker:
    """The module's docker engine, with a DOCKER_CONFIG (so a login) of one person's own."""

    def __init__(self, daemon: Dockerd, config: Path) -> None:
        config.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.env = {**daemon.env, "DOCKER_CONFIG": str(config)}

    def __call__(self, *args: str | Path) -> Result:
        return run(["docker", *args], env=self.env)

    def fails(self, *args: str | Path) -> Result:
        return run_failing(["docker", *args], env=self.env)

    def login(self, host: str, user: str, token: str) -> Result:
        return run(["docker", "login", host, "-u", user, "--password-stdin"], env=self.env, stdin=token.encode())

    def login_refused(self, host: str, user: str, token: str) -> Result:
        result = run(
            ["docker", "login", host, "-u", user, "--password-stdin"], env=self.env, stdin=token.encode(), check=False
        )
        assert result.returncode != 0, f"docker login unexpectedly succeeded:\n{result.describe()}"
        return result

    def build(self, reference: str, context: Path) -> None:
        """A tiny image FROM scratch with one file whose content is unique to `context` (no network needed)."""
        context.mkdir(parents=True, exist_ok=True)
        (context / "hello.txt").write_text(f"hello from {reference} ({context})\n", encoding="utf-8")
        (context / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n", encoding="utf-8")
        self("build", "-t", reference, context)

    def push(self, reference: str) -> str:
        """`docker push`, returning the digest it reports ("TAG: digest: sha256:… size: N")."""
        output = self("push", reference).stdout
        match = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", output)
        assert match, f"no digest in docker push output:\n{output}"
        return match[1]

    def repo_digests(self, reference: str) -> list[str]:
        return self("image", "inspect", "--format", '{{join .RepoDigests "\\n"}}', reference).stdout.split()

    def logins(self) -> dict[str, object]:
        """The registries this config holds credentials for (docker writes config.json on the first login)."""
        config = self.config / "config.json"
        return json.loads(config.read_text()).get("auths", {}) if config.exists() else {}

    def has_image(self, reference: str) -> bool:
        return run(["docker", "image", "inspect", reference], env=self.env, check=False).returncode == 0
