"""Two stateless replicas over one PostgreSQL database and one S3 prefix (real PostgreSQL, real
SeaweedFS, two real `portside serve` processes): any request can land on either.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from portside.metadata.database import upgrade
from tests.conftest import s3_env, s3_url
from tests.support.blobs import digest_of, push_blob, push_image
from tests.support.postgres import PostgresCluster
from tests.support.seaweed import SeaweedS3
from tests.support.server import OUTPUT, Server, no_server_error, running_server


@dataclass
class Fleet:
    a: Server
    b: Server
    database_url: str

    @property
    def replicas(self) -> tuple[Server, Server]:
        return self.a, self.b


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Fleet]:
    log = OUTPUT / "logs" / "fleet-postgres.log"
    log.unlink(missing_ok=True)
    with PostgresCluster(tmp_path_factory.mktemp("fleet-pg"), log) as cluster:
        url = cluster.create_database("fleet")
        upgrade(url)  # `portside migrate`, once; replicas never migrate PostgreSQL themselves
        env = {
            **s3_env(seaweed),
            "PORTSIDE_DATABASE_URL": url,
            "PORTSIDE_STORAGE_URL": s3_url(seaweed, f"fleet-{uuid.uuid4().hex[:8]}"),
            "PORTSIDE_STORAGE_REDIRECT": "false",
        }
        root = tmp_path_factory.mktemp("fleet")
        with (
            running_server(root / "a", "fleet-a", extra_args=["--workers", "1"], env=env) as a,
            running_server(root / "b", "fleet-b", extra_args=["--workers", "1"], env=env) as b,
        ):
            # The first replica to start made the site admin; the other found it (one database).
            b.data_dir.joinpath("initial-admin-credentials").write_text(
                a.data_dir.joinpath("initial-admin-credentials").read_text()
            )
            yield Fleet(a, b, url)


def _client(server: Server, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60, headers=headers, event_hooks={"response": [no_server_error]})


def _token(server: Server, scope: str, credentials: tuple[str, str]) -> str:
    with _client(server) as http:
        answer = http.get("/token", params={"service": "portside", "scope": scope}, auth=credentials)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])


def test_a_bearer_token_from_one_replica_verifies_on_the_other(fleet: Fleet) -> None:
    user, secret = fleet.a.admin
    token = _token(fleet.a, "repository:octo/fleet-token:pull,push", (user, secret))
    for replica in fleet.replicas:
        with _client(replica, Authorization=f"Bearer {token}") as http:
            assert http.post("/v2/octo/fleet-token/blobs/uploads/").status_code == 202


def test_a_chunked_upload_alternating_replicas(fleet: Fleet) -> None:
    data = hashlib.sha256(b"fleet").digest() * (3 * 1024 * 1024 // 32)  # 3 MiB
    chunks = [data[i : i + 700_000] for i in range(0, len(data), 700_000)]
    with fleet.a.client() as a, fleet.b.client() as b:
        location = httpx.URL(a.post("/v2/octo/fleet-chunks/blobs/uploads/").headers["location"]).path
        offset = 0
        for i, chunk in enumerate(chunks):
            replica = (a, b)[i % 2]
            headers = {
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Type": "application/octet-stream",
            }
            response = replica.patch(location, content=chunk, headers=headers)
            assert response.status_code == 202, response.text
            offset += len(chunk)
            assert response.headers["range"] == f"0-{offset - 1}"
        done = b.put(location, params={"digest": digest_of(data)})
        assert done.status_code == 201, done.text
        for replica in (a, b):
            got = replica.get(f"/v2/octo/fleet-chunks/blobs/{digest_of(data)}")
            assert got.status_code == 200
            assert got.content == data


def test_a_tag_moved_on_one_replica_is_served_moved_by_the_other(fleet: Fleet) -> None:
    with fleet.a.client() as a, fleet.b.client() as b:
        first, _ = push_image(a, "octo/fleet-tags", "latest", seed="one")
        assert b.get("/v2/octo/fleet-tags/manifests/latest").headers["docker-content-digest"] == first
        assert b.get("/v2/octo/fleet-tags/tags/list").json()["tags"] == ["latest"]  # cached on b now
        second, _ = push_image(a, "octo/fleet-tags", "latest", seed="two")
        push_image(a, "octo/fleet-tags", "v2", seed="two")
        assert b.get("/v2/octo/fleet-tags/manifests/latest").headers["docker-content-digest"] == second
        assert b.get("/v2/octo/fleet-tags/tags/list").json()["tags"] == ["latest", "v2"]


def test_a_token_revoked_on_one_replica_is_refused_by_all(fleet: Fleet) -> None:
    pat = fleet.a.token("octo")
    with fleet.a.client() as admin:
        push_blob(admin, "octo/fleet-revoke", b"revoked later")
    for replica in fleet.replicas:
        with _client(replica) as http:
            assert http.get("/v2/octo/fleet-revoke/tags/list", auth=("octo", pat)).status_code == 200
    bearer = _token(fleet.b, "repository:octo/fleet-revoke:pull", ("octo", pat))
    token_id = json.loads(fleet.a.cli("token", "list", "--user", "octo", "--json").stdout)[-1]["id"]
    fleet.a.cli("token", "revoke", str(token_id))
    for replica in fleet.replicas:
        with _client(replica) as http:
            basic = http.get("/v2/octo/fleet-revoke/tags/list", auth=("octo", pat))
            assert basic.status_code == 401, basic.text
            assert "revoked" in basic.json()["errors"][0]["message"]
            refused = http.get("/v2/octo/fleet-revoke/tags/list", headers={"Authorization": f"Bearer {bearer}"})
            assert refused.status_code == 401
            assert "revoked" in refused.json()["errors"][0]["message"]


def test_rotated_keys_keep_old_tokens_valid_on_every_replica(fleet: Fleet) -> None:
    credentials = fleet.a.admin
    before = _token(fleet.a, "repository:octo/fleet-keys:pull,push", credentials)
    rotated = fleet.a.cli("keys", "rotate").stdout
    assert "new token key" in rotated
    shown = fleet.b.cli("keys", "list", "--json").stdout
    rows = [row for row in json.loads(shown) if row["purpose"] == "token"]
    assert len(rows) == 2
    assert sum(row["retired"] is None for row in rows) == 1
    for replica in fleet.replicas:
        with _client(replica, Authorization=f"Bearer {before}") as http:
            assert http.post("/v2/octo/fleet-keys/blobs/uploads/").status_code == 202
