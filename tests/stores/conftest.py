"""Every blob store driver, for the contract suite: the filesystem, and S3 (a real SeaweedFS) with
downloads redirected to presigned URLs and streamed by Portside."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portside.blobs import open_store
from portside.blobs.store import BlobStore
from tests.conftest import s3_env, s3_url
from tests.support.seaweed import SeaweedS3


@pytest.fixture(params=["filesystem", "s3-redirect", "s3-stream"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(driver: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if driver == "filesystem":
        return f"file://{tmp_path / 'blobs'}"
    s3: SeaweedS3 = request.getfixturevalue("seaweed")
    for name, value in s3_env(s3).items():
        monkeypatch.setenv(name, value)  # the standard AWS chain; subprocesses inherit it
    return s3_url(s3, f"contract-{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def store(driver: str, store_url: str, tmp_path: Path) -> AsyncIterator[BlobStore]:
    redirect = driver == "s3-redirect" if driver.startswith("s3") else None
    opened = open_store(store_url, tmp_path, redirect=redirect)
    try:
        yield opened
    finally:
        await opened.close()
