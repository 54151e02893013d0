"""Listing: GET /v2/<name>/tags/list and GET /v2/_catalog, with n, last and the Link header."""

from __future__ import annotations

import random
import re

import httpx
import pytest

from tests.http.helpers import assert_error, oci_image, push_manifest
from tests.http.helpers import make_client as make_http_client
from tests.support.blobs import push_blob
from tests.support.server import Server

# Byte order and "case-insensitive alphanumeric" order agree on these (see the report on case).
TAGS = ["1.0", "1.10", "1.9", "a", "a-b", "a.b", "a_b", "ab", "latest", "v1", "v10", "v2", "z"]


def next_link(response: httpx.Response) -> str | None:
    """The target of a `Link: <...>; rel="next"` header, as RFC 5988 writes it."""
    link = response.headers.get("link")
    if link is None:
        return None
    match = re.fullmatch(r'<([^>]+)>;\s*rel="next"', link)
    assert match, f"malformed Link header {link!r}"
    return match[1]


def walk(client: httpx.Client, path: str, key: str, n: int) -> list[list[str]]:
    """Follow Link headers from the first page of `path` to the last; return every page."""
    pages = []
    url: str | None = f"{path}?n={n}"
    while url is not None:
        assert url.startswith(path + "?")
        response = client.get(url)
        assert response.status_code == 200, response.text
        pages.append(response.json()[key])
        url = next_link(response)
        assert len(pages) < 100, "pagination does not end"
    return pages


@pytest.fixture
def tagged(client: httpx.Client, repo: str) -> str:
    """A repository with every tag in TAGS, pushed in a shuffled order."""
    manifest = oci_image(repo, client, "tags")
    for tag in random.Random(7).sample(TAGS, len(TAGS)):
        push_manifest(client, repo, tag, manifest)
    return repo


# -- tags ------------------------------------------------------------------------------------------


