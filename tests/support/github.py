"""Checks shared by the tests of the GitHub-compatible API."""

from __future__ import annotations

import httpx

DOCS = "https://docs.github.com/rest/packages/packages"


def assert_github_error(response: httpx.Response, status: int, *mentions: str) -> str:
    """GitHub's error body, {"message", "documentation_url"}, with `status`; returns the message.

    Where the message must be GitHub's exact words ("Bad credentials"), Portside says what to do in
    `portside_reason`; `mentions` may be in either.
    """
    request = response.request
    assert response.status_code == status, f"{request.method} {request.url}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) - {"portside_reason"} == {"message", "documentation_url"}, body
    assert body["documentation_url"] == DOCS, body
    assert body["message"], body
    said = f"{body['message']} {body.get('portside_reason', '')}"
    for mention in mentions:
        assert mention in said, body
    return str(body["message"])
