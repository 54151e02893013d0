"""A private PostgreSQL cluster for tests, from Debian's `postgresql` package (no Docker, no network).

Each cluster is its own data directory and postmaster, run as the unprivileged `postgres` user that
the Debian package creates (PostgreSQL refuses to run as root, and the tests run as root), through
`setpriv --reuid=postgres --regid=postgres --init-groups`: unlike `runuser` it opens no PAM session
and execs in place, so the Popen's pid is the postmaster's own. Each has:

- its own free port on 127.0.0.1 only (`listen_addresses='127.0.0.1'`), kept across restarts;
- its own Unix socket directory beside the data (`run/`), used only for the fixture's own admin;
- `fsync=on`, `synchronous_commit=on` and `full_page_writes=on` set explicitly: the durability
  tests kill it and count on every acknowledged commit being there afterwards;
- a `portside` role (LOGIN, CREATEDB) with a random password, SCRAM over TCP; the superuser
  `postgres` needs no password over the Unix socket (trust), for `psql()` and `create_database()`;
- the server's output appended to the log file the caller names, never the test runner's.

    with PostgresCluster(tmp_path / "pg", OUTPUT / "logs" / "postgres.log") as pg:
        engine = make_engine(pg.url)                  # postgresql+psycopg://portside:...@127.0.0.1:PORT/portside
        other = pg.create_database("other")           # a second database, owned by portside
        pg.kill(); pg.start()                         # a crash, then crash recovery on the same data
        pg.restart()                                  # fast shutdown and start, same port

Where the data lives. The `postgres` user must be able to reach the data directory, and a pytest
tmp_path is not reachable by it: /tmp/pytest-of-root is mode 0700 and pytest resets it to 0700 at
the start of every session, so granting o+x there would not last. So the cluster lives in
`data_dir` itself only when `postgres` can reach it (and the socket path fits in 107 bytes);
otherwise it lives in a fresh directory under /tmp/portside-postgres/ (root's, mode 0711: anyone
may pass through, nobody may list it; each cluster's directory is postgres's, mode 0700), and
`data_dir` becomes a symlink to it. `close()` (and leaving the `with` block) removes such a
relocated directory; directories left by a process that died without closing are removed by the
next cluster that starts, once neither the process nor the postmaster is alive. PORTSIDE_PG_BASE
moves the base directory.

initdb (`--username=postgres --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8
--locale=C`, with its fsyncs) runs once per process into a template under the base directory, and
every cluster starts from a copy of it (`cp -a`, which keeps the owner): 1.1 s once rather than once
per cluster. `fresh_initdb=True` runs initdb into the cluster's own directory instead. Measured on
the 2-core machine, busy: the first cluster of a process is ready in 1.5-2.0 s, a further one in
0.2-0.35 s (copy, start, CREATE ROLE and DATABASE), a restart of an existing one in 0.05-0.1 s
(0.5-0.8 s after `kill()`: crash recovery); `stop()` takes 0.05-0.2 s.

When the tests do not run as root, everything runs as the current user, nothing needs relocating
(but a socket path that would not fit), and the base directory is /tmp/portside-postgres-UID.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

OS_USER = "postgres"  # created by Debian's postgresql-common
# Root's is shared by the root sessions of the machine; any other user gets one of its own.
BASE = Path(
    os.environ.get("PORTSIDE_PG_BASE")
    or ("/tmp/portside-postgres" if os.geteuid() == 0 else f"/tmp/portside-postgres-{os.geteuid()}")
)
SUPERUSER = "postgres"
ROLE = "portside"
DEFAULT_DRIVER = "psycopg"
# unix(7): sun_path holds 108 bytes with its terminating NUL.
_SOCKET_PATH_MAX = 107
# Variables that would point psql or libpq elsewhere than this cluster.
_PG_ENV = re.compile(r"^(PG[A-Z]+|PSQLRC|LANG|LANGUAGE|LC_[A-Z]+)$")


def bin_dir() -> Path:
    """PostgreSQL's server binaries: PORTSIDE_PG_BIN, else the newest /usr/lib/postgresql/N/bin."""
    if "PORTSIDE_PG_BIN" in os.environ:
        return Path(os.environ["PORTSIDE_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries: apt-get install postgresql")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _PG_ENV.match(k)}
    env["LC_ALL"] = "C.UTF-8"
    return env