def test_tags_in_lexical_order(client: httpx.Client, tagged: str) -> None:
    response = client.get(f"/v2/{tagged}/tags/list")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"name": tagged, "tags": sorted(TAGS)}
    assert "link" not in response.headers


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_tags_pages_follow_link(client: httpx.Client, tagged: str, n: int) -> None:
    pages = walk(client, f"/v2/{tagged}/tags/list", "tags", n)
    assert [tag for page in pages for tag in page] == sorted(TAGS)
    assert all(len(page) == n for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= n


def test_tags_link_header(client: httpx.Client, tagged: str) -> None:
    response = client.get(f"/v2/{tagged}/tags/list", params={"n": 3})
    assert response.json()["tags"] == ["1.0", "1.10", "1.9"]
    assert response.headers["link"] == f'</v2/{tagged}/tags/list?n=3&last=1.9>; rel="next"'


def test_tags_n_equal_to_the_count_has_no_link(client: httpx.Client, tagged: str) -> None:
    response = client.get(f"/v2/{tagged}/tags/list", params={"n": len(TAGS)})
    assert response.json()["tags"] == sorted(TAGS)
    assert "link" not in response.headers


def test_tags_n_larger_than_the_count(client: httpx.Client, tagged: str) -> None:
    response = client.get(f"/v2/{tagged}/tags/list", params={"n": 10_000})
    assert response.json()["tags"] == sorted(TAGS)
    assert "link" not in response.headers


def test_tags_n_zero_is_empty_without_link(client: httpx.Client, tagged: str) -> None:
    response = client.get(f"/v2/{tagged}/tags/list", params={"n": 0})
    assert response.status_code == 200
    assert response.json() == {"name": tagged, "tags": []}
    assert "link" not in response.headers
    with_last = client.get(f"/v2/{tagged}/tags/list", params={"n": 0, "last": "a"})
    assert with_last.json()["tags"] == []
    assert "link" not in with_last.headers


@pytest.mark.parametrize("last", ["a", "a_b", "latest", "0", "b", "zz"])
def test_tags_last(client: httpx.Client, tagged: str, last: str) -> None:
    expected = [tag for tag in sorted(TAGS) if tag > last]
    response = client.get(f"/v2/{tagged}/tags/list", params={"last": last})
    assert response.json()["tags"] == expected
    assert "link" not in response.headers
    paged = client.get(f"/v2/{tagged}/tags/list", params={"last": last, "n": 2})
    assert paged.json()["tags"] == expected[:2]
    assert (next_link(paged) is not None) == (len(expected) > 2)


def test_tags_of_a_repository_without_tags(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"only a blob")
    response = client.get(f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": repo, "tags": []}


def test_tags_of_an_unknown_repository(client: httpx.Client, repo: str) -> None:
    error = assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN", repo)
    assert error["detail"] == {"name": repo}


def test_tags_are_per_repository(client: httpx.Client, tagged: str) -> None:
    other = f"{tagged}-other"
    push_manifest(client, other, "only-here", oci_image(other, client, "other"))
    assert client.get(f"/v2/{other}/tags/list").json()["tags"] == ["only-here"]
    assert "only-here" not in client.get(f"/v2/{tagged}/tags/list").json()["tags"]


def test_tags_of_a_nested_repository(client: httpx.Client, repo: str) -> None:
    name = f"{repo}/octo/tools/hello"
    manifest = oci_image(name, client, "nested")
    for tag in ("b", "a", "c"):
        push_manifest(client, name, tag, manifest)
    response = client.get(f"/v2/{name}/tags/list", params={"n": 2})
    assert response.json() == {"name": name, "tags": ["a", "b"]}
    assert next_link(response) == f"/v2/{name}/tags/list?n=2&last=b"
    assert client.get(f"/v2/{name}/tags/list?n=2&last=b").json()["tags"] == ["c"]


# -- catalog ---------------------------------------------------------------------------------------


def test_catalog_pages_within_a_prefix(client: httpx.Client, repo: str) -> None:
    """The session registry holds other tests' repositories too: page through the part that is ours."""
    names = [f"{repo}/{suffix}" for suffix in ("a", "b", "c", "d", "e", "e/f")]
    for name in random.Random(3).sample(names, len(names)):
        push_blob(client, name, b"catalog")
    ours: list[str] = []
    url: str | None = f"/v2/_catalog?n=2&last={repo}"
    while url is not None and len(ours) < len(names):
        response = client.get(url)
        assert response.status_code == 200
        page = response.json()["repositories"]
        assert len(page) <= 2
        ours += [name for name in page if name.startswith(f"{repo}/")]
        url = next_link(response)
    assert ours == sorted(names)


def test_catalog(fresh_registry: Server) -> None:
    with make_http_client(fresh_registry) as client:
        empty = client.get("/v2/_catalog")
        assert empty.status_code == 200
        assert empty.headers["content-type"] == "application/json"
        assert empty.json() == {"repositories": []}
        assert "link" not in empty.headers

        names = [
            "octo/hello",
            "t/alpine",
            "octo/tools/hello",
            "t/library/redis",
            "e2e/a-b/c",
            "t/a/b",
            "t/zeta",
            "e2e/a.b",
        ]
        for name in names:
            push_blob(client, name, b"catalog")
        expected = sorted(names)

        everything = client.get("/v2/_catalog")
        assert everything.json() == {"repositories": expected}
        assert "link" not in everything.headers

        for n in (1, 3, 7, 8, 100):
            pages = walk(client, "/v2/_catalog", "repositories", n)
            assert [name for page in pages for name in page] == expected
            assert all(len(page) == n for page in pages[:-1])

        first = client.get("/v2/_catalog", params={"n": 2})
        assert first.json()["repositories"] == expected[:2]
        assert first.headers["link"] == f'</v2/_catalog?n=2&last={expected[1].replace("/", "%2F")}>; rel="next"'

        zero = client.get("/v2/_catalog", params={"n": 0})
        assert zero.json() == {"repositories": []}
        assert "link" not in zero.headers

        after = client.get("/v2/_catalog", params={"last": "t/library/redis"})
        assert after.json()["repositories"] == [name for name in expected if name > "t/library/redis"]
        assert client.get("/v2/_catalog", params={"last": "zzz"}).json() == {"repositories": []}


def test_catalog_lists_repositories_that_only_have_manifests_deleted(fresh_registry: Server) -> None:
    """A repository stays in the catalog when its tags go (it still holds blobs)."""
    with make_http_client(fresh_registry) as client:
        manifest = oci_image("octo/kept", client, "kept")
        push_manifest(client, "octo/kept", "v1", manifest)
        assert client.delete("/v2/octo/kept/manifests/v1").status_code == 202
        assert client.get("/v2/_catalog").json() == {"repositories": ["octo/kept"]}
        assert client.get("/v2/octo/kept/tags/list").json() == {"name": "octo/kept", "tags": []}


def test_cached_tag_lists_follow_every_change_in_every_worker(client: httpx.Client, repo: str) -> None:
    """Each worker caches tag lists per repository version: no worker may serve a stale list."""
    manifest = oci_image(repo, client, "cached")
    push_manifest(client, repo, "a", manifest)
    push_manifest(client, repo, "b", manifest)

    def listings() -> set[tuple[str, ...]]:
        # A new connection per request: they land on both of the session registry's workers.
        url = f"{str(client.base_url).rstrip('/')}/v2/{repo}/tags/list"
        return {tuple(httpx.get(url, headers=client.headers, timeout=30).json()["tags"]) for _ in range(20)}

    assert listings() == {("a", "b")}
    push_manifest(client, repo, "c", manifest)
    assert listings() == {("a", "b", "c")}
    assert client.delete(f"/v2/{repo}/manifests/b").status_code == 202
    assert listings() == {("a", "c")}
    digest = client.head(f"/v2/{repo}/manifests/a").headers["docker-content-digest"]
    assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202  # takes every tag with it
    assert listings() == {()}
