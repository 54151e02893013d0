from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portside.metadata.database import upgrade
from tests.support import server as test_servers
from tests.support.postgres import PostgresCluster
from tests.support.seaweed import SeaweedS3
from tests.support.server import OUTPUT, Server, running_server


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


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One real S3 endpoint (SeaweedFS) for the session; each user takes a prefix of its own."""
    log = OUTPUT / "logs" / "seaweed.log"
    log.unlink(missing_ok=True)
    with SeaweedS3(tmp_path_factory.mktemp("seaweed"), log) as s3:
        yield s3


def s3_env(s3: SeaweedS3) -> dict[str, str]:
    """The standard AWS variables that give Portside (and boto3 beside it) the fixture's credentials."""
    return {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}


def s3_url(s3: SeaweedS3, prefix: str) -> str:
    return f"s3://{s3.bucket}/{prefix}?endpoint={s3.endpoint}&region={s3.region}"


@pytest.fixture(scope="session", autouse=True)
def storage_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The blob store of every test server: the data directory, or with PORTSIDE_TEST_STORAGE=s3
    (downloads redirected) or s3-stream (streamed by Portside) a real S3, a prefix per server."""
    backend = os.environ.get("PORTSIDE_TEST_STORAGE", "filesystem")
    if backend == "filesystem":
        yield backend
        return
    if backend not in ("s3", "s3-stream"):
        raise pytest.UsageError(f"PORTSIDE_TEST_STORAGE={backend!r}: use filesystem, s3 or s3-stream")
    s3: SeaweedS3 = request.getfixturevalue("seaweed")
    credentials = s3_env(s3)
    os.environ.update(credentials)  # for tests that open the store themselves (Server.store_call)
    redirect = "true" if backend == "s3" else "false"

    def storage(name: str) -> dict[str, str]:
        prefix = f"{_safe(name)}-{uuid.uuid4().hex[:8]}"
        return {**credentials, "PORTSIDE_STORAGE_URL": s3_url(s3, prefix), "PORTSIDE_STORAGE_REDIRECT": redirect}

    test_servers.STORAGE = storage
    try:
        yield backend
    finally:
        test_servers.STORAGE = None


@pytest.fixture(scope="session", autouse=True)
def database_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The metadata database of every test server: SQLite in its data directory, or with
    PORTSIDE_TEST_DATABASE=postgresql a database of its own in one private PostgreSQL cluster."""
    backend = os.environ.get("PORTSIDE_TEST_DATABASE", "sqlite")
    if backend == "sqlite":
        yield backend
        return
    if backend != "postgresql":
        raise pytest.UsageError(f"PORTSIDE_TEST_DATABASE={backend!r}: use sqlite or postgresql")
    log = OUTPUT / "logs" / "postgres.log"
    log.unlink(missing_ok=True)
    with PostgresCluster(tmp_path_factory.mktemp("postgres"), log) as cluster:
        # Migrated once (`portside migrate`, as an operator does); each server's database is a copy.
        upgrade(cluster.create_database("migrated"))

        def database(name: str) -> dict[str, str]:
            copy = f"t_{uuid.uuid4().hex[:12]}"
            cluster.psql(f'CREATE DATABASE "{copy}" TEMPLATE migrated OWNER portside')
            return {"PORTSIDE_DATABASE_URL": cluster.url_for(copy)}

        test_servers.DATABASE = database
        try:
            yield backend
        finally:
            test_servers.DATABASE = None
