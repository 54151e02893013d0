"""The version page's details, over real HTTP: platforms, layers, the image configuration, referrers.

One server for the module. alice owns what is pushed (the bootstrap site admin pushes it); oscar
belongs to nothing. Pages are fetched anonymously unless a test names a viewer. No page may answer
5xx: the client's hook fails the test on any.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, select
from sqlalchemy import insert as insert_into

from portside.access import accounts
from portside.clock import now
from portside.metadata.schema import manifests, repositories
from portside.packages.details import PER_GROUP, REFERRER_DEPTH, SCAN_ROOT
from tests.support.blobs import Pushed, digest_of, push_blob, push_labelled_image, push_platform_index, put_manifest
from tests.support.server import Server, no_server_error, running_server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
COSIGN_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SPDX = "application/spdx+json"
CYCLONEDX = "application/vnd.cyclonedx+json"
IN_TOTO = "application/vnd.in-toto+json"
OTHER = "application/vnd.example.thing.v1"
ENV = {"PORTSIDE_FSYNC": "false", "PORTSIDE_AUTH_MAX_FAILURES": "1000"}


@dataclass
class Site:
    server: Server
    tokens: dict[str, str]
    http: httpx.Client  # no credentials of its own
    admin: httpx.Client  # the bootstrap site admin (Basic), for pushes

    def page(self, path: str, who: str = "anonymous") -> httpx.Response:
        headers = {} if who == "anonymous" else {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.http.get(path, headers=headers)

    def ok(self, path: str, who: str = "anonymous") -> str:
        response = self.page(path, who)
        assert response.status_code == 200, f"GET {path} as {who}: {response.status_code} {response.text}"
        return response.text

    def new_package(self, prefix: str) -> str:
        return f"alice/{prefix}-{uuid.uuid4().hex[:8]}"

    def visibility(self, package: str, visibility: str) -> None:
        self.server.write(lambda conn: accounts.set_visibility(conn, package, visibility))

    def ids(self, package: str) -> dict[str, int]:
        """digest -> version id, from the REST API (as the site admin)."""
        name = package.split("/", 1)[1].replace("/", "%2F")
        found: dict[str, int] = {}
        for page in range(1, 100):
            response = self.admin.get(
                f"/api/v3/users/alice/packages/container/{name}/versions", params={"per_page": 100, "page": page}
            )
            assert response.status_code == 200, response.text
            found.update({v["name"]: v["id"] for v in response.json()})
            if len(response.json()) < 100:
                return found
        raise AssertionError("too many versions")

    def base(self, package: str) -> str:
        return f"/users/alice/packages/container/{package.split('/', 1)[1]}"


def _accounts(conn: Connection) -> dict[str, str]:
    tokens = {}
    for user in ("alice", "oscar"):
        accounts.create_user(conn, user)
        tokens[user] = accounts.create_token(conn, user, accounts.parse_scopes("read:packages,write:packages"))[0]
    return tokens


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_server(
        tmp_path_factory.mktemp("web-details"), "web-version-details", extra_args=["--workers", "1"], env=ENV
    ) as server:
        tokens = server.write(_accounts)
        hooks = {"response": [no_server_error]}
        with (
            httpx.Client(base_url=server.url, timeout=60, event_hooks=hooks) as http,
            server.client(event_hooks=hooks) as admin,
        ):
            yield Site(server, tokens, http, admin)


def text_of(page: str) -> str:
    """The page's text with tags removed and entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page))).strip()


def section(page: str, anchor: str) -> str:
    """The HTML of one h2 section: from its heading to the next h2."""
    start = page.index(f'<h2 id="{anchor}">')
    end = page.find("<h2", start + 1)
    return page[start : end if end != -1 else len(page)]


def push_docker_image(client: httpx.Client, name: str, tag: str, config: dict[str, Any], layers: list[bytes]) -> Pushed:
    """A Docker schema 2 image with the given config document and layers."""
    raw = json.dumps(config).encode()
    push_blob(client, name, raw)
    for layer in layers:
        push_blob(client, name, layer)
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": digest_of(raw), "size": len(raw)},
        "layers": [{"mediaType": DOCKER_LAYER, "digest": digest_of(b), "size": len(b)} for b in layers],
    }
    pushed = Pushed(digest_of(json.dumps(doc).encode()), json.dumps(doc).encode(), DOCKER_MANIFEST)
    put_manifest(client, name, tag, pushed)
    return pushed


