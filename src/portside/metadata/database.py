"""The metadata database: engine set-up, migrations, and running queries off the event loop."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import psycopg
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable, Insert

from portside.faults import clear
from portside.metadata.async_reads import AsyncReads, socket_quiet
from portside.metadata.errors import UNREACHABLE, database_problem, rolled_back
from portside.metadata.locks import KeyLocks
from portside.metadata.writer import SqliteWriter

T = TypeVar("T")
log = logging.getLogger("portside.storage")

MIGRATIONS = Path(__file__).parent / "migrations"


def engine_url(url: str) -> str:
    """`postgresql://…` means psycopg 3 (SQLAlchemy alone would pick psycopg2)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url.removeprefix(plain)
    return url


POOL_SIZE = 12  # PostgreSQL connections per worker process for writes and reads in threads
READ_POOL_SIZE = 16  # and for the prepared reads on the event loop (docs/scale-out.md: sizing)
POOL_TIMEOUT = 5.0
WRITE_ATTEMPTS = 3  # a transaction PostgreSQL rolls back as a deadlock's victim runs again


def make_engine(url: str, *, fsync: bool = True) -> Engine:
    url = engine_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, pool_size=20, max_overflow=20, connect_args={"timeout": 30})
        _configure_sqlite(engine, fsync=fsync)
        return engine
    # A fixed pool, all kept open: with overflow, 16 concurrent reads per worker closed and reopened
    # ~100 connections a second (a backend fork and a SCRAM exchange each; 220 sessions in 3.7 s
    # under 32 callers). The hot reads have connections of their own (metadata.async_reads), and so
    # do the digest locks (metadata.locks). A request that waits POOL_TIMEOUT for one answers 503.
    engine = create_engine(
        url, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=POOL_TIMEOUT, connect_args={"connect_timeout": 5}
    )
    _check_on_checkout(engine)
    return engine


def _check_on_checkout(engine: Engine) -> None:
    """A connection the server dropped (a restart, a crash) is replaced before a request uses it.

    This is what `pool_pre_ping` does, without its round trip on every checkout: a server that shuts
    down or dies closes the connection's socket (with a FATAL message first on a shutdown), so an idle
    pooled connection whose socket has something to read is suspect, and only then is it pinged.
    """

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if socket_quiet(dbapi_connection):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise sqlalchemy.exc.DisconnectionError(f"a pooled connection is gone: {error}") from error


