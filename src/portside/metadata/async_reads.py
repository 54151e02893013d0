"""Prepared reads on PostgreSQL run on the event loop, over psycopg's async connections.

Every request's hot reads (the bearer token's row, the decision function's facts, the manifest or
blob itself) are one statement each. Run in a thread over SQLAlchemy's pool, one cost 190-440 us of
the worker's CPU (the hop to a thread and back, the pool's checkout and return, autocommit toggled
on and off); on the loop over a connection of this pool, 66 us, and 76 us through `Database.fetch`
with its conversions (`python bench/pg_reads.py`, 16 concurrent readers: docs/performance.md).
asyncpg's pool took 65 us and psycopg_pool's 68 us: the same cost. This small pool is here for what
it does in an outage: a server that refuses connections fails the read at once (503 at once, as the
threaded path did), where psycopg_pool kept every caller waiting for its whole timeout while it
reconnected in the background (measured: 5.0 s per request with timeout=5).

Connections are in autocommit: a single statement needs no transaction of its own. An idle
connection whose socket has something to read (the server shut down or died and said so) is closed
and replaced before it is used, without a round trip on the healthy path.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from sqlalchemy import Engine

CONNECT_TIMEOUT = 5  # seconds to open a connection before the read fails (503)


class AsyncReads:
    """A bounded set of async connections for one event loop; at most `size` in use at once."""

    def __init__(self, engine: Engine, *, size: int, timeout: float) -> None:
        args, params = engine.dialect.create_connect_args(engine.url)
        self._args = args
        # The dialect's parameters carry its adapters (JSON and the rest), so rows come back as
        # SQLAlchemy's result processors expect them on the threaded path.
        self._params = {**params, "autocommit": True, "connect_timeout": CONNECT_TIMEOUT}
        self._size = size
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: deque[psycopg.AsyncConnection[Any]] = deque()
        self._slots: asyncio.Semaphore | None = None

    async def fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """The rows of one statement (none for a statement that returns none), committed by itself."""
        conn = await self._acquire()
        try:
            cursor = conn.cursor()
            await cursor.execute(sql, params)
            rows = await cursor.fetchall() if cursor.description is not None else []
        except BaseException:
            await self._release(conn, broken=True)
            raise
        await self._release(conn)
        return rows

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection for the caller alone (several statements, a session's advisory locks); it
        goes back to the pool afterwards, or is closed if anything failed while it was out."""
        conn = await self._acquire()
        try:
            yield conn
        except BaseException:
            await self._release(conn, broken=True)
            raise
        await self._release(conn)

    async def _acquire(self) -> psycopg.AsyncConnection[Any]:
        slots = self._slots_for_loop()
        if not slots.locked():
            await slots.acquire()  # a free slot: no wait, and no task for wait_for to make
        else:
            try:
                await asyncio.wait_for(slots.acquire(), self._timeout)
            except TimeoutError:
                busy = f"every one of the {self._size} database connections was busy for {self._timeout} s"
                raise TimeoutError(busy) from None
        try:
            return await self._connection()
        except BaseException:
            slots.release()
            raise

    async def _release(self, conn: psycopg.AsyncConnection[Any], *, broken: bool = False) -> None:
        """Back to the pool, or closed when something failed while it was out (broken, or in a state
        nobody should inherit)."""
        assert self._slots is not None
        try:
            if broken:
                await _discard(conn)
            else:
                self._idle.append(conn)
        finally:
            self._slots.release()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        while self._idle:
            conn = self._idle.pop()  # the most recently used: its socket is warm
            if socket_quiet(conn):
                return conn
            await _discard(conn)
        return await psycopg.AsyncConnection.connect(*self._args, **self._params)

    def _slots_for_loop(self) -> asyncio.Semaphore:
        """This loop's slots; connections made under another loop (a CLI command's earlier run) are
        dropped, as their waits belong to that loop."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self.close()
            self._loop, self._slots = loop, asyncio.Semaphore(self._size)
        return self._slots

    def close(self) -> None:
        """Close idle connections (no round trip: the server sees the socket close)."""
        while self._idle:
            self._idle.pop().pgconn.finish()


def socket_quiet(conn: Any) -> bool:
    """True when an idle connection (psycopg's, sync or async) is open and its server has sent
    nothing since its last answer: no round trip."""
    try:
        if conn.closed or getattr(conn, "broken", False):
            return False
        poller = select.poll()  # not select.select: descriptors above 1024 are common in a busy worker
        poller.register(conn.fileno(), select.POLLIN)
        return not poller.poll(0)
    except Exception:  # a driver without these, or a closed descriptor: treat it as suspect
        return False


async def _discard(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):  # already gone: nothing to tell the server
        await conn.close()