def push_artifact(
    client: httpx.Client,
    name: str,
    subject: Pushed,
    artifact_type: str,
    *,
    content: bytes | None = None,
    title: str = "artifact.json",
    config: tuple[str, bytes] = (OCI_EMPTY, b"{}"),
) -> Pushed:
    """An OCI artifact (empty config, one file) whose subject is `subject`, pushed by its digest."""
    config_type, config_bytes = config
    content = content if content is not None else f"{artifact_type} {uuid.uuid4()}".encode()
    push_blob(client, name, config_bytes)
    push_blob(client, name, content)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": config_type, "digest": digest_of(config_bytes), "size": len(config_bytes)},
        "layers": [
            {
                "mediaType": artifact_type,
                "digest": digest_of(content),
                "size": len(content),
                "annotations": {"org.opencontainers.image.title": title},
            }
        ],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": len(subject.manifest)},
    }
    payload = json.dumps(doc).encode()
    pushed = Pushed(digest_of(payload), payload)
    put_manifest(client, name, pushed.digest, pushed)
    return pushed


def push_image_with_config(client: httpx.Client, name: str, tag: str, config: tuple[str, bytes]) -> Pushed:
    """An OCI image manifest whose config blob is exactly `config` (media type, bytes)."""
    media_type, raw = config
    layer = f"layer {uuid.uuid4()}".encode()
    push_blob(client, name, raw)
    push_blob(client, name, layer)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": media_type, "digest": digest_of(raw), "size": len(raw)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(layer), "size": 40}
        ],
    }
    payload = json.dumps(doc).encode()
    pushed = Pushed(digest_of(payload), payload)
    put_manifest(client, name, tag, pushed)
    return pushed


# -- images: configuration and layers ------------------------------------------------------------


def test_docker_image_shows_its_configuration_and_layers_escaped(site: Site) -> None:
    name = site.new_package("configured")
    evil = "<script>alert(1)</script>"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-01T10:00:00Z",
        "config": {
            "Entrypoint": ["/usr/bin/server", "--port=8080"],
            "Cmd": ["serve", 'say "hi"'],
            "Env": ["PATH=/usr/local/bin:/usr/bin", "GREETING=<b>bold</b>"],
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
            "Labels": {"org.example.evil": evil, "org.opencontainers.image.licenses": "MIT"},
            "User": "app",
            "WorkingDir": "/srv",
        },
        "history": [
            {
                "created": "2024-05-01T09:00:00Z",
                "created_by": "/bin/sh -c #(nop) ADD file:4f3c in / ",
                "comment": "base layer",
            },
            {"created": "2024-05-01T09:30:00Z", "created_by": "RUN make install", "comment": "buildkit.dockerfile.v0"},
            {"created": "2024-05-01T10:00:00Z", "created_by": 'ENTRYPOINT ["/usr/bin/server"]', "empty_layer": True},
        ],
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    layers = [b"a" * 3000, b"second layer"]
    pushed = push_docker_image(site.admin, name, "1.0", config, layers)
    site.visibility(name, "public")
    page = site.ok(f"{site.base(name)}/{site.ids(name)[pushed.digest]}")

    assert "<script>alert(1)" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    configuration = text_of(section(page, "config"))
    assert DOCKER_CONFIG in configuration
    assert 'Entrypoint ["/usr/bin/server", "--port=8080"]' in configuration
    assert 'Command ["serve", "say \\"hi\\""]' in configuration
    assert "PATH=/usr/local/bin:/usr/bin" in configuration and "GREETING=<b>bold</b>" in configuration
    assert "Exposed ports 53/udp , 8080/tcp" in configuration  # text_of puts a space for each tag
    assert "User app" in configuration and "Working directory /srv" in configuration
    assert f"org.example.evil {evil}" in configuration and "org.opencontainers.image.licenses MIT" in configuration
    # History, oldest step first: created, created by, empty layer, comment.
    assert (
        "1 2024-05-01T09:00:00Z /bin/sh -c #(nop) ADD file:4f3c in / no base layer "
        "2 2024-05-01T09:30:00Z RUN make install no buildkit.dockerfile.v0 "
        '3 2024-05-01T10:00:00Z ENTRYPOINT ["/usr/bin/server"] yes'
    ) in configuration

    layer_rows = text_of(section(page, "layers"))
    assert "2 layers, 2.9 KiB in all" in layer_rows
    assert f"1 {digest_of(layers[0])[:19]} {DOCKER_LAYER} 2.9 KiB" in layer_rows
    assert f"2 {digest_of(layers[1])[:19]} {DOCKER_LAYER} {len(layers[1])} B" in layer_rows
    assert "No signature, SBOM, attestation or other artifact refers to this version." in page
    assert 'id="platforms"' not in page  # an image has no platforms table