def _configure_sqlite(engine: Engine, *, fsync: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front: a deferred transaction that later upgrades to a
        # writer can fail with SQLITE_BUSY without waiting for busy_timeout.
        if conn.get_execution_options().get("write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _alembic(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine_url(url).replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the schema to the newest revision (idempotent; run once before workers start)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(_alembic(url), "head")


def head_revision() -> str | None:
    """The schema revision this release's migrations end at."""
    return ScriptDirectory.from_config(_alembic("sqlite://")).get_current_head()


def current_revision(url: str) -> str | None:
    """The database's schema revision (None: no Portside schema yet)."""
    engine = create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def schema_behind(url: str) -> str | None:
    """Why the database's schema is too old for this release (None when it is current, or newer:
    migrations are additive first, so a replica of the previous release keeps working on the next
    release's schema during a rolling upgrade)."""
    script = ScriptDirectory.from_config(_alembic(url))
    head = script.get_current_head()
    current = current_revision(url)
    if current == head:
        return None
    if current is None:
        return f"the database has no Portside schema yet (this release needs revision {head})"
    try:
        known = {rev.revision for rev in script.iterate_revisions(head, "base")}
    except CommandError:
        known = set()
    if current not in known:
        return None  # a newer release migrated it: additive, so this one still works
    return f"the database schema is at revision {current}, this release needs {head}"


def dialect_insert(dialect: str, table: Any) -> Insert:
    """An INSERT that supports ON CONFLICT on both SQLite and PostgreSQL."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class Query:
    """A statement compiled once for the engine's dialect, with its type conversions.

    The hot paths (a manifest GET, a blob HEAD, the bearer-token check, the rows a push writes) run
    the same few statements thousands of times a second; building, compiling and executing them
    through SQLAlchemy's Connection cost several hundred microseconds each, executing the compiled
    SQL on a DBAPI cursor a few dozen.
    """

    def __init__(self, engine: Engine, stmt: Executable) -> None:
        compiled = stmt.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self._positional = compiled.positiontup is not None
        self._names = list(compiled.positiontup or compiled.binds)
        # Values SQLAlchemy bound itself (an OFFSET 0 that comes with LIMIT, say).
        self._defaults = {name: compiled.binds[name].effective_value for name in self._names}
        # Columns whose Python-side default SQLAlchemy would compute per execution (an INSERT).
        for column in [*getattr(compiled, "insert_prefetch", ()), *getattr(compiled, "update_prefetch", ())]:
            if column.default is None or not column.default.is_scalar:
                raise ValueError(f"a prepared statement must set column {column.key} explicitly")
            self._defaults[column.key] = column.default.arg
        self.names = tuple(self._names)
        self._binds = [compiled.binds[name].type._cached_bind_processor(engine.dialect) for name in self._names]
        columns = getattr(stmt, "selected_columns", None) or getattr(stmt, "_returning", ())
        self._results = [col.type._cached_result_processor(engine.dialect, None) for col in columns]
        self._convert = any(self._results)
        self.width = len(self._results)  # the number of columns a row has

    def parameters(self, params: dict[str, Any]) -> list[Any] | dict[str, Any]:
        values = [params[name] if name in params else self._defaults[name] for name in self._names]
        bound = [bind(v) if bind else v for bind, v in zip(self._binds, values, strict=True)]
        return bound if self._positional else dict(zip(self._names, bound, strict=True))

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        if not self._convert:
            return tuple(raw)
        return tuple(conv(v) if conv else v for conv, v in zip(self._results, raw, strict=True))


class Rider:
    """A single-row read that rides along with another (`Database.fetch_one(..., rider=)`): the bearer
    token's row with the manifest or blob a request reads. `done` says whether it ran; a caller that
    relies on it must check, and read it itself when it did not."""

    __slots__ = ("done", "params", "query", "row")

    def __init__(self, query: Query, **params: Any) -> None:
        self.query = query
        self.params = params
        self.done = False
        self.row: tuple[Any, ...] | None = None

    def found(self, row: tuple[Any, ...] | None) -> None:
        self.done, self.row = True, row


def _together(first: Query, second: Query) -> str:
    """PostgreSQL: two single-row reads as one statement, each a LATERAL subquery behind a marker
    column (a missing row comes back as NULLs after a NULL marker)."""
    if first._positional or second._positional:  # psycopg binds by name
        raise ValueError("reads ride together only with named parameters")
    shared = set(first.names) & set(second.names)
    if shared:
        raise ValueError(f"reads that ride together must not share parameter names: {sorted(shared)}")
    return (
        "SELECT a.*, b.* FROM (SELECT 1) AS one"
        f" LEFT JOIN LATERAL (SELECT true AS found_, q.* FROM ({first.sql}) AS q LIMIT 1) AS a ON true"
        f" LEFT JOIN LATERAL (SELECT true AS found_, r.* FROM ({second.sql}) AS r LIMIT 1) AS b ON true"
    )


class Database:
    """Runs SQLAlchemy work without stalling the event loop.

    Reads on SQLite run inline: in WAL mode they never wait for writers and take microseconds, far
    less than the hop to a thread and back, which dominated the cost of a manifest GET. Writes on
    SQLite go to the process's one writer (metadata.writer), which commits them in batches. On
    PostgreSQL, prepared reads (`fetch`) run on the event loop over async connections
    (metadata.async_reads); transactions and read functions run in a thread pool.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(write=True)
        self.dialect = engine.dialect.name
        self._inline_reads = self.dialect == "sqlite"
        psycopg = self.dialect == "postgresql" and engine.dialect.driver == "psycopg"
        self._async_reads = AsyncReads(engine, size=READ_POOL_SIZE, timeout=POOL_TIMEOUT) if psycopg else None
        self._together: dict[tuple[str, str], str] = {}  # fetch_one's riders: the statements of pairs
        self._loop_connection: Any = None  # the DBAPI connection for inline reads (SQLite)
        self.locks = KeyLocks(engine)  # named locks across processes (metadata.locks)
        database = engine.url.database
        self._sqlite_writer = (
            SqliteWriter(engine, Path(f"{database}-writer.lock"))
            if self.dialect == "sqlite" and database and database != ":memory:"
            else None
        )

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._inline_reads:
            return self._read_sync(fn, *args)
        return await anyio.to_thread.run_sync(functools.partial(self._read_sync, fn, *args))

    def query(self, stmt: Executable) -> Query:
        return Query(self.engine, stmt)

    @staticmethod
    def execute(conn: Connection, query: Query, **params: Any) -> int:
        """Run a prepared write inside `conn`'s transaction; the number of rows it changed."""
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(query.sql, query.parameters(params))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    @staticmethod
    def rows(conn: Connection, query: Query, **params: Any) -> list[tuple[Any, ...]]:
        """Run a prepared read inside `conn`'s transaction (to see what it has written)."""
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            return [query.row(raw) for raw in cursor.execute(query.sql, query.parameters(params)).fetchall()]
        finally:
            cursor.close()

    @staticmethod
    def rows_each(conn: Connection, query: Query, each: Sequence[dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
        """Run a prepared statement inside `conn`'s transaction once for each parameter set in
        `each`: the rows of each run, in order. On PostgreSQL all the runs are one round trip
        (psycopg's executemany pipelines them), where one `rows` each took one apiece: a manifest's
        push checks and records each blob it names."""
        if not each:
            return []
        dbapi = conn.connection.dbapi_connection
        cursor = dbapi.cursor()  # type: ignore[union-attr]
        try:
            if not isinstance(dbapi, psycopg.Connection):
                return [[query.row(raw) for raw in cursor.execute(query.sql, query.parameters(p))] for p in each]
            cursor.executemany(query.sql, [query.parameters(p) for p in each], returning=True)
            results = []
            while True:
                results.append([query.row(raw) for raw in cursor.fetchall()] if cursor.description else [])
                if not cursor.nextset():
                    return results
        finally:
            cursor.close()

    async def fetch(self, query: Query, **params: Any) -> list[tuple[Any, ...]]:
        """Run a prepared read: inline on SQLite over a connection kept for the event loop."""
        if self._inline_reads:
            return self._fetch_inline(query, params)
        if self._async_reads is not None:
            with self._conditions():
                raw = await self._async_reads.fetch(query.sql, query.parameters(params))
            return [query.row(r) for r in raw]
        return await self.read(lambda conn: self.rows(conn, query, **params))  # another driver: a thread

    async def fetch_one(self, query: Query, *, rider: Rider | None = None, **params: Any) -> tuple[Any, ...] | None:
        """The first row of a prepared read; with `rider`, its read too, and in the same statement on
        PostgreSQL (one round trip instead of two)."""
        if rider is None:
            rows = await self.fetch(query, **params)
            return rows[0] if rows else None
        if self._async_reads is None:  # SQLite reads are inline: there is no round trip to save
            rows = await self.fetch(query, **params)
            rider.found(await self.fetch_one(rider.query, **rider.params))
            return rows[0] if rows else None
        key = (query.sql, rider.query.sql)  # strings hash once: a dict lookup a request
        both = self._together.get(key)
        if both is None:
            both = self._together[key] = _together(query, rider.query)
        values = {**query.parameters(params), **rider.query.parameters(rider.params)}  # type: ignore[dict-item]
        with self._conditions():
            raw = await self._async_reads.fetch(both, values)
        width = query.width
        first, second = raw[0][: width + 1], raw[0][width + 1 :]
        rider.found(rider.query.row(second[1:]) if second[0] else None)
        return query.row(first[1:]) if first[0] else None

    def _fetch_inline(self, query: Query, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self._loop_connection is None:
            self._loop_connection = self.engine.raw_connection()
        cursor = self._loop_connection.cursor()
        try:
            return [query.row(raw) for raw in cursor.execute(query.sql, query.parameters(params)).fetchall()]
        finally:
            cursor.close()

    async def commit_one(self, query: Query, **params: Any) -> list[tuple[Any, ...]]:
        """One prepared statement that is a transaction of its own, and the rows it returns. On
        PostgreSQL it runs on the event loop in autocommit: one round trip, where `write` takes a
        thread, BEGIN and COMMIT; elsewhere it is a `write`."""
        if self._async_reads is None:
            return await self.write(self.rows, query, **params)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._conditions():
                    raw = await self._async_reads.fetch(query.sql, query.parameters(params))
                return [query.row(r) for r in raw]
            except Exception as error:
                if attempt == WRITE_ATTEMPTS or not rolled_back(error):
                    raise
                log.info("statement rolled back by the database (%s); attempt %d", error, attempt + 1)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(connection, *args, **kwargs)` in a write transaction."""
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        if self._sqlite_writer is not None:
            return await self._sqlite_writer.submit(fn, *args)
        return await anyio.to_thread.run_sync(functools.partial(self._write_sync, fn, *args))

    def _read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        with self._conditions(), self.engine.connect() as conn:
            return fn(conn, *args)

    def _write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        with self._conditions():
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    with self._writer.begin() as conn:
                        return fn(conn, *args)
                except sqlalchemy.exc.DBAPIError as error:
                    # PostgreSQL chose this transaction as a deadlock's victim and rolled it back:
                    # run it again, as its documentation advises, rather than fail the request.
                    if attempt == WRITE_ATTEMPTS or not rolled_back(error):
                        raise
                    log.info("transaction rolled back by the database (%s); attempt %d", error.orig, attempt + 1)
        raise AssertionError("unreachable")  # the loop returns or raises

    @contextlib.contextmanager
    def _conditions(self) -> Iterator[None]:
        """A full or unreachable database as the condition it is (metadata.errors)."""
        try:
            yield
        except Exception as error:
            problem = database_problem(error, str(self.engine.url.database))
            if problem is error:
                raise
            raise problem from None
        clear(UNREACHABLE)  # a dict lookup; logs "resolved" once after an outage

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return self._read_sync(fn, *args)

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        if self._sqlite_writer is not None:
            return self._sqlite_writer.run_sync(fn, *args)
        return self._write_sync(fn, *args)

    async def check(self) -> str | None:
        """None when the database answers a query; otherwise what is wrong, for /readyz."""
        try:
            await self.read(lambda conn: conn.exec_driver_sql("SELECT 1").scalar())
        except Exception as error:
            return f"the database does not answer: {error.__class__.__name__}: {error}".splitlines()[0]
        return None

    def insert(self, table: Any) -> Insert:
        """An INSERT that supports ON CONFLICT on both SQLite and PostgreSQL."""
        return dialect_insert(self.dialect, table)

    def close(self) -> None:
        self.locks.close()
        if self._async_reads is not None:
            self._async_reads.close()
        if self._sqlite_writer is not None:
            self._sqlite_writer.close()
        if self._loop_connection is not None:
            self._loop_connection.close()
        self.engine.dispose()
