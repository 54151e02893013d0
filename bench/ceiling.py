"""The ceiling of the fleet benchmark's layout on this machine: regbench's blob_head and mount
through the same nginx site, in front of two Granian replicas (one worker each) of a registry stub
that does nothing but answer correctly, or one thing more:

    python bench/ceiling.py --work none OUT_DIR     # answers only (pushed sizes in files)
    python bench/ceiling.py --work read OUT_DIR     # + one indexed PostgreSQL read per blob HEAD
    python bench/ceiling.py --work commit OUT_DIR   # + one committed INSERT per mount
    python bench/ceiling.py --work read OUT_DIR -- --reps 5    # regbench's arguments after --

No routing framework, no authentication, no access decision: what is left is nginx, Granian, the
load generator (hey for blob_head, regbench's own threads for mount) and, with --work, the one
PostgreSQL round trip over Portside's own async pool (metadata.async_reads). Whatever a real
registry does on top can only be slower, so a target above these figures cannot be met here.
PostgreSQL is a private cluster like bench/fleet.py's (fsync and synchronous_commit on).

This file is also the stub itself: Granian imports `ceiling:app` with this folder on its path.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")

# -- the stub (in each Granian worker) ----------------------------------------------------------------

_SIZES = Path(os.environ.get("CEILING_SIZES", "/nonexistent"))
_WORK = os.environ.get("CEILING_WORK", "none")
_reads: Any = None


def _pool() -> Any:
    global _reads
    if _reads is None:
        from sqlalchemy import create_engine

        from portside.metadata.async_reads import AsyncReads

        _reads = AsyncReads(create_engine(os.environ["CEILING_DATABASE_URL"]), size=16, timeout=5)
    return _reads


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b"") -> None:
    headers = headers or []
    if not any(name == b"content-length" for name, _ in headers):
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": [API_VERSION, *headers]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    query = {key: values[0] for key, values in parse_qs(scope["query_string"].decode()).items()}
    if path in ("/v2/", "/healthz"):
        await _answer(send, 200, [(b"content-type", b"application/json")], b"{}")
    elif method == "POST" and "/blobs/uploads" in path:
        name = path[len("/v2/") : path.index("/blobs/uploads")]
        if "mount" in query:
            digest = query["mount"]
            if _WORK == "commit":
                insert = "INSERT INTO links (repository, digest) VALUES (%s, %s) ON CONFLICT DO NOTHING"
                await _pool().fetch(insert, (name, digest))
            location = f"/v2/{name}/blobs/{digest}".encode()
            await _answer(send, 201, [(b"location", location), (b"docker-content-digest", digest.encode())])
        else:
            location = f"/v2/{name}/blobs/uploads/{uuid.uuid4()}".encode()
            await _answer(send, 202, [(b"location", location)])
    elif method == "PUT" and "/blobs/uploads/" in path:
        name = path[len("/v2/") : path.index("/blobs/uploads")]
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        digest = query["digest"]
        (_SIZES / digest).write_text(str(size))
        location = f"/v2/{name}/blobs/{digest}".encode()
        await _answer(send, 201, [(b"location", location), (b"docker-content-digest", digest.encode())])
    elif method == "HEAD" and "/blobs/" in path:
        digest = path.rsplit("/", 1)[1]
        if _WORK == "read":
            await _pool().fetch("SELECT size FROM blobs WHERE digest = %s", (digest,))
        try:
            size = (_SIZES / digest).read_text()
        except OSError:
            await _answer(send, 404)
            return
        headers = [(b"content-length", size.encode()), (b"docker-content-digest", digest.encode())]
        await _answer(send, 200, [*headers, (b"content-type", b"application/octet-stream")])
    else:
        await _answer(send, 404)


# -- the runner ---------------------------------------------------------------------------------------


def main() -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import psycopg
    from fleet import plain_http_site, process, wait_http
    from tests.support import nginx as nginx_support
    from tests.support.postgres import PostgresCluster
    from tests.support.server import free_port

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--work", choices=["none", "read", "commit"], default="none")
    parser.add_argument("regbench", nargs=argparse.REMAINDER, help="after --: regbench's own arguments")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    sizes = out / "sizes"
    sizes.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench"), "CEILING_SIZES": str(sizes), "CEILING_WORK": args.work}
    with contextlib.ExitStack() as stack:
        if args.work != "none":
            pg = stack.enter_context(PostgresCluster(out / "pg", out / "postgres.log"))
            url = pg.create_database("ceiling")
            with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
                conn.execute("CREATE TABLE blobs (digest text PRIMARY KEY, size bigint NOT NULL)")
                conn.execute("CREATE TABLE links (repository text, digest text, PRIMARY KEY (repository, digest))")
                conn.execute(
                    "INSERT INTO blobs SELECT 'sha256:' || lpad(i::text, 64, '0'), 1048576"
                    " FROM generate_series(1, 100000) AS i"
                )
                conn.execute("ANALYZE blobs")
            env["CEILING_DATABASE_URL"] = url
        replicas = []
        for _ in range(2):
            port = free_port()
            command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
            command += ["--port", str(port), "--workers", "1", "--no-log", "--backlog", "2048", "ceiling:app"]
            replica = stack.enter_context(process(command, out / f"replica-{port}.log", env))
            wait_http(f"http://127.0.0.1:{port}/v2/", replica, "the stub")
            replicas.append((port, replica))
        port = free_port()
        base = out / "nginx"
        base.mkdir(exist_ok=True)
        site = plain_http_site([f"127.0.0.1:{p}" for p, _ in replicas], port, base)
        config = base / "nginx.conf"
        config.write_text(nginx_support._main_config(base, site, out / "nginx.log"), encoding="utf-8")
        proxy = stack.enter_context(process(["nginx", "-c", str(config)], out / "nginx-stdout.log"))
        wait_http(f"http://127.0.0.1:{port}/healthz", proxy, "nginx")
        pids = ",".join(str(p.pid) for p in [*(r for _, r in replicas), proxy])
        extra = [a for a in args.regbench if a != "--"]
        regbench = [sys.executable, str(ROOT.parent / "shared" / "bench" / "regbench.py"), f"http://127.0.0.1:{port}"]
        regbench += ["--scenarios", "blob_head,mount", "--pid-a", pids]
        regbench += ["--json", str(out / "regbench.json"), "--md", str(out / "regbench.md"), *extra]
        return subprocess.run(regbench).returncode


if __name__ == "__main__":
    sys.exit(main())
