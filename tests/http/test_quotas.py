"""Storage quotas and usage (docs/lifecycle.md), over real HTTP against a real server.

The refusal at manifest PUT and its exact message; usage that counts each blob once per owner
(mounts and plain re-uploads within an owner, but again for another owner); deleted, restorable
versions and packages still counting; the figures checked against what the registry really serves;
who may set quotas and read usage; the warning header; concurrent pushes near the limit; the CLI.

Who is who (set up once for the module, straight in the database):
  admin  the site admin the server created on its first start
  olga   owns the organizations the tests create (not a site admin)
  mike   is a member of them
  oscar  belongs to no organization (an outsider)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, update

from portside.access import accounts
from portside.metadata.schema import manifests
from tests.http.helpers import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, assert_error, descriptor
from tests.support.blobs import digest_of, push_blob
from tests.support.github import assert_github_error as error
from tests.support.server import Server, no_server_error, running_server
from tests.support.web import sign_in, text_of

P = "/api/v3/portside"
MiB = 1024 * 1024
USERS = ("olga", "mike", "oscar")
PASSWORD = "correct horse battery staple"
HEADER = "x-portside-quota-warning"


def uid() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class World:
    server: Server
    tokens: dict[str, str]
    http: httpx.Client  # no credentials of its own

    def call(self, method: str, path: str, who: str | None = "admin", **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def org(self, quota: int | None = None) -> str:
        """A new organization owned by olga with mike a member, and its quota set by the site admin."""
        name = f"q-{uid()}"
        assert self.call("POST", f"{P}/orgs", "olga", json={"name": name}).status_code == 201
        assert self.call("PUT", f"{P}/orgs/{name}/members/mike", "olga", json={"role": "member"}).status_code == 201
        if quota is not None:
            self.set_quota(name, quota)
        return name

    def set_quota(self, org: str, quota: int | None) -> None:
        answer = self.call("PATCH", f"{P}/orgs/{org}", json={"storage_quota_bytes": quota})
        assert answer.status_code == 200, answer.text
        assert answer.json()["storage_quota_bytes"] == quota

    def usage(self, owner: str, kind: str = "orgs", who: str = "admin") -> dict[str, Any]:
        answer = self.call("GET", f"{P}/{kind}/{owner}/usage", who)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def admin(self) -> httpx.Client:
        return self.server.client(event_hooks={"response": [no_server_error]})


def _cast(conn: Connection) -> dict[str, str]:
    hashed = accounts.hash_new_password(PASSWORD)
    for user in USERS:
        accounts.create_user(conn, user)
        accounts.set_password(conn, user, hashed)
    scopes = accounts.parse_scopes("read:packages,write:packages,delete:packages")
    return {user: accounts.create_token(conn, user, scopes)[0] for user in (*USERS, "admin")}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_server(
        tmp_path_factory.mktemp("quotas"),
        "quotas",
        extra_args=["--workers", "2"],
        env={"PORTSIDE_FSYNC": "false", "PORTSIDE_AUTH_MAX_FAILURES": "10000"},
    ) as server:
        tokens = server.write(_cast)
        with httpx.Client(base_url=server.url, timeout=60, event_hooks={"response": [no_server_error]}) as http:
            yield World(server, tokens, http)


# -- pushing ---------------------------------------------------------------------------------------


def config_of(seed: str) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()


def layer_of(size: int, seed: str) -> bytes:
    """`size` bytes that no other test's layer shares."""
    head = f"{seed}-{uid()}|".encode()
    return head + b"\0" * (size - len(head))


def manifest_of(config: bytes, *layers: bytes) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
    }
    return json.dumps(doc).encode()


