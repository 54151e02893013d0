"""`portside copy-data`: an embedded installation (SQLite and the data directory), populated through
HTTP by a real server, copied into a private PostgreSQL and a real S3 (SeaweedFS), then served from
the copy: every manifest and blob by digest, the old tokens, the grants, a restorable deleted version.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, func, select

from portside.access.accounts import create_user
from portside.blobs import open_store
from portside.metadata.database import Database, head_revision, make_engine, upgrade
from portside.metadata.schema import manifests, metadata, repositories, repository_blobs
from tests.conftest import s3_env, s3_url
from tests.support.blobs import Pushed, digest_of, image_manifest, push_blob, push_image, put_manifest
from tests.support.postgres import PostgresCluster
from tests.support.seaweed import SeaweedS3
from tests.support.server import OUTPUT, Server, free_port, no_server_error, running_server

API = "/api/v3/portside"
# The embedded default whatever backend the rest of the suite runs on: the copy is what moves it.
EMBEDDED = {"PORTSIDE_DATABASE_URL": "", "PORTSIDE_STORAGE_URL": ""}
COMMAND_LOG = OUTPUT / "logs" / "copy-data-commands.log"


@dataclass
class Source:
    data_dir: Path
    credentials: str  # initial-admin-credentials, for the copy's server
    old_pat: str  # the admin's token made through the API
    alice_pat: str  # a member of acme's team devs, which has write on acme/app
    bob_pat: str  # read on acme/app, nothing on octo/tool
    bearer: str  # a registry bearer token the source signed
    manifests: dict[tuple[str, str], bytes]  # (package, digest) -> payload, of live versions
    blobs: dict[tuple[str, str], bytes]  # (package, digest) -> bytes
    deleted: tuple[str, str]  # (package, digest) of the version deleted through the packages API


def _ok(response: httpx.Response, code: int = 200) -> httpx.Response:
    assert response.status_code == code, f"{response.request.url}: {response.status_code} {response.text}"
    return response


def _populate(server: Server) -> Source:
    with server.client(event_hooks={"response": [no_server_error]}) as http:
        for user in ("alice", "bob"):
            _ok(http.post(f"{API}/users", json={"name": user}), 201)
        _ok(http.post(f"{API}/orgs", json={"name": "acme"}), 201)
        _ok(http.put(f"{API}/orgs/acme/members/alice", json={"role": "member"}), 201)
        _ok(http.post(f"{API}/orgs/acme/teams", json={"name": "devs"}), 201)
        _ok(http.put(f"{API}/orgs/acme/teams/devs/members/alice"), 201)
        old_pat = _ok(http.post(f"{API}/user/tokens", json={"note": "old", "scopes": ["read:packages"]}), 201).json()
        for tag, seed in (("v1", "one"), ("v2", "two"), ("latest", "two"), ("old", "old")):
            push_image(http, "acme/app", tag, seed=seed)
        # A layer larger than an S3 part, so the copy goes through a multipart upload too.
        config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(9 * 1024 * 1024 + 5)
        push_blob(http, "octo/tool", config)
        push_blob(http, "octo/tool", layer)
        manifest = image_manifest(config, [layer])
        put_manifest(http, "octo/tool", "big", Pushed(digest_of(manifest), manifest))
        _ok(http.put(f"{API}/packages/acme/app/collaborators/teams/devs", json={"role": "write"}), 201)
        _ok(http.put(f"{API}/packages/acme/app/collaborators/users/bob", json={"role": "read"}), 201)
        versions = _ok(http.get("/api/v3/orgs/acme/packages/container/app/versions")).json()
        old = next(v for v in versions if "old" in v["metadata"]["container"]["tags"])
        _ok(http.delete(f"/api/v3/orgs/acme/packages/container/app/versions/{old['id']}"), 204)
        bearer = _ok(http.get("/token", params={"service": "portside", "scope": "repository:acme/app:pull"}))

        listed = server.read(_contents)
        found_manifests = {(p, d): _ok(http.get(f"/v2/{p}/manifests/{d}")).content for p, d in listed["manifests"]}
        found_blobs = {(p, d): _ok(http.get(f"/v2/{p}/blobs/{d}")).content for p, d in listed["blobs"]}
    return Source(
        data_dir=server.data_dir,
        credentials=(server.data_dir / "initial-admin-credentials").read_text(),
        old_pat=old_pat["token"],
        alice_pat=server.token("alice"),
        bob_pat=server.token("bob", "read:packages"),
        bearer=bearer.json()["token"],
        manifests=found_manifests,
        blobs=found_blobs,
        deleted=("acme/app", old["name"]),
    )


def _contents(conn: Connection) -> dict[str, list[tuple[str, str]]]:
    live = manifests.c.deleted_at.is_(None) & repositories.c.deleted_at.is_(None)
    return {
        "manifests": list(conn.execute(select(repositories.c.name, manifests.c.digest).join(repositories).where(live))),
        "blobs": list(conn.execute(select(repositories.c.name, repository_blobs.c.digest).join(repositories))),
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """The embedded installation, populated and then stopped (copy-data runs on a stopped registry)."""
    with running_server(tmp_path_factory.mktemp("copy-source"), "copy-source", env=EMBEDDED) as server:
        return _populate(server)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    log = OUTPUT / "logs" / "copy-data-postgres.log"
    log.unlink(missing_ok=True)
    with PostgresCluster(tmp_path_factory.mktemp("copy-pg"), log) as pg:
        yield pg


def copy_data(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "portside", "copy-data", "--data-dir", str(data_dir), *args]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, **EMBEDDED, **(env or {})}
    )
    COMMAND_LOG.parent.mkdir(parents=True, exist_ok=True)
    with COMMAND_LOG.open("a") as log:
        shown = re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", " ".join(command))  # the test cluster's password
        log.write(f"$ {shown}\nexit {result.returncode}\n{result.stdout}{result.stderr}\n")
    return result


def _summary(result: subprocess.CompletedProcess[str], code: int = 0) -> dict[str, Any]:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return dict(json.loads(result.stdout))


@dataclass
class Copy:
    database_url: str
    storage_url: str
    env: dict[str, str]
    first: dict[str, Any]


@pytest.fixture(scope="module")
def copy(source: Source, cluster: PostgresCluster, seaweed: SeaweedS3) -> Copy:
    database_url = cluster.create_database("copied")
    storage_url = s3_url(seaweed, f"copy-{uuid.uuid4().hex[:8]}")
    env = s3_env(seaweed)
    args = ["--to-database", database_url, "--to-storage", storage_url, "--json"]
    return Copy(database_url, storage_url, env, _summary(copy_data(source.data_dir, *args, env=env)))


def test_the_summary_counts_every_row_and_blob(source: Source, copy: Copy) -> None:
    tables = {t["table"]: t for t in copy.first["tables"]}
    assert "uploads" not in tables
    assert "uploads" in copy.first["skipped_tables"]
    assert all(t["copied"] == t["rows"] for t in tables.values()), tables
    assert tables["accounts"]["rows"] == 7  # admin, octo, e2e, t, alice, bob; acme
    assert tables["package_grants"]["rows"] >= 2  # with the pushers' own
    assert tables["personal_tokens"]["rows"] == 4  # the admin's two, alice's, bob's
    assert tables["server_keys"]["rows"] >= 2
    distinct = {digest: len(data) for (_, digest), data in source.blobs.items()}
    assert copy.first["blobs_copied"] == len(distinct)
    assert copy.first["bytes_copied"] == sum(distinct.values())
    assert copy.first["blobs_present"] == 0
    assert copy.first["blob_failures"] == []
    assert copy.first["ok"] is True


def test_a_rerun_resumes_and_copies_nothing_twice(source: Source, copy: Copy, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--to-database", copy.database_url, "--to-storage", copy.storage_url, "--json"]
    again = _summary(copy_data(source.data_dir, *args, env=copy.env))
    assert [t["copied"] for t in again["tables"]] == [0] * len(again["tables"])
    assert again["blobs_copied"] == 0
    assert again["blobs_present"] == copy.first["blobs_copied"]

    # As if the first run had stopped before the big layer: a rerun copies that blob, and only it.
    big = max(source.blobs.items(), key=lambda item: len(item[1]))
    for name, value in copy.env.items():
        monkeypatch.setenv(name, value)
    asyncio.run(_delete_blob(copy.storage_url, big[0][1]))
    resumed = _summary(copy_data(source.data_dir, *args, env=copy.env))
    assert (resumed["blobs_copied"], resumed["bytes_copied"]) == (1, len(big[1]))
    assert resumed["blobs_present"] == copy.first["blobs_copied"] - 1


@pytest.mark.parametrize(
    ("phase", "sig"), [("rows", signal.SIGKILL), ("blobs", signal.SIGKILL), ("blobs", signal.SIGINT)]
)
def test_a_copy_killed_midway_completes_when_run_again(
    source: Source, tmp_path: Path, phase: str, sig: signal.Signals
) -> None:
    target = tmp_path / "target"
    database_url = f"sqlite:///{target / 'portside.db'}"
    args = ["--to-database", database_url, "--to-storage", f"file://{target}", "--json"]
    command = [sys.executable, "-m", "portside", "copy-data", "--data-dir", str(source.data_dir), *args]
    env = {**os.environ, **EMBEDDED}
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) as process:
        assert process.stderr is not None
        seen = b""
        while phase.encode() not in seen and process.poll() is None:  # its progress label: the phase has begun
            seen += process.stderr.read(1)
        process.send_signal(sig)
        process.wait(timeout=30)
        said = process.stderr.read().decode()
    if sig == signal.SIGINT and process.returncode != 0:  # (unless it had finished already)
        assert process.returncode == 1
        assert said.strip().endswith("error: interrupted; run the same command again to resume"), said
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            before = {t.name: conn.scalar(select(func.count()).select_from(t)) for t in metadata.sorted_tables}
    finally:
        engine.dispose()
    blobs_before = len(list((target / "blobs").glob("*/*/*")))

    resumed = _summary(copy_data(source.data_dir, *args))
    for table in resumed["tables"]:
        assert table["copied"] == table["rows"] - before[table["table"]], table
    distinct = len({digest for _, digest in source.blobs})
    assert (resumed["blobs_present"], resumed["blobs_copied"]) == (blobs_before, distinct - blobs_before)
    again = _summary(copy_data(source.data_dir, *args))
    assert sum(table["copied"] for table in again["tables"]) + again["blobs_copied"] == 0


def test_the_copy_serves_everything_to_the_old_credentials(
    source: Source, copy: Copy, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = {
        **copy.env,
        "PORTSIDE_DATABASE_URL": copy.database_url,
        "PORTSIDE_STORAGE_URL": copy.storage_url,
        "PORTSIDE_STORAGE_REDIRECT": "false",
    }
    with running_server(tmp_path_factory.mktemp("copy-target"), "copy-target", env=env) as server:
        server.data_dir.joinpath("initial-admin-credentials").write_text(source.credentials)  # no new admin made
        user = server.admin[0]
        hooks = {"response": [no_server_error]}
        with httpx.Client(base_url=server.url, timeout=60, auth=(user, source.old_pat), event_hooks=hooks) as old:
            for (package, digest), payload in source.manifests.items():
                assert _ok(old.get(f"/v2/{package}/manifests/{digest}")).content == payload
            for (package, digest), data in source.blobs.items():
                assert _ok(old.get(f"/v2/{package}/blobs/{digest}")).content == data
        with httpx.Client(base_url=server.url, timeout=60, event_hooks=hooks) as http:
            signed = {"Authorization": f"Bearer {source.bearer}"}  # signed by the source's key
            assert _ok(http.get("/v2/acme/app/tags/list", headers=signed)).json()["tags"] == ["latest", "v1", "v2"]
            # Team and user grants came along: alice writes through team devs, bob only reads acme/app.
            assert _ok(http.post("/v2/acme/app/blobs/uploads/", auth=("alice", source.alice_pat)), 202)
            assert _ok(http.get("/v2/acme/app/tags/list", auth=("bob", source.bob_pat)))
            _ok(http.get("/v2/octo/tool/tags/list", auth=("bob", source.bob_pat)), 404)  # not his to see: not there
        with server.client(event_hooks=hooks) as admin:
            package, digest = source.deleted
            assert admin.get(f"/v2/{package}/manifests/{digest}").status_code == 404
            deleted = _ok(admin.get("/api/v3/orgs/acme/packages/container/app/versions", params={"state": "deleted"}))
            version = next(v for v in deleted.json() if v["name"] == digest)
            _ok(admin.post(f"/api/v3/orgs/acme/packages/container/app/versions/{version['id']}/restore"), 204)
            assert _ok(admin.get(f"/v2/{package}/manifests/old")).headers["docker-content-digest"] == digest
            # New rows get ids past the copied ones (PostgreSQL's sequences were moved along).
            _ok(admin.post(f"{API}/users", json={"name": "carol"}), 201)
            push_image(admin, "acme/after-copy", "v1", seed="after")


def test_a_corrupted_source_blob_is_refused(source: Source, tmp_path: Path) -> None:
    """sqlite -> sqlite and file -> file, on a copy of the source whose layer's bytes were changed."""
    corrupt = tmp_path / "corrupt"
    shutil.copytree(source.data_dir, corrupt)
    (_, digest), data = next((key, data) for key, data in source.blobs.items() if data.startswith(b"layer-"))
    blob_file = corrupt / "blobs" / "sha256" / digest[7:9] / digest[7:]
    blob_file.write_bytes(data[::-1])  # same size, other bytes: only the digest can tell
    target = tmp_path / "target"
    args = ["--to-database", f"sqlite:///{target / 'portside.db'}", "--to-storage", f"file://{target}", "--json"]
    summary = _summary(copy_data(corrupt, *args), code=1)
    assert [f["digest"] for f in summary["blob_failures"]] == [digest]
    assert "digest mismatch" in summary["blob_failures"][0]["reason"]
    assert summary["blobs_copied"] == len({d for _, d in source.blobs}) - 1
    assert not (target / "blobs" / "sha256" / digest[7:9] / digest[7:]).exists()
    assert list((target / "uploads").iterdir()) == []  # the refused bytes were not left behind
    text = copy_data(corrupt, *args[:-1])  # the people's summary says the same
    assert text.returncode == 1
    assert f"failed {digest}: digest mismatch" in text.stdout


