"""Does the cost of a request grow with the data? Measures one registry before and after it grows.

A manifest GET, a blob HEAD and a page of tags (n=100, first and deep) with 100 and then 100,000
tags in the repository; a page of the catalog (n=100, first and deep) with 100 and then 10,000
repositories. Load comes from wrk (-t1 -c32, 10 s per row); the registry is filled over HTTP.

    python bench/growth.py http://127.0.0.1:5000 admin:<token> [--tags 100000] [--repos 10000]
        [--vacuum postgresql://...]

Prints a Markdown table (req/s and p50/p99 latency per row, small vs large). With --vacuum (a
PostgreSQL URL), the large registry is measured again after `VACUUM ANALYZE`: the fill moves one
tag after another in one repository, 100,000 updates of its row within minutes, which PostgreSQL's
autovacuum cleans up a minute or so later; the extra column shows the cost once it has.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import re
import subprocess
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Client:
    def __init__(self, url: str, basic: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.auth = "Basic " + base64.b64encode(basic.encode()).decode()
        self.local = threading.local()

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                conn.request(method, path, body=body, headers={"Authorization": self.auth, **(headers or {})})
                response = conn.getresponse()
                return response.status, response.read(), response
            except (http.client.RemoteDisconnected, ConnectionError):
                conn.close()  # the server closed an idle keep-alive connection: reconnect once
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def token(self, *scopes: str) -> str:
        query = urllib.parse.urlencode([("service", "portside")] + [("scope", s) for s in scopes])
        status, body, _ = self.request("GET", f"/token?{query}")
        assert status == 200, body
        return json.loads(body)["token"]


def push_blob(client: Client, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, body, _ = client.request(
        "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data, {"Content-Type": "application/octet-stream"}
    )
    assert status == 201, (status, body)
    return digest


def image(client: Client, repo: str) -> tuple[bytes, str]:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = b"growth-benchmark-layer"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": push_blob(client, repo, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": push_blob(client, repo, layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return manifest, "sha256:" + hashlib.sha256(layer).hexdigest()


def fill_tags(client: Client, repo: str, manifest: bytes, start: int, end: int) -> None:
    def put(indexes: range) -> None:
        for i in indexes:
            status, body, _ = client.request(
                "PUT", f"/v2/{repo}/manifests/t{i:06d}", manifest, {"Content-Type": OCI_MANIFEST}
            )
            assert status == 201, (status, body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, [range(start + k, end, 8) for k in range(8)]))


def fill_repos(client: Client, source: str, layer: str, start: int, end: int) -> None:
    def mount(indexes: range) -> None:
        for i in indexes:
            status, body, _ = client.request("POST", f"/v2/admin/r{i:05d}/blobs/uploads/?mount={layer}&from={source}")
            assert status == 201, (status, body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(mount, [range(start + k, end, 8) for k in range(8)]))


def load(url: str, path: str, token: str, method: str = "GET", seconds: int = 10) -> tuple[float, str, str]:
    """Requests per second, p50 and p99 under 32 connections: wrk, or hey for HEAD (wrk waits for a body)."""
    if method == "HEAD":
        return _hey(url + path, token, seconds)
    script = f'wrk.method = "{method}"\nwrk.headers["Authorization"] = "Bearer {token}"\n'
    script += f'wrk.headers["Accept"] = "{OCI_MANIFEST}"\n'
    with open("/tmp/growth-wrk.lua", "w") as f:
        f.write(script)
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-s", "/tmp/growth-wrk.lua", url + path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        sys.exit(f"{method} {path}: non-2xx answers under load:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    p50 = re.search(r"50%\s+(\S+)", out)[1]
    p99 = re.search(r"99%\s+(\S+)", out)[1]
    return rate, p50, p99


def _hey(url: str, token: str, seconds: int) -> tuple[float, str, str]:
    out = subprocess.run(
        ["hey", "-z", f"{seconds}s", "-c", "32", "-m", "HEAD", "-H", f"Authorization: Bearer {token}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    codes = re.findall(r"\[(\d{3})\]\s+\d+ responses", out)
    if codes != ["200"]:
        sys.exit(f"HEAD {url}: answers other than 200 under load:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out)[1]) * 1000
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out)[1]) * 1000
    return rate, f"{p50:.2f}ms", f"{p99:.2f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("auth", help="user:token")
    parser.add_argument("--tags", type=int, default=100_000)
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--vacuum", help="PostgreSQL URL: measure the large registry again after VACUUM ANALYZE")
    args = parser.parse_args()
    client = Client(args.url, args.auth)
    repo = "admin/growth"
    manifest, layer = image(client, repo)
    rows: dict[str, dict[str, tuple[float, str, str]]] = {}

    def measure(phase: str) -> None:
        print(f"measuring ({phase})...", file=sys.stderr)
        # Fresh tokens: filling takes longer than a bearer token lives.
        pull = client.token(f"repository:{repo}:pull")
        catalog = client.token("registry:catalog:*")
        cases = [
            ("manifest GET by tag", "GET", f"/v2/{repo}/manifests/t000050", pull),
            ("blob HEAD", "HEAD", f"/v2/{repo}/blobs/{layer}", pull),
            ("tags page n=100, first", "GET", f"/v2/{repo}/tags/list?n=100", pull),
            ("tags page n=100, after t000050", "GET", f"/v2/{repo}/tags/list?n=100&last=t000050", pull),
            ("catalog page n=100, first", "GET", "/v2/_catalog?n=100", catalog),
            ("catalog page n=100, after admin/r00050", "GET", "/v2/_catalog?n=100&last=admin/r00050", catalog),
        ]
        for label, method, path, token in cases:
            rows.setdefault(label, {})[phase] = load(args.url, path, token, method, args.seconds)

    print("filling: 100 tags, 100 repositories...", file=sys.stderr)
    fill_tags(client, repo, manifest, 0, 100)
    fill_repos(client, repo, layer, 0, 99)  # with admin/growth itself: 100
    measure("small")
    print(f"filling: {args.tags} tags, {args.repos} repositories...", file=sys.stderr)
    fill_tags(client, repo, manifest, 100, args.tags)
    fill_repos(client, repo, layer, 99, args.repos - 1)
    measure("large")
    phases = ["small", "large"]
    if args.vacuum:
        import psycopg

        print("VACUUM ANALYZE...", file=sys.stderr)
        with psycopg.connect(args.vacuum.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        measure("vacuumed")
        phases.append("vacuumed")

    large = f"{args.tags} tags / {args.repos} repos"
    titles = ["100 tags / 100 repos", large] + ([f"{large}, after VACUUM ANALYZE"] if args.vacuum else [])
    columns = " | ".join(f"{t}: req/s, p50, p99 | ratio" for t in titles[1:])
    print(f"| request | {titles[0]}: req/s, p50, p99 | {columns} |")
    print("|---|---:|" + "---:|---:|" * (len(titles) - 1))
    for label, measured in rows.items():
        base = measured["small"][0]
        cells = [f"{measured['small'][0]:,.0f}, {measured['small'][1]}, {measured['small'][2]}"]
        for phase in phases[1:]:
            rate, p50, p99 = measured[phase]
            cells += [f"{rate:,.0f}, {p50}, {p99}", f"{rate / base:.2f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
