"""The metadata database: engine set-up, migrations, and running queries off the event loop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Insert

T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, fsync: bool = True) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, pool_size=20, max_overflow=20, connect_args={"timeout": 30})
        _configure_sqlite(engine, fsync=fsync)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


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


def upgrade(url: str) -> None:
    """Bring the schema to the newest revision (idempotent; run once before workers start)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


class Database:
    """Runs blocking SQLAlchemy work in a thread pool so the event loop never waits on the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(write=True)
        self.dialect = engine.dialect.name

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(self._read_sync, fn, *args))

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(self._write_sync, fn, *args))

    def _read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        with self.engine.connect() as conn:
            return fn(conn, *args)

    def _write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        with self._writer.begin() as conn:
            return fn(conn, *args)

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return self._read_sync(fn, *args)

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return self._write_sync(fn, *args)

    def insert(self, table: Any) -> Insert:
        """An INSERT that supports ON CONFLICT on both SQLite and PostgreSQL."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def close(self) -> None:
        self.engine.dispose()