def test_an_image_without_config_fields_says_so(site: Site) -> None:
    name = site.new_package("bare")
    pushed = push_labelled_image(site.admin, name, "v1", seed="bare")
    site.visibility(name, "public")
    configuration = text_of(section(site.ok(f"{site.base(name)}/{site.ids(name)[pushed.digest]}"), "config"))
    assert "Entrypoint none Command none Environment none Exposed ports none" in configuration
    assert "No labels." in configuration and "The configuration records no history." in configuration


def test_a_config_that_is_missing_invalid_or_not_an_image_config_is_a_sentence(site: Site) -> None:
    name = site.new_package("broken-config")
    missing = push_image_with_config(
        site.admin, name, "missing", ("application/vnd.oci.image.config.v1+json", b'{"a": 1}')
    )
    invalid = push_image_with_config(
        site.admin, name, "invalid", ("application/vnd.oci.image.config.v1+json", b"[not json")
    )
    helm = push_image_with_config(
        site.admin, name, "helm", ("application/vnd.cncf.helm.config.v1+json", b'{"name": "chart"}')
    )
    site.visibility(name, "public")
    # The registry cannot be made to lose a blob; the test removes it from the store behind it.
    site.server.lose_blob(json.loads(missing.manifest)["config"]["digest"])
    ids = site.ids(name)
    expected = {
        missing.digest: "The image configuration is missing from this registry's storage",
        invalid.digest: "The image configuration is not a valid JSON object, so it cannot be shown.",
        helm.digest: "of type application/vnd.cncf.helm.config.v1+json , not a container image configuration",
    }
    for digest, sentence in expected.items():
        page = site.ok(f"{site.base(name)}/{ids[digest]}")
        assert sentence in text_of(section(page, "config")), digest
        assert "1 layer, 40 B in all" in text_of(section(page, "layers")), digest


# -- indexes: platforms ---------------------------------------------------------------------------


def test_index_lists_its_platforms_linking_to_their_version_pages(site: Site) -> None:
    name = site.new_package("multi")
    amd = push_labelled_image(site.admin, name, None, seed="amd", architecture="amd64")
    arm = push_labelled_image(site.admin, name, None, seed="arm", architecture="arm64", variant="v8")
    index = push_platform_index(site.admin, name, "1.0", [(amd, "amd64"), (arm, "arm64")])
    site.visibility(name, "public")
    ids = site.ids(name)
    base = site.base(name)
    # arm is deleted: still listed by the index, without a link to a page only restorers may see.
    response = site.admin.delete(
        f"/api/v3/users/alice/packages/container/{name.split('/', 1)[1]}/versions/{ids[arm.digest]}",
        params={"force": "true"},
    )
    assert response.status_code == 204, response.text
    page = site.ok(f"{base}/{ids[index.digest]}")
    platforms = section(page, "platforms")
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(.*?)</th>(.*?)</tr>", platforms, re.S)
    assert [text_of(platform) for platform, _ in rows] == ["linux/amd64", "linux/arm64"]
    assert f'<a href="{base}/{ids[amd.digest]}"><code>{amd.digest[:19]}</code></a>' in rows[0][1]
    assert "<a " not in rows[1][1] and "not a version of this package" in text_of(rows[1][1])
    assert f"{OCI_MANIFEST} {len(amd.manifest)} B" in text_of(rows[0][1])
    # An index has neither layers nor a configuration of its own.
    assert 'id="layers"' not in page and 'id="config"' not in page
    # The child's page names the index that lists it.
    assert index.digest in site.ok(f"{base}/{ids[amd.digest]}")


