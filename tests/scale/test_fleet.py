"""Two stateless replicas over one PostgreSQL database and one S3 prefix (real PostgreSQL, real
SeaweedFS, two real `portside serve` processes), behind Debian's nginx running the repository's own
site (deploy/nginx/): any request can land on either, real clients go through the balancer, and the
fleet rides out a replica killed mid-push and PostgreSQL restarted under load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from portside.metadata.database import upgrade
from tests.conftest import s3_env, s3_url
from tests.support.blobs import digest_of, push_blob, push_image
from tests.support.commands import require, run
from tests.support.dockerd import Dockerd, running_dockerd
from tests.support.images import build_test_layout
from tests.support.nginx import Nginx, running_nginx
from tests.support.postgres import PostgresCluster
from tests.support.seaweed import SeaweedS3
from tests.support.server import OUTPUT, Server, no_server_error, running_server


@dataclass
class Fleet:
    a: Server
    b: Server
    database_url: str
    proxy: Nginx
    postgres: PostgresCluster

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
            "PORTSIDE_TRUSTED_PROXIES": "127.0.0.1",  # nginx's X-Forwarded-Proto is believed
            "PORTSIDE_DOWNLOAD_FLUSH_SECONDS": "0.5",
        }
        root = tmp_path_factory.mktemp("fleet")
        with (
            running_server(root / "a", "fleet-a", extra_args=["--workers", "1"], env=env) as a,
            running_server(root / "b", "fleet-b", extra_args=["--workers", "1"], env=env) as b,
            running_nginx(root / "nginx", [a.host, b.host], "fleet-nginx") as proxy,
        ):
            # The first replica to start made the site admin; the other found it (one database).
            b.data_dir.joinpath("initial-admin-credentials").write_text(
                a.data_dir.joinpath("initial-admin-credentials").read_text()
            )
            yield Fleet(a, b, url, proxy, cluster)


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


# -- through the balancer ----------------------------------------------------------------------


def test_the_balancer_spreads_requests_and_the_replicas_answer_with_its_https_urls(fleet: Fleet) -> None:
    with fleet.proxy.client() as anonymous:
        challenge = anonymous.get("/v2/")
        assert challenge.status_code == 401
        assert f'realm="{fleet.proxy.url}/token"' in challenge.headers["www-authenticate"]
    before = len(fleet.proxy.access_log())
    with fleet.proxy.client(auth=fleet.a.admin) as http:
        started = http.post("/v2/octo/fleet-proxy/blobs/uploads/")
        assert started.status_code == 202
        assert started.headers["location"].startswith(f"{fleet.proxy.url}/v2/octo/fleet-proxy/blobs/uploads/")
        for _ in range(6):
            assert http.get("/v2/").status_code == 200
    answered_by = {line.split()[-1] for line in fleet.proxy.access_log()[before:]}
    assert answered_by == {fleet.a.host, fleet.b.host}


def test_skopeo_copies_in_and_out_through_the_balancer(fleet: Fleet, tmp_path: Path) -> None:
    layout = build_test_layout(tmp_path / "layout", seed="fleet-skopeo")
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "ca.crt").write_bytes(fleet.proxy.cert.read_bytes())
    user, secret = fleet.a.admin
    target = f"docker://{fleet.proxy.host}/octo/fleet-skopeo"
    creds = f"{user}:{secret}"
    run(["skopeo", "copy", "--all", "--dest-cert-dir", trust, "--dest-creds", creds, layout.ref("multi"), target])
    out = tmp_path / "out"
    pinned = f"{target}@{layout.index_digest}"
    run(["skopeo", "copy", "--all", "--src-cert-dir", trust, "--src-creds", creds, pinned, f"oci:{out}:copied"])
    copied = {p.name: p.read_bytes() for p in (out / "blobs" / "sha256").iterdir()}
    original = {p.name: p.read_bytes() for p in (layout.root / "blobs" / "sha256").iterdir()}
    assert copied == original
    for replica in fleet.replicas:
        with replica.client() as http:
            assert http.head(f"/v2/octo/fleet-skopeo/manifests/{layout.index_digest}").status_code == 200


@pytest.fixture
def fleet_docker(fleet: Fleet, tmp_path: Path) -> Iterator[Dockerd]:
    """A private docker engine that trusts the balancer's certificate and is signed in through it."""
    binary = require("dockerd")
    require("docker")
    # dockerd reads registry CAs from /etc/docker/certs.d/HOST:PORT only; this port's directory is
    # the test's own and goes with it.
    certs = Path("/etc/docker/certs.d") / fleet.proxy.host
    certs.mkdir(parents=True, exist_ok=True)
    # A short base: containerd's socket under it must fit a unix socket path (108 bytes).
    base = Path(tempfile.mkdtemp(prefix="dk-fleet-"))
    try:
        (certs / "ca.crt").write_bytes(fleet.proxy.cert.read_bytes())
        with running_dockerd(base, binary, name="dockerd-fleet") as daemon:
            user, secret = fleet.a.admin
            login = ["docker", "login", "-u", user, "--password-stdin", fleet.proxy.host]
            run(login, env=daemon.env, stdin=secret.encode())
            yield daemon
    finally:
        shutil.rmtree(certs, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def test_docker_pushes_and_pulls_through_the_balancer(fleet: Fleet, fleet_docker: Dockerd, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "payload").write_bytes(os.urandom(3 * 1024 * 1024))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n", encoding="utf-8")
    image = f"{fleet.proxy.host}/octo/fleet-docker:v1"
    env = fleet_docker.env
    run(["docker", "build", "-t", image, str(context)], env=env)
    built = run(["docker", "image", "inspect", "--format", "{{.Id}}", image], env=env).stdout.strip()
    run(["docker", "push", image], env=env)
    pinned = run(["docker", "image", "inspect", "--format", "{{index .RepoDigests 0}}", image], env=env).stdout.strip()
    run(["docker", "rmi", image], env=env)
    run(["docker", "pull", pinned], env=env)
    assert run(["docker", "image", "inspect", "--format", "{{.Id}}", pinned], env=env).stdout.strip() == built
    digest = pinned.split("@", 1)[1]
    for replica in fleet.replicas:
        with replica.client() as http:
            assert http.head(f"/v2/octo/fleet-docker/manifests/{digest}").status_code == 200


def test_download_counts_from_every_replica_add_up(fleet: Fleet) -> None:
    with fleet.a.client() as a, fleet.b.client() as b:
        digest, _ = push_image(a, "octo/fleet-counts", "v1", seed="counts")
        for replica, pulls in ((a, 3), (b, 4)):
            for _ in range(pulls):
                assert replica.get("/v2/octo/fleet-counts/manifests/v1").status_code == 200

        def count() -> int:
            versions = a.get("/api/v3/users/octo/packages/container/fleet-counts/versions")
            assert versions.status_code == 200, versions.text
            return next(int(v["portside"]["download_count"]) for v in versions.json() if v["name"] == digest)

        deadline = time.monotonic() + 10  # the flush interval is 0.5 s on this fleet
        while count() < 7 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert count() == 7
        time.sleep(1.0)  # two more flush intervals: nothing is counted twice
        assert count() == 7


# -- faults ------------------------------------------------------------------------------------


def test_a_replica_killed_mid_push_the_client_finishes_on_the_other(fleet: Fleet) -> None:
    part = 8 * 1024 * 1024
    data = os.urandom(3 * part)
    with fleet.proxy.client(auth=fleet.a.admin, event_hooks={"response": [no_server_error]}) as proxy:
        kept, _ = push_image(proxy, "octo/fleet-kill", "kept", seed="kept before the kill")
        with fleet.a.client() as a:
            location = httpx.URL(a.post("/v2/octo/fleet-kill/blobs/uploads/").headers["location"]).path
            first = a.patch(location, content=data[:part], headers={"Content-Type": "application/octet-stream"})
            assert first.status_code == 202  # acknowledged on a

            def dies_half_way() -> Iterator[bytes]:
                yield data[part : part + part // 2]
                fleet.a.kill()  # kill -9 while this request's body is on its way to a
                yield data[part + part // 2 : 2 * part]

            with pytest.raises(httpx.TransportError):
                a.patch(location, content=dies_half_way(), headers={"Content-Type": "application/octet-stream"})
        try:
            # The client asks the balancer where the upload stands: b answers from the database.
            status = proxy.get(location)
            assert status.status_code == 204
            assert status.headers["range"] == f"0-{part - 1}"
            # a held the upload's lease when it died: b refuses to write until the lease lapses
            # (416 with the acknowledged range, so the client knows where to resume), then takes it.
            deadline = time.monotonic() + 30
            while True:
                rest = proxy.patch(
                    location,
                    content=data[part:],
                    headers={"Content-Type": "application/octet-stream", "Content-Range": f"{part}-{len(data) - 1}"},
                )
                if rest.status_code != 416 or time.monotonic() > deadline:
                    break
                assert rest.headers["range"] == f"0-{part - 1}"
                time.sleep(1)
            assert rest.status_code == 202, rest.text
            done = proxy.put(location, params={"digest": digest_of(data)})
            assert done.status_code == 201, done.text
            assert proxy.get(f"/v2/octo/fleet-kill/blobs/{digest_of(data)}").content == data
            assert proxy.get("/v2/octo/fleet-kill/manifests/kept").headers["docker-content-digest"] == kept
        finally:
            fleet.a.start()
    with fleet.a.client() as a:
        assert a.get(f"/v2/octo/fleet-kill/blobs/{digest_of(data)}").content == data


def test_postgresql_restarted_under_load_answers_503_then_recovers(fleet: Fleet) -> None:
    with fleet.proxy.client(auth=fleet.a.admin) as proxy:
        pushed, _ = push_image(proxy, "octo/fleet-pg", "v1", seed="before the restart")
    stop = threading.Event()
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    acknowledged: dict[str, bytes] = {}

    def judge(answer: httpx.Response, ok: int) -> None:
        statuses[answer.status_code] += 1
        if answer.status_code == 503:
            error = answer.json()["errors"][0]
            if error["code"] != "UNAVAILABLE" or not error["message"] or "retry-after" not in answer.headers:
                wrong.append(f"{answer.request.method} {answer.request.url.path}: 503 {answer.text}")
        elif answer.status_code != ok:
            wrong.append(f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text}")

    def pull() -> None:
        with fleet.proxy.client(auth=fleet.a.admin) as http:
            while not stop.is_set():
                judge(http.get("/v2/octo/fleet-pg/manifests/v1"), 200)

    def push() -> None:
        with fleet.proxy.client(auth=fleet.a.admin) as http:
            while not stop.is_set():
                data = os.urandom(4096)
                digest = digest_of(data)
                answer = http.post("/v2/octo/fleet-pg/blobs/uploads/", params={"digest": digest}, content=data)
                judge(answer, 201)
                if answer.status_code == 201:
                    acknowledged[digest] = data

    workers = [threading.Thread(target=pull), threading.Thread(target=pull), threading.Thread(target=push)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1)
        fleet.postgres.stop()
        time.sleep(1)
        with fleet.a.client() as a:
            ready = a.get("/readyz")
            assert ready.status_code == 503
            assert "database" in ready.text
            assert a.get("/healthz").status_code == 200
        time.sleep(1)
        fleet.postgres.start()
        recovered = time.monotonic() + 20
        for replica in fleet.replicas:
            with replica.client() as http:
                while http.get("/v2/octo/fleet-pg/manifests/v1").status_code != 200:
                    assert time.monotonic() < recovered, f"{replica.host} did not recover within 20 s"
                    time.sleep(0.2)
                assert http.get("/readyz").status_code == 200
        time.sleep(1)  # the load goes on against the recovered fleet
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    assert not wrong, wrong[:5]
    assert statuses[503] > 0, f"no request saw the outage: {statuses}"
    for replica in fleet.replicas:  # once per outage (a query may get through while it shuts down), no tracebacks
        log = replica.log_path.read_text()
        outages, ends = log.count("the database is unavailable"), log.count("database unavailable: resolved")
        assert outages == ends and outages <= 3, f"{outages} outages logged, {ends} ends: {replica.log_path}"
        assert "Traceback" not in log, replica.log_path
    assert statuses[200] > 0 and statuses[201] > 0, statuses
    with fleet.b.client() as http:
        assert http.get("/v2/octo/fleet-pg/manifests/v1").headers["docker-content-digest"] == pushed
        for digest, data in acknowledged.items():
            assert http.get(f"/v2/octo/fleet-pg/blobs/{digest}").content == data
