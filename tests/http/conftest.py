"""Fixtures for the HTTP tests: a client that fails on any 5xx, and a repository name per test."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.http.helpers import make_client
from tests.support.server import Server


@pytest.fixture
def client(registry: Server) -> Iterator[httpx.Client]:
    """Like the root fixture, but every response with a 5xx status fails the test."""
    with make_client(registry) as http:
        yield http


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name of this test's own, so tests sharing the session registry never collide."""
    words = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-")
    return f"t/{words}-{uuid.uuid4().hex[:8]}"