def test_either_half_alone(source: Source, tmp_path: Path) -> None:
    """An omitted destination is the installation's own: that half is not copied."""
    rows = _summary(copy_data(source.data_dir, "--to-database", f"sqlite:///{tmp_path / 'rows.db'}", "--json"))
    assert rows["blobs_note"] and rows["blobs_copied"] == 0
    assert all(t["copied"] == t["rows"] for t in rows["tables"])
    stored = _summary(copy_data(source.data_dir, "--to-storage", f"file://{tmp_path / 'blobs'}", "--json"))
    assert stored["rows_note"] and stored["tables"] == []
    assert stored["blobs_copied"] == len({digest for _, digest in source.blobs})
    itself = copy_data(source.data_dir, "--to-storage", f"file://{source.data_dir}")
    assert itself.returncode == 1
    assert "names the installation's own blob storage" in itself.stderr


def test_another_installation_and_an_old_schema_are_refused(source: Source, tmp_path: Path) -> None:
    target = tmp_path / "target"
    database_url = f"sqlite:///{target / 'portside.db'}"
    upgrade(database_url)
    db = Database(make_engine(database_url))
    try:
        db.write_sync(create_user, "someone-else")
    finally:
        db.close()
    other = copy_data(source.data_dir, "--to-database", database_url)
    assert other.returncode == 1, other.stderr
    assert "holds accounts this installation does not have ('someone-else'" in other.stderr

    old = tmp_path / "old"
    shutil.copytree(source.data_dir, old)
    with sqlite3.connect(old / "portside.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0009'")
    behind = copy_data(old, "--to-database", f"sqlite:///{tmp_path / 'fresh.db'}")
    assert behind.returncode == 1, behind.stderr
    assert "schema is at revision 0009" in behind.stderr
    assert "run `portside migrate`" in behind.stderr

    # Migrated but not served since the keys moved into the database: they are still in files.
    with sqlite3.connect(old / "portside.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (head_revision(),))
        conn.execute("DELETE FROM server_keys WHERE purpose = 'token'")
    (old / "token-signing-key.pem").write_text("a key kept in the data directory")
    unmoved = copy_data(old, "--to-database", f"sqlite:///{tmp_path / 'fresh.db'}")
    assert unmoved.returncode == 1, unmoved.stderr
    assert "the token key is still in" in unmoved.stderr


def test_unreachable_destinations_are_one_line(source: Source, tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    database = copy_data(source.data_dir, "--to-database", f"postgresql://portside:x@{nowhere}/portside")
    storage = copy_data(
        source.data_dir,
        "--to-storage",
        f"s3://portside/p?endpoint=http://{nowhere}&region=us-east-1",
        env={"AWS_ACCESS_KEY_ID": "PSNOWHERE", "AWS_SECRET_ACCESS_KEY": "not-a-secret"},
    )
    assert "cannot connect to" in storage.stderr
    for result, what in ((database, "destination database"), (storage, "destination blob storage")):
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"error: the {what} cannot be used"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    neither = copy_data(source.data_dir)
    assert neither.returncode == 2
    assert "--to-database, --to-storage or both" in neither.stderr


async def _delete_blob(storage_url: str, digest: str) -> None:
    store = open_store(storage_url, Path("/nonexistent"))
    try:
        await store.delete(digest)
    finally:
        await store.close()
