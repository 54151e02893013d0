from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server, running_server


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One registry (2 workers) shared by the tests that only need a working registry."""
    with running_server(
        tmp_path_factory.mktemp("registry"), "registry-session", extra_args=["--workers", "2"]
    ) as server:
        yield server


@pytest.fixture
def fresh_registry(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A registry of the test's own, for tests that restart, crash or reconfigure it."""
    with running_server(tmp_path, _safe(request.node.name), extra_args=["--workers", "1"]) as server:
        yield server


@pytest.fixture
def client(registry: Server) -> Iterator[httpx.Client]:
    with registry.client() as http:
        yield http