def _as_user(command: list[str], os_user: str) -> list[str]:
    """`command` run as `os_user` when we are root (setpriv: no PAM, no extra process), else as is."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", f"--reuid={os_user}", f"--regid={os_user}", "--init-groups", "--", *command]


def _chown(path: Path, os_user: str) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(os_user)
        os.chown(path, user.pw_uid, user.pw_gid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    """Live (not zombie) children of `pid`."""
    children = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            children.append(int(Path(stat).parent.name))
    return children


# -- the per-process template and the base directory ------------------------------------------

_template_lock = threading.Lock()
_templates: dict[tuple[str, str], Path] = {}
_live: set[PostgresCluster] = set()


def _base_dir() -> Path:
    BASE.mkdir(mode=0o711, parents=True, exist_ok=True)
    if BASE.stat().st_uid == os.geteuid():
        BASE.chmod(0o711)
    return BASE


def _sweep() -> None:
    """Remove relocated clusters whose owning process is gone and whose postmaster is not running."""
    with contextlib.suppress(OSError):
        for home in _base_dir().iterdir():
            try:
                owner = int((home / "owner.pid").read_text())
            except (OSError, ValueError):
                continue
            if owner == os.getpid() or _alive(owner):
                continue
            pidfile = home / "pgdata" / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError):
                if _alive(int(pidfile.read_text().split()[0])):
                    continue
            shutil.rmtree(home, ignore_errors=True)


def _initdb(pgdata: Path, log_path: Path, binaries: Path, os_user: str) -> None:
    command = [
        str(binaries / "initdb"),
        f"--pgdata={pgdata}",
        f"--username={SUPERUSER}",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
    ]
    with log_path.open("ab") as log:
        log.write(f"--- {dt.datetime.now().isoformat()} {' '.join(command)}\n".encode())
        log.flush()
        result = subprocess.run(
            _as_user(command, os_user), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_env()
        )
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed ({result.returncode}); see {log_path}")


def _template(log_path: Path, binaries: Path, os_user: str) -> Path:
    """An initdb'd data directory for this process to copy, made on first use."""
    key = (str(binaries), os_user)
    with _template_lock:
        if key not in _templates:
            home = Path(tempfile.mkdtemp(prefix="template-", dir=_base_dir()))
            (home / "owner.pid").write_text(str(os.getpid()))
            _chown(home, os_user)
            _initdb(home / "pgdata", log_path, binaries, os_user)
            _templates[key] = home / "pgdata"
        return _templates[key]


@atexit.register
def _at_exit() -> None:
    for cluster in list(_live):
        with contextlib.suppress(Exception):
            cluster.close(timeout=5)
    for pgdata in _templates.values():
        shutil.rmtree(pgdata.parent, ignore_errors=True)


# -- the cluster --------------------------------------------------------------------------------


