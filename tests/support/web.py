"""Driving the pages' forms over HTTP as a browser would: cookies, CSRF tokens, redirects."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import httpx

_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def text_of(page: str) -> str:
    """The page's text with tags removed and entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def submit(browser: httpx.Client, page_path: str, action: str, **fields: Any) -> httpx.Response:
    """Open `page_path`, then post its form to `action` with the page's CSRF token and `fields`
    (lists become repeated fields). Redirects are not followed: the caller checks the 303."""
    page = browser.get(page_path)
    assert page.status_code == 200, f"GET {page_path}: {page.status_code} {page.text[:500]}"
    data: list[tuple[str, str]] = [("csrf", csrf_of(page.text))]
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            data.append((key, str(item)))
    return browser.post(action, content=urlencode(data), headers={"Content-Type": "application/x-www-form-urlencoded"})


@contextmanager
def sign_in(base_url: str, username: str, password: str, **client: Any) -> Iterator[httpx.Client]:
    """A client with a session cookie, signed in through the sign-in form."""
    with httpx.Client(base_url=base_url, timeout=60, **client) as browser:
        response = submit(browser, "/login", "/login", username=username, password=password, next="/")
        assert response.status_code == 303, f"sign-in as {username}: {response.status_code} {text_of(response.text)}"
        yield browser
