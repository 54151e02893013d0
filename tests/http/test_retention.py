"""Retention policies through the management API and the command line, against a real server:
settings and who may change them, a preview and a run over a package with a multi-platform index,
referrers, shared digests, protected and recently pulled versions, and the scheduled run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, select, update

from portside.clock import now
from portside.metadata.schema import manifests
from tests.support.blobs import digest_of, image_manifest, push_blob
from tests.support.server import Server, running_server

OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
API = "/api/v3/portside"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"PORTSIDE_RETENTION_INTERVAL_SECONDS": "86400", "PORTSIDE_DOWNLOAD_FLUSH_SECONDS": "0.2"}
    with running_server(tmp_path_factory.mktemp("retention"), "retention", env=env) as running:
        yield running


def _push(client: httpx.Client, name: str, tag: str | None, seed: str, **extra: object) -> str:
    """Push an image, by tag or (None) by digest only: an untagged version."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer-{seed}".encode()
    push_blob(client, name, config)
    push_blob(client, name, layer)
    manifest = image_manifest(config, [layer], **extra)
    ref = tag or digest_of(manifest)
    answer = client.put(f"/v2/{name}/manifests/{ref}", content=manifest, headers={"Content-Type": OCI})
    assert answer.status_code == 201, answer.text
    return digest_of(manifest)


def _index(client: httpx.Client, name: str, tag: str, children: list[str]) -> str:
    entries = []
    for child in children:
        size = int(client.head(f"/v2/{name}/manifests/{child}", headers={"Accept": OCI}).headers["content-length"])
        entries.append({"mediaType": OCI, "digest": child, "size": size})
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}).encode()
    answer = client.put(f"/v2/{name}/manifests/{tag}", content=index, headers={"Content-Type": INDEX})
    assert answer.status_code == 201, answer.text
    return digest_of(index)


def _age(server: Server, digest: str, days: float) -> None:
    def change(conn: Connection) -> None:
        conn.execute(update(manifests).where(manifests.c.digest == digest).values(created_at=now() - timedelta(days)))

    server.write(change)


def _payload(server: Server, digest: str) -> bytes:
    """A manifest's bytes without a pull (a GET would count as one and keep it)."""

    def read(conn: Connection) -> bytes:
        return bytes(conn.execute(select(manifests.c.payload).where(manifests.c.digest == digest)).scalar_one())

    return server.read(read)


def _by_digest(body: dict[str, Any], side: str) -> dict[str, str]:
    return {entry["digest"]: entry["reason"] for entry in body[side]}


def test_settings_validation_and_who_may_change_them(server: Server) -> None:
    with server.client() as admin:
        _push(admin, "octo/ret-settings", "v1", seed="settings")
        url = f"{API}/packages/octo/ret-settings/retention"
        empty = admin.get(url)
        assert empty.status_code == 200
        assert empty.json() == {
            "package": "octo/ret-settings",
            "policy": None,
            "owner_default": None,
            "effective": None,
            "effective_from": "none",
        }
        bad = admin.put(url, json={"keep_last_tagged": -3})
        assert bad.status_code == 400
        assert "keep_last_tagged must be a whole number" in bad.json()["message"]
        unknown = admin.put(url, json={"keep_last": 3})
        assert unknown.status_code == 400
        assert "unknown field 'keep_last'" in unknown.json()["message"]
        default = admin.put(f"{API}/users/octo/retention", json={"delete_untagged_after_days": 14})
        assert default.status_code == 200, default.text
        assert default.json()["policy"]["delete_untagged_after_days"] == 14
        inherited = admin.get(url).json()
        assert inherited["effective_from"] == "owner"
        assert inherited["effective"]["delete_untagged_after_days"] == 14
        body = {"keep_last_tagged": 10, "protected_tags": ["latest", "v*"], "delete_untagged_after_days": 7}
        own = admin.put(url, json=body)
        assert own.status_code == 200, own.text
        assert own.json()["effective_from"] == "package"
        assert own.json()["effective"]["protected_tags"] == ["latest", "v*"]
        server.cli("package", "grant", "octo/ret-settings", "--role", "read", "--user", "t")
    reader = ("t", server.token("t"))
    with httpx.Client(base_url=server.url, auth=reader) as http:
        assert http.get(url).status_code == 200  # who may pull may read it
        refused = http.put(url, json={"keep_last_tagged": 1})
        assert refused.status_code == 403
        assert "admin" in refused.json()["message"]
        assert http.post(url + "/run").status_code == 403
        assert http.post(url + "/preview").status_code == 200
    with server.client() as admin:
        assert admin.delete(url).json()["effective_from"] == "owner"
        assert admin.delete(f"{API}/users/octo/retention").json()["policy"] is None


