"""Starting and stopping a real `portside serve` process for tests.

Every server a test starts is stopped by the fixture that started it, and its output goes to a
file under test-output/ (never to the test runner's own output).
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from portside.access import accounts
from portside.blobs import open_store
from portside.blobs.store import BlobStore
from portside.metadata.database import Database, make_engine
from portside.registry.service import blob_location

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"


def no_server_error(response: httpx.Response) -> None:
    """An httpx response hook: no request in the tests may produce a 5xx answer."""
    request = response.request
    assert response.status_code < 500, f"{request.method} {request.url} answered {response.status_code}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Namespaces the tests push to: users that exist in every test server.
NAMESPACES = ("octo", "e2e", "t")

# The blob store every test server uses unless a test sets PORTSIDE_STORAGE_URL itself: None is
# the data directory; tests/conftest.py sets a function giving each server a prefix of its own on
# S3 when the suite runs with PORTSIDE_TEST_STORAGE=s3 (or s3-stream).
STORAGE: Callable[[str], dict[str, str]] | None = None
# Likewise the metadata database: None is SQLite in the data directory; with
# PORTSIDE_TEST_DATABASE=postgresql each server gets a database of its own in one private cluster.
DATABASE: Callable[[str], dict[str, str]] | None = None


@dataclass
class Server:
    data_dir: Path
    port: int
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"
    process: subprocess.Popen[bytes] | None = None
    namespaces: tuple[str, ...] = NAMESPACES

    @property
    def admin(self) -> tuple[str, str]:
        """The site admin's user name and token, written by the server on its first start."""
        fields = self._initial_credentials()
        return fields["user"], fields["token"]

    @property
    def admin_password(self) -> str:
        """The site admin's password for the pages, written next to the token."""
        return self._initial_credentials()["password"]

    def _initial_credentials(self) -> dict[str, str]:
        lines = (self.data_dir / "initial-admin-credentials").read_text().splitlines()
        return dict(line.split(": ", 1) for line in lines)

    @property
    def basic_auth(self) -> str:
        user, token = self.admin
        return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()

    def client(self, **kwargs: object) -> httpx.Client:
        """An HTTP client signed in as the site admin (Basic credentials on every request)."""
        headers = {"Authorization": self.basic_auth, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        options: dict[str, object] = {"timeout": 60, **kwargs}
        return httpx.Client(base_url=self.url, headers=headers, **options)  # type: ignore[arg-type]

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `portside ARGS` on this server's data directory, as an operator would."""
        result = subprocess.run(
            [sys.executable, "-m", "portside", *args, "--data-dir", str(self.data_dir)],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **self.env},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"portside {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def token(self, user: str, scopes: str = "read:packages,write:packages,delete:packages", *extra: str) -> str:
        return self.cli("token", "create", "--user", user, "--scopes", scopes, *extra).stdout.strip()

    @property
    def host(self) -> str:
        """host:port, as image references name the registry."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def start(self, timeout: float = 30.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portside",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"portside exited with {self.process.returncode}; see {self.log_path}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1, verify=False)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            self._create_namespaces()
            return
        self.stop()
        raise RuntimeError(f"portside did not start within {timeout}s; see {self.log_path}")

    def store_call(self, fn: Callable[[BlobStore], Awaitable[T]]) -> T:
        """Run `fn(store)` on this server's blob store, whichever driver it is (for tests that
        reach behind the registry: a lost blob, an upload's leftovers)."""

        async def call() -> T:
            store = open_store(self.env.get("PORTSIDE_STORAGE_URL", ""), self.data_dir)
            try:
                return await fn(store)
            finally:
                await store.close()

        return asyncio.run(call())

    def lose_blob(self, digest: str) -> None:
        """Remove a blob's bytes from the store, as a disk failure or a careless operator would."""
        location = self.read(blob_location, digest)  # where a chunked upload's commit left it
        self.store_call(lambda store: store.delete(digest, location=location))

    def upload_bytes_exist(self, upload_id: str) -> bool:
        return upload_id in self.store_call(lambda store: store.stale_uploads(time.time() + 3600))

    @property
    def database_url(self) -> str:
        return self.env.get("PORTSIDE_DATABASE_URL") or f"sqlite:///{self.data_dir.resolve() / 'portside.db'}"

    def database(self) -> Database:
        """The server's metadata database, for test set-up that the CLI would otherwise do (faster)."""
        return Database(make_engine(self.database_url))

    def write(self, change: Callable[..., T], *args: Any) -> T:
        """Run `change(conn, *args)` in one write transaction on the server's database."""
        db = self.database()
        try:
            return db.write_sync(change, *args)
        finally:
            db.close()

    def read(self, query: Callable[..., T], *args: Any) -> T:
        db = self.database()
        try:
            return db.read_sync(query, *args)
        finally:
            db.close()

    def _create_namespaces(self) -> None:
        db = self.database()
        try:
            for name in self.namespaces:
                if db.read_sync(accounts.find_account, name) is None:
                    db.write_sync(accounts.create_user, name)
        finally:
            db.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # The server's workers share its process group: signal them all.
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def kill(self) -> None:
        """kill -9 the whole server, as a crash would."""
        self.stop(signal.SIGKILL)


@contextmanager
def running_server(tmp: Path, name: str, **kwargs: object) -> Iterator[Server]:
    log_path = OUTPUT / "logs" / f"{name}.log"
    log_path.unlink(missing_ok=True)  # a new server, a new log; restarts of the same server append to it
    for backend in (STORAGE, DATABASE):
        if backend is not None:
            kwargs["env"] = {**backend(name), **kwargs.get("env", {})}  # type: ignore[dict-item]
    server = Server(data_dir=tmp / "data", port=free_port(), log_path=log_path, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