@dataclass(eq=False)
class PostgresCluster:
    data_dir: Path
    log_path: Path
    driver: str = DEFAULT_DRIVER  # the SQLAlchemy dialect's driver in `url`: psycopg, asyncpg, psycopg2
    database: str = "portside"  # created on first start, owned by the portside role
    settings: dict[str, str] = field(default_factory=dict)  # more `-c name=value` for the server
    fresh_initdb: bool = False  # initdb into this cluster instead of copying the process's template
    os_user: str = OS_USER
    stop_timeout: float = 20.0
    start_timeout: float = 60.0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    binaries: Path = field(default_factory=bin_dir)
    _port: int | None = None
    home: Path | None = None  # where the cluster really is: data_dir, or a relocated directory
    relocated: bool = False
    process: subprocess.Popen[bytes] | None = None
    start_seconds: float | None = None  # the last start(), until it accepted connections
    stop_seconds: float | None = None  # the last stop()

    # -- what clients need ------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the cluster has not been started")
        return self._port

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the portside role's database over TCP."""
        return self.url_for(self.database)

    def url_for(self, database: str, driver: str | None = None) -> str:
        """SQLAlchemy URL of `database` as the portside role; driver "" gives a plain postgresql:// URI."""
        driver = self.driver if driver is None else driver
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        credentials = f"{ROLE}:{urllib.parse.quote(self.password, safe='')}"
        return f"{scheme}://{credentials}@127.0.0.1:{self.port}/{urllib.parse.quote(database, safe='')}"

    @property
    def dsn(self) -> str:
        """libpq URI of the same database (psycopg.connect, asyncpg.connect, psql)."""
        return self.url_for(self.database, driver="")

    @property
    def admin_dsn(self) -> str:
        """libpq URI for the superuser over the Unix socket (no password)."""
        return f"postgresql://{SUPERUSER}@/postgres?host={urllib.parse.quote(str(self.socket_dir))}&port={self.port}"

    @property
    def pgdata(self) -> Path:
        assert self.home is not None, "the cluster has not been started"
        return self.home / "pgdata"

    @property
    def socket_dir(self) -> Path:
        assert self.home is not None, "the cluster has not been started"
        return self.home / "run"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def create_database(self, name: str) -> str:
        """A new database owned by the portside role; its SQLAlchemy URL."""
        self.psql(f"CREATE DATABASE {_ident(name)} OWNER {ROLE}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")

    def psql(self, *sql: str, database: str = "postgres") -> str:
        """Run each statement (its own transaction) as the superuser over the socket; psql's output."""
        command = [str(self.binaries / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER, "-d", database]
        for statement in sql:
            command += ["-c", statement]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=_env(),
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (initdb on first use) and wait until it accepts connections."""
        if self.running:
            raise RuntimeError("the cluster is already running")
        began = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.home is None:
            self._prepare_home()
        if not (self.pgdata / "PG_VERSION").exists():
            if self.fresh_initdb:
                _initdb(self.pgdata, self.log_path, self.binaries, self.os_user)
            else:
                template = _template(self.log_path, self.binaries, self.os_user)
                subprocess.run(["cp", "-a", str(template), str(self.pgdata)], check=True)
        attempts = 5 if self._port is None else 1
        for attempt in range(attempts):
            if self._port is None or attempt:
                self._port = free_port()
            if self._launch(began + self.start_timeout):
                break
        else:
            raise RuntimeError(f"postgres could not bind a port in {attempts} tries; see {self.log_path}")
        _live.add(self)
        assert self.home is not None
        marker = self.home / "initialized"
        if not marker.exists():
            self.psql(
                f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{self.password}'",
                f"CREATE DATABASE {_ident(self.database)} OWNER {ROLE}",
            )
            marker.write_text(self.password)
        else:  # a cluster made by an earlier object on the same directory keeps its password
            self.password = marker.read_text()
        self.start_seconds = time.monotonic() - began

    def stop(self, timeout: float | None = None) -> None:
        """Fast shutdown (`pg_ctl stop -m fast`); SIGKILL all of the server if it is not gone in time."""
        if self.process is None:
            return
        began = time.monotonic()
        timeout = self.stop_timeout if timeout is None else timeout
        if self.process.poll() is None:
            # -W: pg_ctl only sends SIGINT; waiting for the postmaster (our child) is exact.
            command = [str(self.binaries / "pg_ctl"), "stop", "-D", str(self.pgdata), "-m", "fast", "-W"]
            result = subprocess.run(
                _as_user(command, self.os_user), capture_output=True, env=_env(), stdin=subprocess.DEVNULL
            )
            if result.returncode != 0:  # no or a wrong postmaster.pid: signal it ourselves
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._note(f"not down after {timeout} s: kill -9 of the postmaster and its children")
        self._kill_all()
        self.process = None
        self.stop_seconds = time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once, as a crash; `start()` recovers.

        All of them, not the postmaster alone: orphaned backends would go on serving their sessions
        (and finishing commits) until they noticed, which is no crash for a client.
        The stale postmaster.pid and socket lock are removed (a crash leaves them; PostgreSQL
        would refuse to start if another process had meanwhile taken the old pid).
        """
        if self.process is None:
            return
        self._note("kill -9 of the postmaster and its children")
        self._kill_all()
        self.process = None
        with contextlib.suppress(FileNotFoundError):
            (self.pgdata / "postmaster.pid").unlink()
        for stale in self.socket_dir.glob(".s.PGSQL.*"):
            stale.unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop, and remove the cluster's directory if it was relocated (data_dir's stays)."""
        try:
            self.stop(timeout)
        finally:
            _live.discard(self)
            if self.relocated and self.home is not None:
                shutil.rmtree(self.home, ignore_errors=True)
                with contextlib.suppress(OSError):
                    if self.data_dir.is_symlink():
                        self.data_dir.unlink()
                self.home = None

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "200",
            "logging_collector": "off",  # log lines to stderr, which is the caller's log file
            "log_line_prefix": "%m [%p] %q%u@%d ",
            **self.settings,
        }
        command = [str(self.binaries / "postgres"), "-D", str(self.pgdata)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        return command

    def _prepare_home(self) -> None:
        """Use data_dir if the postgres user can reach it (and the socket path fits); else relocate."""
        candidate = self.data_dir
        fits = len(str(candidate.resolve() / "run" / ".s.PGSQL.65535")) <= _SOCKET_PATH_MAX
        if fits and not candidate.is_symlink():
            candidate.mkdir(parents=True, exist_ok=True)
            _chown(candidate, self.os_user)
            candidate.chmod(0o700)
            reachable = subprocess.run(_as_user(["test", "-w", str(candidate)], self.os_user)).returncode == 0
            if reachable:
                self._make_home(candidate)
                return
            with contextlib.suppress(OSError):
                candidate.rmdir()  # only if empty: then it becomes the symlink
        _sweep()
        home = Path(tempfile.mkdtemp(prefix="pg-", dir=_base_dir()))
        (home / "owner.pid").write_text(str(os.getpid()))
        self._make_home(home)
        self.relocated = True
        if not self.data_dir.exists():
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            self.data_dir.symlink_to(home, target_is_directory=True)

    def _make_home(self, home: Path) -> None:
        _chown(home, self.os_user)
        home.chmod(0o700)
        (home / "run").mkdir(mode=0o700, exist_ok=True)
        _chown(home / "run", self.os_user)
        self.home = home

    def _launch(self, deadline: float) -> bool:
        """Run the postmaster; True once it is ready, False if its port was taken."""
        with self.log_path.open("ab") as log:
            log.write(f"--- {dt.datetime.now().isoformat()} starting on port {self.port}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                _as_user(self.command(), self.os_user),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
                env=_env(),
                start_new_session=True,  # no terminal signal (a ^C to the tests) reaches it
            )
        log_start = self.log_path.stat().st_size
        pidfile = self.pgdata / "postmaster.pid"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                with self.log_path.open("rb") as log:
                    log.seek(max(0, log_start - 4096))
                    tail = log.read().decode(errors="replace")
                self.process = None
                if "could not bind" in tail or "Address already in use" in tail:
                    return False
                raise RuntimeError(f"postgres exited during start-up; see {self.log_path}")
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                # postmaster.pid line 8 is the postmaster's status; "ready" once it takes connections.
                if len(lines) >= 8 and int(lines[0]) == self.process.pid and lines[7].strip() == "ready":
                    return True
            time.sleep(0.01)
        self._kill_all()
        self.process = None
        raise RuntimeError(f"postgres not ready in {self.start_timeout} s; see {self.log_path}")

    def _kill_all(self) -> None:
        """SIGKILL the postmaster and every child it has, at once.

        Not a process group: every PostgreSQL backend calls setsid(), so the postmaster's group holds
        the postmaster alone. It is stopped (SIGSTOP) first, so that it forks and reaps nothing while
        its children are listed; its children can then not vanish and have their pids reused.
        """
        if self.process is None:
            return
        postmaster = self.process.pid
        victims: list[int] = []
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGSTOP)
                victims = _children(postmaster)
                for pid in victims:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                os.kill(postmaster, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in victims) and time.monotonic() < deadline:
            time.sleep(0.005)

    def _note(self, text: str) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- {dt.datetime.now().isoformat()} fixture: {text}\n".encode())


def _ident(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    if not name or "\x00" in name:
        raise ValueError(f"bad identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'