def put(client: httpx.Client, name: str, tag: str, manifest: bytes) -> httpx.Response:
    return client.put(f"/v2/{name}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST})


def push(client: httpx.Client, name: str, tag: str, *layers: bytes, seed: str | None = None) -> httpx.Response:
    """Upload a config and `layers` plainly, then PUT the manifest; the manifest PUT's answer."""
    config = config_of(seed or f"{name}:{tag}")
    for blob in (config, *layers):
        push_blob(client, name, blob)
    return put(client, name, tag, manifest_of(config, *layers))


def mount(client: httpx.Client, name: str, digest: str, source: str) -> None:
    answer = client.post(f"/v2/{name}/blobs/uploads/", params={"mount": digest, "from": source})
    assert answer.status_code == 201, answer.text


def stored_blobs(client: httpx.Client, packages: dict[str, list[str]]) -> dict[str, int]:
    """digest -> size of the distinct blobs the given packages' tags reference, as the registry
    really serves them: the HEAD's Content-Length, checked against the bytes a GET sends."""
    found: dict[str, int] = {}
    for name, tags in packages.items():
        for tag in tags:
            answer = client.get(f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            assert answer.status_code == 200, answer.text
            doc = answer.json()
            for digest in [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]:
                head = client.head(f"/v2/{name}/blobs/{digest}")
                assert head.status_code == 200, head.text
                body = client.get(f"/v2/{name}/blobs/{digest}", follow_redirects=True)
                assert body.status_code == 200 and digest_of(body.content) == digest
                assert int(head.headers["content-length"]) == len(body.content)
                found[digest] = len(body.content)
    return found


def by_name(usage: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in usage["packages"]}


# -- the refusal -----------------------------------------------------------------------------------


def test_a_push_beyond_the_quota_is_refused_with_the_exact_message(world: World) -> None:
    org = world.org(quota=10 * MiB)
    with world.admin() as client:
        first = push(client, f"{org}/app", "v1", layer_of(6 * MiB, "first"))
        assert first.status_code == 201, first.text
        refused = push(client, f"{org}/app", "v2", layer_of(5 * MiB, "second"))
        body = assert_error(refused, 403, "DENIED")
        # 6 MiB + 5 MiB + two configs: 11.0000something MiB, shown rounded up, never as the limit.
        assert body["message"] == (
            f"quota exceeded for {org}: 11.1 MiB used of 10 MiB; delete versions or ask an administrator"
        )
        assert body["detail"]["quota_bytes"] == 10 * MiB
        assert body["detail"]["used_bytes"] + body["detail"]["push_bytes"] > 10 * MiB
        # Nothing of the refused version was recorded: no tag, no version, no usage.
        assert client.get(f"/v2/{org}/app/manifests/v2").status_code == 404
        usage = world.usage(org)
        assert usage["used_bytes"] < 10 * MiB
        assert by_name(usage)["app"]["versions"] == 1
        # Re-pushing what is stored is never refused, even by an owner over its quota.
        world.set_quota(org, 1 * MiB)
        stored = client.get(f"/v2/{org}/app/manifests/v1", headers={"Accept": OCI_MANIFEST}).content
        for tag in ("v1", "latest"):
            again = put(client, f"{org}/app", tag, stored)
            assert again.status_code == 201, again.text
            assert HEADER in again.headers  # over the quota now: warned, not refused


def test_a_manifest_of_blobs_the_owner_already_counts_is_never_refused(world: World) -> None:
    org = world.org(quota=4 * MiB)
    with world.admin() as client:
        base = layer_of(3 * MiB, "base")
        assert push(client, f"{org}/one", "v1", base).status_code == 201
        # The same 3 MiB under another package of the same owner, and a new tiny config: it fits.
        mount(client, f"{org}/two", digest_of(base), f"{org}/one")
        assert push(client, f"{org}/two", "v1", base).status_code == 201
        world.set_quota(org, 0)  # nothing more may be added at all
        # Another manifest naming only counted blobs (the same config and layer as one:v1, annotated).
        config = config_of(f"{org}/one:v1")
        doc = json.loads(manifest_of(config, base))
        doc["annotations"] = {"note": "same blobs"}
        answer = put(client, f"{org}/one", "v2", json.dumps(doc).encode())
        assert answer.status_code == 201, answer.text
        refused = push(client, f"{org}/one", "v3", base)  # a new config: new bytes
        assert_error(refused, 403, "DENIED", f"quota exceeded for {org}:", "used of 0 B;")


# -- what counts -----------------------------------------------------------------------------------


def test_blobs_shared_by_an_owners_packages_count_once_and_match_what_is_stored(world: World) -> None:
    org = world.org()
    shared = layer_of(2 * MiB, "shared")
    own = layer_of(1 * MiB, "own")
    with world.admin() as client:
        assert push(client, f"{org}/a", "v1", shared).status_code == 201
        mount(client, f"{org}/b", digest_of(shared), f"{org}/a")  # a mount between the owner's packages
        assert push(client, f"{org}/b", "v1", shared, own).status_code == 201
        assert push(client, f"{org}/c", "v1", shared).status_code == 201  # the same bytes uploaded again
        assert push(client, f"{org}/a", "v2", shared, seed="a2").status_code == 201  # a second version of a
        stored = stored_blobs(client, {f"{org}/a": ["v1", "v2"], f"{org}/b": ["v1"], f"{org}/c": ["v1"]})
    usage = world.usage(org)
    assert len(stored) == 6  # the shared layer, the own layer and four configs
    assert usage["used_bytes"] == sum(stored.values())
    assert usage["used_bytes"] < 2 * (2 * MiB)  # the shared layer once
    packages = by_name(usage)
    assert set(packages) == {"a", "b", "c"}
    configs = {tag: len(config_of(f"{org}/{tag}")) for tag in ("a:v1", "b:v1", "c:v1")}
    assert packages["a"]["bytes"] == len(shared) + configs["a:v1"] + len(config_of("a2"))
    assert packages["b"]["bytes"] == len(shared) + len(own) + configs["b:v1"]
    assert packages["c"]["bytes"] == len(shared) + configs["c:v1"]
    assert packages["a"]["versions"] == 2 and packages["c"]["versions"] == 1
    # Each package counts the shared layer: their sum exceeds what the owner uses.
    assert sum(p["bytes"] for p in packages.values()) == usage["used_bytes"] + 2 * len(shared)
    assert (usage["quota_bytes"], usage["quota_source"], usage["warning"]) == (None, "none", False)


def test_a_blob_shared_with_another_owner_counts_for_both(world: World) -> None:
    first, second = world.org(), world.org()
    layer = layer_of(1 * MiB, "across")
    with world.admin() as client:
        assert push(client, f"{first}/app", "v1", layer).status_code == 201
        mount(client, f"{second}/app", digest_of(layer), f"{first}/app")
        assert push(client, f"{second}/app", "v1", layer).status_code == 201
        for org in (first, second):
            stored = stored_blobs(client, {f"{org}/app": ["v1"]})
            assert digest_of(layer) in stored
            assert world.usage(org)["used_bytes"] == sum(stored.values())


def test_deleted_and_restored_versions_and_packages_still_count(world: World) -> None:
    org = world.org(quota=8 * MiB)
    gone = layer_of(3 * MiB, "gone")
    with world.admin() as client:
        assert push(client, f"{org}/app", "v1", layer_of(1 * MiB, "kept")).status_code == 201
        assert push(client, f"{org}/app", "v2", gone).status_code == 201
        stored = stored_blobs(client, {f"{org}/app": ["v1", "v2"]})
        digest = client.get(f"/v2/{org}/app/manifests/v2").headers["docker-content-digest"]
    before = world.usage(org)
    assert before["used_bytes"] == sum(stored.values())

    versions = f"/api/v3/orgs/{org}/packages/container/app/versions"
    ids = {v["name"]: v["id"] for v in world.call("GET", versions).json()}
    assert world.call("DELETE", f"{versions}/{ids[digest]}").status_code == 204
    deleted = world.usage(org)
    assert deleted["used_bytes"] == before["used_bytes"]  # restorable: still stored, still counted
    assert (by_name(deleted)["app"]["versions"], by_name(deleted)["app"]["deleted_versions"]) == (1, 1)
    # Its blobs count, so pushing them again in a new version adds nothing, at any quota.
    world.set_quota(org, 0)
    with world.admin() as client:
        again = push(client, f"{org}/other", "v1", gone, seed=f"{org}/app:v2")
        assert again.status_code == 201, again.text
    world.set_quota(org, 8 * MiB)
    assert world.usage(org)["used_bytes"] == before["used_bytes"]

    assert world.call("POST", f"{versions}/{ids[digest]}/restore").status_code == 204
    restored = world.usage(org)
    assert restored["used_bytes"] == before["used_bytes"]
    assert by_name(restored)["app"]["versions"] == 2

    # A deleted package is restorable too: it still counts, listed as deleted.
    assert world.call("DELETE", f"/api/v3/orgs/{org}/packages/container/app").status_code == 204
    after = world.usage(org)
    assert after["used_bytes"] == before["used_bytes"]
    assert [(p["name"], p["deleted"]) for p in after["packages"] if p["name"] == "app"] == [("app", True)]

    # Deleted for good: out of the usage at once. Package other's blobs are all the deleted app's
    # too, so nothing moves; then app, restored and deleted for good, takes everything with it.
    purged = world.call("DELETE", f"{P}/packages/{org}/other", params={"permanent": "true"})
    assert purged.status_code == 200, purged.text
    assert "other" not in by_name(world.usage(org))
    assert world.usage(org)["used_bytes"] == before["used_bytes"]
    assert world.call("POST", f"/api/v3/orgs/{org}/packages/container/app/restore").status_code == 204
    purged = world.call("DELETE", f"{P}/packages/{org}/app", params={"permanent": "true"})
    assert purged.status_code == 200, purged.text
    assert (world.usage(org)["used_bytes"], world.usage(org)["packages"]) == (0, [])


# -- who may ---------------------------------------------------------------------------------------


def test_only_site_admins_set_quotas(world: World) -> None:
    org = world.org()
    path = f"{P}/orgs/{org}"
    set_by_admin = world.call("PATCH", path, json={"storage_quota_bytes": 10 * 1024**3})
    assert set_by_admin.status_code == 200, set_by_admin.text
    assert set_by_admin.json()["storage_quota_bytes"] == 10 * 1024**3
    # An owner of the organization who is not a site admin: 403, and nothing changes, not even
    # the setting an owner may change when sent along.
    refused = world.call("PATCH", path, "olga", json={"storage_quota_bytes": None, "container_registry": False})
    error(refused, 403, "only site admins can set storage quotas", f"portside org set {org} --storage-quota")
    error(world.call("PATCH", path, "mike", json={"storage_quota_bytes": 1}), 403, "only site admins")
    assert world.usage(org)["quota_bytes"] == 10 * 1024**3
    assert world.call("PATCH", path, "olga", json={"container_registry": True}).status_code == 200
    for bad in (-1, "10GiB", True, 1.5, [1]):
        error(world.call("PATCH", path, json={"storage_quota_bytes": bad}), 400, "storage_quota_bytes must be")
    error(world.call("PATCH", f"{P}/orgs/ghost-{uid()}", json={"storage_quota_bytes": 1}), 404)
    cleared = world.call("PATCH", path, json={"storage_quota_bytes": None})
    assert cleared.status_code == 200 and cleared.json()["storage_quota_bytes"] is None
    assert world.usage(org)["quota_source"] == "none"

    user = f"{P}/users/oscar"
    error(world.call("PATCH", user, "oscar", json={"storage_quota_bytes": 5}), 403, "only site admins")
    error(world.call("PATCH", user, json={}), 400, "nothing to change")
    changed = world.call("PATCH", user, json={"storage_quota_bytes": 5 * MiB})
    assert changed.status_code == 200 and changed.json()["storage_quota_bytes"] == 5 * MiB
    assert world.usage("oscar", "users", "oscar")["quota_bytes"] == 5 * MiB
    assert world.call("PATCH", user, json={"storage_quota_bytes": None}).status_code == 200

    events = world.call("GET", f"{P}/audit", params={"since": "1h"}).json()
    quota_events = [(e["action"], e["target"], e["detail"]) for e in events if e["action"].endswith("storage_quota")]
    assert ("org.storage_quota", org, {"storage_quota_bytes": 10 * 1024**3, "previous": None}) in quota_events
    assert ("org.storage_quota", org, {"storage_quota_bytes": None, "previous": 10 * 1024**3}) in quota_events
    assert ("user.storage_quota", "oscar", {"storage_quota_bytes": 5 * MiB, "previous": None}) in quota_events


def test_who_may_read_usage(world: World) -> None:
    org = world.org()
    path = f"{P}/orgs/{org}/usage"
    for who in ("admin", "olga", "mike"):
        assert world.call("GET", path, who).status_code == 200, who
    error(world.call("GET", path, "oscar"), 403, f"only members of {org} and site admins")
    error(world.call("GET", path, None), 401)
    error(world.call("GET", f"{P}/orgs/ghost-{uid()}/usage"), 404)
    error(world.call("GET", f"{P}/orgs/mike/usage"), 404)  # a user is not an organization
    assert world.call("GET", f"{P}/users/mike/usage", "mike").status_code == 200
    assert world.call("GET", f"{P}/users/mike/usage", "admin").status_code == 200
    error(world.call("GET", f"{P}/users/mike/usage", "olga"), 403, "only mike and site admins")


# -- the warning ---------------------------------------------------------------------------------


def test_the_warning_header_from_90_percent(world: World) -> None:
    org = world.org(quota=10 * MiB)
    with world.admin() as client:
        below = push(client, f"{org}/app", "v1", layer_of(8 * MiB, "eighty"))
        assert below.status_code == 201 and HEADER not in below.headers
        assert world.usage(org)["warning"] is False
        at = push(client, f"{org}/app", "v2", layer_of(MiB + MiB // 2, "ninety-five"))
        assert at.status_code == 201, at.text
        assert at.headers[HEADER] == f"{org} uses 9.5 MiB of 10 MiB (95%)"
    usage = world.usage(org)
    assert usage["warning"] is True and 9 * MiB <= usage["used_bytes"] <= 10 * MiB
    # The owner's page says so, to those who may read the usage.
    with sign_in(world.server.url, "mike", PASSWORD) as browser:
        page = text_of(browser.get(f"/orgs/{org}/packages").text)
        assert f"{org} uses 9.5 MiB of 10 MiB (95%)" in page
        assert "Pushes that would go beyond the quota are refused" in page
    with sign_in(world.server.url, "oscar", PASSWORD) as browser:
        assert "uses 9.5 MiB" not in text_of(browser.get(f"/orgs/{org}/packages").text)


# -- concurrency -----------------------------------------------------------------------------------


def test_concurrent_pushes_near_the_limit_accept_only_what_fits(world: World) -> None:
    org = world.org(quota=8 * MiB)
    name = f"{org}/race"
    count = 24  # each fits alone; any eight fit together, nine do not
    with world.admin() as client:
        manifests = []
        for i in range(count):
            config, layer = config_of(f"race-{i}"), layer_of(MiB - 4096, f"race-{i}")
            push_blob(client, name, config)
            push_blob(client, name, layer)
            manifests.append(manifest_of(config, layer))

    def one(i: int) -> int:
        with world.admin() as http:
            return put(http, name, f"v{i}", manifests[i]).status_code

    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(one, range(count)))
    assert sorted(statuses) == [201] * 8 + [403] * (count - 8), statuses
    usage = world.usage(org)
    assert usage["used_bytes"] <= usage["quota_bytes"]
    assert by_name(usage)["race"]["versions"] == 8


# -- the command line and the site's default -------------------------------------------------------


def test_cli_sets_quotas_in_human_sizes(world: World) -> None:
    org = world.org()
    shown = json.loads(world.server.cli("org", "set", org, "--storage-quota", "10GiB", "--json").stdout)
    assert shown == [
        {
            "org": org,
            "container_registry": "enabled",
            "allowed_visibilities": ["private", "internal", "public"],
            "storage_quota": "10 GiB (10737418240 bytes)",
        }
    ]
    assert world.usage(org)["quota_bytes"] == 10 * 1024**3
    world.server.cli("org", "set", org, "--storage-quota", "500MB")
    assert world.usage(org)["quota_bytes"] == 500_000_000
    world.server.cli("org", "set", org, "--storage-quota", "default")
    assert world.usage(org)["quota_source"] == "none"
    world.server.cli("user", "set", "mike", "--storage-quota", "1.5TiB")
    assert world.usage("mike", "users")["quota_bytes"] == int(1.5 * 1024**4)
    world.server.cli("user", "set", "mike", "--storage-quota", "default")
    bad = world.server.cli("org", "set", org, "--storage-quota", "ten gigs", check=False)
    assert bad.returncode == 2 and "'ten gigs' is not a size" in bad.stderr
    nothing = world.server.cli("user", "set", "mike", check=False)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr


def test_the_site_default_applies_until_an_owner_has_its_own(tmp_path: Path) -> None:
    env = {"PORTSIDE_STORAGE_QUOTA_BYTES": "2MiB", "PORTSIDE_GC_GRACE_SECONDS": "0"}
    with running_server(tmp_path, "quotas-site-default", extra_args=["--workers", "1"], env=env) as server:
        admin_name = server.admin[0]
        with server.client(event_hooks={"response": [no_server_error]}) as client:
            big = layer_of(3 * MiB, "big")
            refused = push(client, f"{admin_name}/big", "v1", big)
            assert_error(refused, 403, "DENIED", f"quota exceeded for {admin_name}:", "used of 2 MiB;")
            # The refused push's blobs were uploaded; garbage collection reclaims them (no grace here).
            assert client.head(f"/v2/{admin_name}/big/blobs/{digest_of(big)}").status_code == 200
            server.cli("gc")
            assert client.head(f"/v2/{admin_name}/big/blobs/{digest_of(big)}").status_code == 404
            usage = client.get(f"{P}/users/{admin_name}/usage").json()
            assert (usage["quota_bytes"], usage["quota_source"], usage["used_bytes"]) == (2 * MiB, "site", 0)
            own = client.patch(f"{P}/users/{admin_name}", json={"storage_quota_bytes": 4 * MiB})
            assert own.status_code == 200, own.text
            accepted = push(client, f"{admin_name}/big", "v1", layer_of(3 * MiB, "big"))
            assert accepted.status_code == 201, accepted.text
            usage = client.get(f"{P}/users/{admin_name}/usage").json()
            assert usage["quota_source"] == "owner"
            assert usage["used_bytes"] == sum(stored_blobs(client, {f"{admin_name}/big": ["v1"]}).values())


def test_a_version_stops_counting_once_the_restore_window_purges_it(fresh_registry: Server) -> None:
    server, user = fresh_registry, fresh_registry.admin[0]
    name = f"{user}/app"
    with server.client(event_hooks={"response": [no_server_error]}) as client:
        assert push(client, name, "kept", layer_of(MiB, "kept")).status_code == 201
        assert push(client, name, "gone", layer_of(2 * MiB, "gone")).status_code == 201
        kept = stored_blobs(client, {name: ["kept"]})
        digest = client.get(f"/v2/{name}/manifests/gone").headers["docker-content-digest"]
        assert client.delete(f"/v2/{name}/manifests/{digest}").status_code == 202
        usage = client.get(f"{P}/users/{user}/usage").json()
        assert usage["used_bytes"] > sum(kept.values()) + 2 * MiB - 1  # deleted, restorable: counted

    def long_ago(conn: Connection) -> None:  # deleted 31 days ago: past the 30-day window
        conn.execute(
            update(manifests)
            .where(manifests.c.digest == digest)
            .values(deleted_at=datetime.now(UTC) - timedelta(days=31))
        )

    server.write(long_ago)
    server.stop()
    server.start()  # the purge runs at start
    with server.client(event_hooks={"response": [no_server_error]}) as client:
        usage = client.get(f"{P}/users/{user}/usage").json()
    assert usage["used_bytes"] == sum(kept.values())
    assert [(p["versions"], p["deleted_versions"]) for p in usage["packages"]] == [(1, 0)]