def test_docker_manifest_list_and_buildx_attestation_entries(site: Site) -> None:
    name = site.new_package("docker-list")
    config = {"architecture": "arm", "os": "linux", "variant": "v7", "config": {"Cmd": ["sh"]}}
    image = push_docker_image(site.admin, name, "arm", config, [b"docker layer"])
    # buildx's provenance: an image manifest listed by the index as unknown/unknown, naming its image.
    provenance = push_image_with_config(
        site.admin, name, "provenance", ("application/vnd.oci.image.config.v1+json", b'{"architecture": "unknown"}')
    )

    def entry(pushed: Pushed, platform: dict[str, str], **annotations: str) -> dict[str, object]:
        described = {"mediaType": pushed.media_type, "digest": pushed.digest, "size": len(pushed.manifest)}
        return {**described, "platform": platform, **({"annotations": annotations} if annotations else {})}

    docker_list = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": [entry(image, {"os": "linux", "architecture": "arm", "variant": "v7"})],
        }
    ).encode()
    listed = Pushed(digest_of(docker_list), docker_list, "application/vnd.docker.distribution.manifest.list.v2+json")
    put_manifest(site.admin, name, "list", listed)
    oci_index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                entry(image, {"os": "linux", "architecture": "arm", "variant": "v7"}),
                entry(
                    provenance,
                    {"os": "unknown", "architecture": "unknown"},
                    **{
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": image.digest,
                    },
                ),
            ],
        }
    ).encode()
    indexed = Pushed(digest_of(oci_index), oci_index, "application/vnd.oci.image.index.v1+json")
    put_manifest(site.admin, name, "index", indexed)
    site.visibility(name, "public")
    ids = site.ids(name)
    base = site.base(name)

    platforms = text_of(section(site.ok(f"{base}/{ids[listed.digest]}"), "platforms"))
    assert f"linux/arm/v7 {image.digest[:19]} {DOCKER_MANIFEST}" in platforms
    page = site.ok(f"{base}/{ids[indexed.digest]}")
    platforms = text_of(section(page, "platforms"))
    assert f"Build attestations of {image.digest[:19]} {provenance.digest[:19]}" in platforms
    assert f'<a href="{base}/{ids[provenance.digest]}">' in section(page, "platforms")
    assert 'Command ["sh"]' in text_of(section(site.ok(f"{base}/{ids[image.digest]}"), "config"))


# -- referrers ------------------------------------------------------------------------------------


def test_referrers_are_a_tree_grouped_by_kind_linking_to_their_pages(site: Site) -> None:
    name = site.new_package("signed")
    image = push_labelled_image(site.admin, name, "v1", seed="signed")
    signature = push_artifact(site.admin, name, image, COSIGN_SIG, title="signature.sig")
    bundle = push_artifact(site.admin, name, image, SIGSTORE_BUNDLE, title="bundle.json")
    sbom = push_artifact(site.admin, name, image, SPDX, content=b'{"spdxVersion": "SPDX-2.3"}', title="sbom.spdx.json")
    cyclonedx = push_artifact(site.admin, name, image, CYCLONEDX, title="bom.json")
    attestation = push_artifact(site.admin, name, image, IN_TOTO, title="provenance.json")
    other = push_artifact(site.admin, name, image, OTHER, title="thing")
    sbom_signature = push_artifact(site.admin, name, sbom, SIGSTORE_BUNDLE, title="sbom-bundle.json")
    site.visibility(name, "public")
    ids = site.ids(name)
    base = site.base(name)

    page = site.ok(f"{base}/{ids[image.digest]}")
    tree = section(page, "referrers")
    text = text_of(tree)
    assert "6 artifacts refer to this version" in text  # directly; one more refers to the SBOM
    # Kinds in order, newest first within a kind; the SBOM's own signature nested under it.
    order = [
        "Signatures (2)",
        bundle.digest[:19],
        SIGSTORE_BUNDLE,
        signature.digest[:19],
        COSIGN_SIG,
        "SBOMs (2)",
        cyclonedx.digest[:19],
        sbom.digest[:19],
        SPDX,
        "Signatures (1)",
        sbom_signature.digest[:19],
        "Attestations (1)",
        attestation.digest[:19],
        IN_TOTO,
        f"{OTHER} (1)",
        other.digest[:19],
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions), text
    for pushed in (signature, bundle, sbom, cyclonedx, attestation, other, sbom_signature):
        assert f'<a href="{base}/{ids[pushed.digest]}"><code>{pushed.digest[:19]}</code></a>' in tree
    # The nested signature sits in a list inside the SBOM's item.
    sbom_item = tree[tree.index(f"{base}/{ids[sbom.digest]}") :]
    assert sbom_item.index('<ul class="referrers">') < sbom_item.index(f"{base}/{ids[sbom_signature.digest]}")

    # The SBOM's own page: an artifact with an empty config, its file, its subject and its signature.
    sbom_page = site.ok(f"{base}/{ids[sbom.digest]}")
    details = text_of(section(sbom_page, "details"))
    assert f"Artifact type {SPDX}" in details and f"Refers to {image.digest}" in details
    assert f'<a href="{base}/{ids[image.digest]}"><code class="wrap">{image.digest}</code></a>' in sbom_page
    assert "sbom.spdx.json" in text_of(section(sbom_page, "layers"))
    assert "This is an artifact with an empty configuration" in text_of(section(sbom_page, "config"))
    sbom_tree = text_of(section(sbom_page, "referrers"))
    assert "1 artifact refers to this version" in sbom_tree and sbom_signature.digest[:19] in sbom_tree


