"""Garbage collection at scale: fill a registry over HTTP with MANIFESTS images (a config and a layer
each, so 2 x MANIFESTS referenced blobs) and GARBAGE unreferenced blobs, then time `portside gc
--dry-run` (the scan) and `portside gc` (the removal), as an operator runs them.

    python bench/gc.py http://127.0.0.1:5300 admin:TOKEN --data-dir /tmp/gc-bench/data \
        --manifests 10000 --garbage 80000 [--no-collect]

The server must run with PORTSIDE_GC_GRACE_SECONDS=0 (nothing is old enough otherwise) and a
long PORTSIDE_GC_INTERVAL_SECONDS (so that only the timed passes collect). With --no-collect the
garbage stays, for a pass run by hand while regbench measures pushes and pulls (docs/performance.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

OCI = "application/vnd.oci.image.manifest.v1+json"
THREADS = 16


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fill(url: str, auth: tuple[str, str], manifests: int, garbage: int) -> float:
    started = time.monotonic()
    errors: list[str] = []

    def work(worker: int) -> None:
        with httpx.Client(base_url=url, auth=auth, timeout=60) as client:
            for i in range(worker, manifests, THREADS):
                name = f"admin/gc-{i % 100:02d}"
                config = json.dumps({"architecture": "amd64", "os": "linux", "i": i}).encode()
                layer = os.urandom(512)
                for blob in (config, layer):
                    r = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest(blob)}, content=blob)
                    if r.status_code != 201:
                        errors.append(f"blob {r.status_code}")
                manifest = json.dumps(
                    {
                        "schemaVersion": 2,
                        "mediaType": OCI,
                        "config": {
                            "mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": digest(config),
                            "size": len(config),
                        },
                        "layers": [
                            {
                                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "digest": digest(layer),
                                "size": len(layer),
                            }
                        ],
                    }
                ).encode()
                r = client.put(f"/v2/{name}/manifests/v{i}", content=manifest, headers={"Content-Type": OCI})
                if r.status_code != 201:
                    errors.append(f"manifest {r.status_code}")
            for i in range(worker, garbage, THREADS):
                blob = os.urandom(256)
                name = f"admin/gc-{i % 100:02d}"
                r = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest(blob)}, content=blob)
                if r.status_code != 201:
                    errors.append(f"garbage {r.status_code}")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        sys.exit(f"filling failed: {len(errors)} errors, e.g. {errors[:3]}")
    return time.monotonic() - started


def gc(data_dir: Path, *args: str) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "portside", "gc", "--json", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.monotonic() - started, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("credentials", help="USER:TOKEN")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--manifests", type=int, default=10_000)
    parser.add_argument("--garbage", type=int, default=80_000)
    parser.add_argument("--no-collect", action="store_true")
    args = parser.parse_args()
    user, _, token = args.credentials.partition(":")
    took = fill(args.url, (user, token), args.manifests, args.garbage)
    blobs = 2 * args.manifests + args.garbage
    print(f"filled {args.manifests} manifests and {blobs} blobs in {took:.1f} s")
    seconds, report = gc(args.data_dir, "--dry-run")
    print(f"gc --dry-run: {seconds:.2f} s, would remove {report['blobs']} blobs ({report['bytes']} bytes)")
    if args.no_collect:
        return
    seconds, report = gc(args.data_dir)
    rate = int(report["blobs"]) / seconds if seconds else 0  # type: ignore[call-overload]
    print(f"gc: {seconds:.2f} s, removed {report['blobs']} blobs ({report['bytes']} bytes), {rate:.0f} blobs/s")
    seconds, report = gc(args.data_dir)
    print(f"gc again (nothing to remove, {blobs - args.garbage} blobs referenced): {seconds:.2f} s, {report['blobs']}")


if __name__ == "__main__":
    main()
