"""Resident memory of a running Portside: at rest, then while 100 clients upload 64 MiB each at once.

    python bench/memory.py http://127.0.0.1:5000 admin:<token> <pid of `portside serve`> [--uploads 100] [--mib 64]

Memory is the VmRSS of the serve process and every worker under it, sampled every 50 ms; each upload
is a different blob, sent as one monolithic PUT with its digest checked by the server.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import threading
import time
import urllib.parse
from pathlib import Path

MIB = 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").iterdir():
            pending += [int(child) for child in (task / "children").read_text().split()]
    return found


def total_rss(pid: int) -> int:
    return sum(rss(p) for p in tree(pid))


def blocks(seed: int, count: int):
    block = bytearray(hashlib.sha256(str(seed).encode()).digest() * (MIB // 32))
    for i in range(count):
        block[:8] = i.to_bytes(8, "big")
        yield bytes(block)


def upload(url: str, auth: str, seed: int, mib: int, errors: list[str]) -> None:
    parts = urllib.parse.urlsplit(url)
    digest = hashlib.sha256()
    for block in blocks(seed, mib):
        digest.update(block)
    name = f"admin/memory{seed:03d}"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    headers = {"Authorization": auth}
    conn.request("POST", f"/v2/{name}/blobs/uploads/", headers=headers)
    response = conn.getresponse()
    response.read()
    location = response.headers["Location"]
    query = urllib.parse.urlencode({"digest": "sha256:" + digest.hexdigest()})
    path = f"{urllib.parse.urlsplit(location).path}?{query}"
    conn.request(
        "PUT",
        path,
        body=blocks(seed, mib),
        headers={**headers, "Content-Length": str(mib * MIB), "Content-Type": "application/octet-stream"},
    )
    response = conn.getresponse()
    body = response.read()
    if response.status != 201:
        errors.append(f"upload {seed}: {response.status} {body[:200]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("auth", help="user:token")
    parser.add_argument("pid", type=int)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    auth = "Basic " + base64.b64encode(args.auth.encode()).decode()
    for pid in tree(args.pid):
        print(f"at rest: pid {pid}: {rss(pid) / MIB:.0f} MiB")
    at_rest = total_rss(args.pid)
    print(f"at rest: total {at_rest / MIB:.0f} MiB")
    peak, stop = [at_rest], threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], total_rss(args.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    errors: list[str] = []
    started = time.monotonic()
    threads = [
        threading.Thread(target=upload, args=(args.url, auth, seed, args.mib, errors)) for seed in range(args.uploads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    sampler.join()
    elapsed = time.monotonic() - started
    print(f"{args.uploads} concurrent uploads of {args.mib} MiB: {elapsed:.1f} s, {len(errors)} failed")
    for error in errors[:5]:
        print("  " + error)
    print(f"peak total {peak[0] / MIB:.0f} MiB (at rest {at_rest / MIB:.0f} MiB, +{(peak[0] - at_rest) / MIB:.0f} MiB)")


if __name__ == "__main__":
    main()