def test_referrers_are_limited_in_depth_and_count(site: Site) -> None:
    name = site.new_package("many")
    image = push_labelled_image(site.admin, name, "v1", seed="many")
    chain = [image]
    for _ in range(REFERRER_DEPTH + 1):  # each one signs the one before
        chain.append(push_artifact(site.admin, name, chain[-1], SIGSTORE_BUNDLE))
    extra = [push_artifact(site.admin, name, image, SPDX) for _ in range(PER_GROUP + 5)]
    site.visibility(name, "public")
    ids = site.ids(name)
    base = site.base(name)
    tree = section(site.ok(f"{base}/{ids[image.digest]}"), "referrers")
    text = text_of(tree)
    # Depth: levels 1..REFERRER_DEPTH shown; the last one says it has a referrer of its own.
    for pushed in chain[1 : REFERRER_DEPTH + 1]:
        assert f"{base}/{ids[pushed.digest]}" in tree
    assert f'{base}/{ids[chain[-1].digest]}"' not in tree
    assert "1 referrer of this artifact: see its page" in text
    assert f'href="{base}/{ids[chain[REFERRER_DEPTH].digest]}#referrers"' in tree
    # Count: the newest PER_GROUP SBOMs, and how many more there are.
    assert f"SBOMs ({len(extra)})" in text and "5 more not shown" in text
    shown = sorted((tree.index(f'{base}/{ids[p.digest]}"'), p.digest) for p in extra if f'/{ids[p.digest]}"' in tree)
    assert [digest for _, digest in shown] == [p.digest for p in reversed(extra[-PER_GROUP:])]
    # A deeper referrer's page starts a tree of its own.
    deep = section(site.ok(f"{base}/{ids[chain[REFERRER_DEPTH].digest]}"), "referrers")
    assert f"{base}/{ids[chain[-1].digest]}" in deep


def test_thousands_of_referrers_are_counted_and_the_newest_grouped(site: Site) -> None:
    name = site.new_package("flooded")
    image = push_labelled_image(site.admin, name, "v1", seed="flooded")
    flood = SCAN_ROOT + 700

    def insert(conn: Connection) -> None:
        # Rows as a push would leave them (pushing 1,200 manifests over HTTP would take long).
        repository_id = conn.execute(select(repositories.c.id).where(repositories.c.name == name)).scalar_one()
        conn.execute(
            insert_into(manifests),
            [
                {
                    "repository_id": repository_id,
                    "digest": digest_of(f"{name} signature {i}".encode()),
                    "media_type": OCI_MANIFEST,
                    "artifact_type": COSIGN_SIG,
                    "subject_digest": image.digest,
                    "payload": b"{}",
                    "size": 2,
                    "created_at": now(),
                }
                for i in range(flood)
            ],
        )

    site.server.write(insert)
    sbom = push_artifact(site.admin, name, image, SPDX)  # the newest
    site.visibility(name, "public")
    ids = site.ids(name)
    text = text_of(section(site.ok(f"{site.base(name)}/{ids[image.digest]}"), "referrers"))
    assert f"{flood + 1:,} artifacts refer to this version" in text
    assert f"The newest {SCAN_ROOT} are grouped below." in text
    assert f"Signatures ({SCAN_ROOT - 1})" in text and f"{SCAN_ROOT - 1 - PER_GROUP} more not shown" in text
    assert "SBOMs (1)" in text and sbom.digest[:19] in text


def test_private_package_version_page_is_404_to_others(site: Site) -> None:
    name = site.new_package("private")
    image = push_labelled_image(site.admin, name, "v1", seed="private", labels={"secret.label": "hush"})
    push_artifact(site.admin, name, image, COSIGN_SIG)
    site.visibility(name, "private")
    path = f"{site.base(name)}/{site.ids(name)[image.digest]}"
    for who in ("anonymous", "oscar"):
        response = site.page(path, who)
        assert response.status_code == 404, who
        assert "hush" not in response.text and "Signatures" not in response.text
    page = site.ok(path, "alice")
    assert "secret.label hush" in text_of(section(page, "config")) and "Signatures (1)" in text_of(page)