def test_preview_and_run_keep_what_belongs_to_kept_versions(server: Server) -> None:
    name = "octo/ret-table"
    with server.client() as client:
        old = [_push(client, name, f"build-{i}", seed=f"build-{i}") for i in range(1, 4)]  # oldest first
        latest = _push(client, name, "build-4", seed="build-4")
        assert (
            client.put(  # one digest, two tags: a protected one keeps it (Harbor #8717)
                f"/v2/{name}/manifests/latest",
                content=_payload(server, old[0]),
                headers={"Content-Type": OCI},
            ).status_code
            == 201
        )
        amd64 = _push(client, name, None, seed="amd64")
        arm64 = _push(client, name, None, seed="arm64")
        index = _index(client, name, "multi-1", [amd64, arm64])
        signature = _push(
            client,
            name,
            None,
            seed="sig",
            subject={
                "mediaType": INDEX,
                "digest": index,
                "size": len(_payload(server, index)),
            },
        )
        stray = _push(client, name, None, seed="stray")
        pulled = old[1]
        for digest in (amd64, arm64, signature, stray):
            _age(server, digest, 30)
        assert client.get(f"/v2/{name}/manifests/{pulled}").status_code == 200  # a pull today
        time.sleep(1.0)  # the pull is written with the download counts
        policy = {
            "keep_last_tagged": 3,  # the index, `latest` (tagged last) and build-4
            "tag_pattern": "*",
            "protected_tags": ["latest"],
            "delete_untagged_after_days": 7,
            "keep_pulled_within_days": 3,
        }
        assert client.put(f"{API}/packages/{name}/retention", json=policy).status_code == 200
        preview = client.post(f"{API}/packages/{name}/retention/preview")
        assert preview.status_code == 200, preview.text
        body = preview.json()
        deleting, keeping = _by_digest(body, "delete"), _by_digest(body, "keep")
        assert set(deleting) == {old[2], stray}
        assert deleting[old[2]] == "tagged build-3, older than the 3 most recently tagged matching *"
        assert deleting[stray] == "untagged, pushed more than 7 days ago"
        assert keeping[old[0]] == "tag latest is protected"
        assert keeping[pulled] == "pulled within the last 3 days"
        assert keeping[latest] == "among the 3 most recently tagged matching *"
        assert keeping[index] == "among the 3 most recently tagged matching *"
        assert keeping[amd64] == keeping[arm64] == f"part of {index}, which is kept"
        assert keeping[signature] == f"a referrer of {index}, which is kept"
        assert client.get(f"/v2/{name}/manifests/build-3").status_code == 200  # a preview changes nothing

        run = client.post(f"{API}/packages/{name}/retention/run")
        assert run.status_code == 200, run.text
        assert run.json()["deleted"] == 2
        assert client.get(f"/v2/{name}/manifests/build-3").status_code == 404
        assert client.get(f"/v2/{name}/manifests/{index}").status_code == 200
        deleted = client.get("/api/v3/users/octo/packages/container/ret-table/versions", params={"state": "deleted"})
        gone = {v["name"]: v["id"] for v in deleted.json()}
        assert set(gone) == {old[2], stray}
        restored = client.post(f"/api/v3/users/octo/packages/container/ret-table/versions/{gone[old[2]]}/restore")
        assert restored.status_code == 204  # a wrong policy can be undone
        assert client.get(f"/v2/{name}/manifests/build-3").status_code == 200
    audit = json.loads(server.cli("audit", "--json").stdout)
    runs = [e for e in audit if e["action"] == "package.retention_run" and e["target"] == name]
    assert runs and runs[-1]["detail"] == {"deleted": 2, "kept": 7, "scheduled": False}


def test_the_cli_sets_shows_previews_and_runs(server: Server) -> None:
    name = "octo/ret-cli"
    with server.client() as client:
        for i in range(3):
            _push(client, name, f"v{i}", seed=f"cli-{i}")
    shown = server.cli("retention", "set", name, "--keep-last-tagged", "1", "--protect", "v0", "--json")
    assert json.loads(shown.stdout)["effective"]["keep_last_tagged"] == 1
    preview = json.loads(server.cli("retention", "preview", name, "--json").stdout)
    assert [entry["tags"] for entry in preview["delete"]] == [["v1"]]
    text = server.cli("retention", "run", name).stdout
    assert text.startswith(f"{name}: deleted 1 version, kept 2")
    with server.client() as client:
        assert client.get(f"/v2/{name}/tags/list").json()["tags"] == ["v0", "v2"]
    bad = server.cli("retention", "set", name, "--keep-last-tagged", "-1", check=False)
    assert bad.returncode == 2
    assert "keep_last_tagged must be a whole number" in bad.stderr


def test_the_scheduled_run_applies_enabled_policies_once_and_audits_them(tmp_path: Any) -> None:
    env = {"PORTSIDE_RETENTION_INTERVAL_SECONDS": "1"}
    with running_server(tmp_path, "retention-scheduled", env=env) as scheduled:
        with scheduled.client() as client:
            for i in range(3):
                _push(client, "octo/ret-auto", f"v{i}", seed=f"auto-{i}")
            _push(client, "octo/ret-off", "v0", seed="off-0")
            _push(client, "octo/ret-off", "v1", seed="off-1")
            on = client.put(f"{API}/packages/octo/ret-auto/retention", json={"keep_last_tagged": 1})
            assert on.status_code == 200
            off = client.put(f"{API}/packages/octo/ret-off/retention", json={"enabled": False, "keep_last_tagged": 1})
            assert off.status_code == 200
            deadline = time.monotonic() + 15
            while client.get("/v2/octo/ret-auto/tags/list").json()["tags"] != ["v2"]:
                assert time.monotonic() < deadline, "the scheduled run did not apply the policy"
                time.sleep(0.3)
            assert client.get("/v2/octo/ret-off/tags/list").json()["tags"] == ["v0", "v1"]  # disabled
        audit = json.loads(scheduled.cli("audit", "--json").stdout)
        runs = [e for e in audit if e["action"] == "package.retention_run"]
        assert runs and runs[0]["target"] == "octo/ret-auto"
        assert runs[0]["detail"] == {"deleted": 2, "kept": 1, "scheduled": True}
