"""The fleet benchmark of docs/performance.md, in one command: regbench through nginx over two
replicas (one worker each) on PostgreSQL and S3, against CNCF distribution on the same SeaweedFS.

    python bench/fleet.py [--src SRC] OUT_DIR -- [regbench arguments]
    python bench/fleet.py --growth OUT_DIR -- [bench/growth.py arguments]

With --growth it runs bench/growth.py through nginx instead (the growth table on PostgreSQL and S3),
and starts no distribution.

It starts, on loopback ports, and stops when regbench ends (or on Ctrl-C):
- one SeaweedFS (tests/support/seaweed.py) and one private PostgreSQL cluster
  (tests/support/postgres.py: fsync, synchronous_commit and full_page_writes on, SCRAM over TCP),
  its database migrated once, as `portside migrate` does;
- two `portside serve --workers 1` replicas on that database and one S3 prefix, downloads
  redirected (the S3 default), `PORTSIDE_TRUSTED_PROXIES=127.0.0.1`; `--src` runs another source
  tree's `portside` (an earlier commit's `git archive`, for a before/after);
- Debian's nginx on deploy/nginx/portside.conf as shipped (tests/support/nginx.py renders it), but
  listening in plain HTTP, as distribution does, so that both pay for the same transport;
- distribution 2.8.2 (`docker-registry`, Debian's package) with its s3 driver on the same SeaweedFS,
  redirects disabled (with them it answers a blob HEAD with 307, which regbench counts as wrong),
  with `AWS_CA_BUNDLE` unset (its S3 driver panics with it set).

regbench runs as A = distribution, B = the fleet, with the site admin's token for B and every
process's pid for the CPU columns. Output, logs and the regbench report go to OUT_DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import nginx as nginx_support  # noqa: E402
from tests.support.postgres import PostgresCluster  # noqa: E402
from tests.support.seaweed import SeaweedS3  # noqa: E402
from tests.support.server import Server, free_port  # noqa: E402

from portside.metadata.database import upgrade  # noqa: E402

REGBENCH = ROOT.parent / "shared" / "bench" / "regbench.py"


def plain_http_site(replicas: list[str], port: int, base: Path) -> str:
    """The shipped site with its TLS listener made plain HTTP on `port` (and the redirect server's
    port out of the way)."""
    cert, key = nginx_support.self_signed(base / "certs")
    site = nginx_support.render_site(replicas, free_port(), port, cert, key)
    site = re.sub(rf"listen 127\.0\.0\.1:{port} ssl[^;]*;", f"listen 127.0.0.1:{port};", site)
    return "\n".join(line for line in site.splitlines() if not line.strip().startswith("ssl_"))


@contextlib.contextmanager
def process(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer at {url}")


def distribution_config(s3: SeaweedS3, port: int) -> str:
    return f"""version: 0.1
log: {{level: warn}}
storage:
  s3: {{accesskey: {s3.access_key}, secretkey: "{s3.secret_key}", region: {s3.region},
        regionendpoint: "{s3.endpoint}", bucket: {s3.bucket}, rootdirectory: /dist, secure: false,
        v4auth: true}}
  cache: {{blobdescriptor: inmemory}}
  delete: {{enabled: true}}
  redirect: {{disable: true}}
http: {{addr: "127.0.0.1:{port}", headers: {{X-Content-Type-Options: [nosniff]}}}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--growth", action="store_true", help="run bench/growth.py, not regbench")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the source tree of the portside to run")
    parser.add_argument("regbench", nargs=argparse.REMAINDER, help="after --: regbench's own arguments")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    extra = [a for a in args.regbench if a != "--"]

    with contextlib.ExitStack() as stack:
        s3 = stack.enter_context(SeaweedS3(out / "seaweed", out / "seaweed.log"))
        pg = stack.enter_context(PostgresCluster(out / "pg", out / "postgres.log"))
        url = pg.create_database("fleet")
        upgrade(url)
        env = {
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "PORTSIDE_DATABASE_URL": url,
            "PORTSIDE_STORAGE_URL": f"s3://{s3.bucket}/portside-{uuid.uuid4().hex[:8]}?endpoint={s3.endpoint}"
            f"&region={s3.region}",
            "PORTSIDE_TRUSTED_PROXIES": "127.0.0.1",
            "PYTHONPATH": str(args.src.resolve()),
        }
        replicas = []
        for name in ("a", "b"):
            server = Server(out / name, free_port(), out / f"replica-{name}.log", ["--workers", "1"], env)
            server.namespaces = ("regbench",) if name == "a" else ()  # the user regbench pushes to
            server.start()  # the first to start makes the site admin; the other finds it
            stack.callback(server.stop)
            replicas.append(server)

        port = free_port()
        base = out / "nginx"
        base.mkdir(exist_ok=True)
        site = plain_http_site([r.host for r in replicas], port, base)
        config = base / "nginx.conf"
        config.write_text(nginx_support._main_config(base, site, out / "nginx.log"), encoding="utf-8")
        subprocess.run(["nginx", "-t", "-c", str(config)], check=True, capture_output=True)
        proxy = stack.enter_context(process(["nginx", "-c", str(config)], out / "nginx-stdout.log"))
        wait_http(f"http://127.0.0.1:{port}/healthz", proxy, "nginx")

        user, token = replicas[0].admin
        if args.growth:
            growth = [sys.executable, str(ROOT / "bench" / "growth.py"), f"http://127.0.0.1:{port}", f"{user}:{token}"]
            return subprocess.run([*growth, "--vacuum", url, *extra]).returncode

        dist_port = free_port()
        (out / "dist.yml").write_text(distribution_config(s3, dist_port), encoding="utf-8")
        dist_env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        dist = stack.enter_context(
            process(["docker-registry", "serve", str(out / "dist.yml")], out / "distribution.log", dist_env)
        )
        wait_http(f"http://127.0.0.1:{dist_port}/v2/", dist, "distribution")

        replica_pids = [str(r.process.pid) for r in replicas if r.process is not None]
        command = [
            sys.executable,
            str(REGBENCH),
            f"http://127.0.0.1:{dist_port}",
            f"http://127.0.0.1:{port}",
            "--auth-b",
            f"{user}:{token}",
            "--pid-a",
            str(dist.pid),
            "--pid-b",
            ",".join([*replica_pids, str(proxy.pid)]),
            "--json",
            str(out / "regbench.json"),
            "--md",
            str(out / "regbench.md"),
            *extra,
        ]
        print(" ".join(command[:4]), "...", flush=True)
        return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
