"""Blob downloads from S3: a redirect to a short-lived presigned URL by default (the object store
serves the bytes, as with distribution and Harbor), or streamed by Portside with Range support when
`storage_redirect` is off. HEAD never asks the object store. A real SeaweedFS behind both.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import s3_env, s3_url
from tests.http.helpers import make_client
from tests.support.blobs import digest_of, push_blob
from tests.support.seaweed import SeaweedS3
from tests.support.server import Server, running_server

DATA = hashlib.sha256(b"s3").digest() * 40_000  # 1.25 MiB


def _server(tmp: Path, s3: SeaweedS3, name: str, redirect: bool) -> Iterator[Server]:
    env = {
        **s3_env(s3),
        "PORTSIDE_STORAGE_URL": s3_url(s3, f"{name}-{uuid.uuid4().hex[:8]}"),
        "PORTSIDE_STORAGE_REDIRECT": "true" if redirect else "false",
    }
    with running_server(tmp, name, extra_args=["--workers", "1"], env=env) as server:
        yield server


@pytest.fixture(scope="module")
def redirecting(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Server]:
    yield from _server(tmp_path_factory.mktemp("s3-redirect"), seaweed, "s3-redirect", redirect=True)


@pytest.fixture(scope="module")
def streaming(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Server]:
    yield from _server(tmp_path_factory.mktemp("s3-stream"), seaweed, "s3-stream", redirect=False)


def test_a_download_redirects_to_a_presigned_url(redirecting: Server, seaweed: SeaweedS3) -> None:
    with make_client(redirecting) as client:
        digest = push_blob(client, "t/redirect", DATA)
        response = client.get(f"/v2/t/redirect/blobs/{digest}")
        assert response.status_code == 307
        assert response.headers["docker-content-digest"] == digest
        location = response.headers["location"]
        assert location.startswith(f"{seaweed.endpoint}/{seaweed.bucket}/")
        query = parse_qs(urlsplit(location).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert 0 < int(query["X-Amz-Expires"][0]) <= 900  # short-lived
        assert seaweed.secret_key not in location
        # The object store serves the bytes, ranges included.
        with httpx.Client(trust_env=False) as plain:
            whole = plain.get(location)
            assert whole.status_code == 200
            assert whole.content == DATA
            part = plain.get(location, headers={"Range": "bytes=100-199"})
            assert part.status_code == 206
            assert part.content == DATA[100:200]
        # HEAD answers from the database: no redirect.
        head = client.head(f"/v2/t/redirect/blobs/{digest}")
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(DATA))
        # Unknown blobs and other repositories' blobs are the registry's 404, not a redirect.
        assert client.get(f"/v2/t/redirect/blobs/sha256:{'0' * 64}").status_code == 404
        assert client.get(f"/v2/t/other/blobs/{digest}").status_code == 404


def test_a_following_client_gets_the_exact_bytes(redirecting: Server) -> None:
    with make_client(redirecting) as client:
        digest = push_blob(client, "t/follow", DATA[:5000])
        response = client.get(f"/v2/t/follow/blobs/{digest}", follow_redirects=True)
        assert response.status_code == 200
        assert digest_of(response.content) == digest


def test_streamed_downloads_with_ranges(streaming: Server) -> None:
    with make_client(streaming) as client:
        digest = push_blob(client, "t/stream", DATA)
        whole = client.get(f"/v2/t/stream/blobs/{digest}")
        assert whole.status_code == 200
        assert whole.content == DATA
        assert whole.headers["content-length"] == str(len(DATA))
        assert whole.headers["docker-content-digest"] == digest
        part = client.get(f"/v2/t/stream/blobs/{digest}", headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.content == DATA[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(DATA)}"
        tail = client.get(f"/v2/t/stream/blobs/{digest}", headers={"Range": "bytes=-10"})
        assert tail.status_code == 206
        assert tail.content == DATA[-10:]
        open_ended = client.get(f"/v2/t/stream/blobs/{digest}", headers={"Range": f"bytes={len(DATA) - 3}-"})
        assert open_ended.content == DATA[-3:]
        beyond = client.get(f"/v2/t/stream/blobs/{digest}", headers={"Range": f"bytes={len(DATA)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(DATA)}"
        empty = push_blob(client, "t/stream", b"")
        assert client.get(f"/v2/t/stream/blobs/{empty}").content == b""
