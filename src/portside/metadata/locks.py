"""Locks on names (blob digests) held across every process that shares the database.

Garbage collection deletes a blob's bytes while an upload of the same digest may be writing them
to the same address: the two must never overlap (docs/lifecycle.md). Both hold the digest's lock
around the store operation and the database write that follows it. On PostgreSQL that is a session
advisory lock on a connection of a small pool of its own (PostgreSQL releases it if the process
dies); on SQLite,
one machine, an flock on one of 256 files beside the database (the kernel releases it likewise).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
from sqlalchemy import Engine

from portside.metadata.async_reads import AsyncReads
from portside.metadata.errors import database_problem

_STRIPES = 256
# Lock holders on PostgreSQL use a small pool of their own: an upload commit holds its digest's
# lock while it writes the row on a connection of the main pool, and drawing both from one pool
# could leave every connection held by a lock holder waiting for a second one.
LOCK_CONNECTIONS = 4


def _condition(error: Exception) -> Exception:
    """The database down or cut, as the condition the surfaces answer 503 for (metadata.errors)."""
    return database_problem(error, "")


def _key(name: str) -> int:
    """A signed 64-bit key for pg_advisory_lock, the same in every process."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class KeyLocks:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        database = engine.url.database
        self._postgresql = engine.dialect.name == "postgresql"
        self._directory = None if self._postgresql or not database else Path(f"{database}-locks")
        self._connections: AsyncReads | None = None
        self._made = False  # the flock directory exists

    @contextlib.asynccontextmanager
    async def hold(self, names: Sequence[str], *, wait: bool = True) -> AsyncIterator[list[str]]:
        """Hold the locks of `names` (taken in a fixed order, so that callers never deadlock);
        yields the names held: all of them, or with `wait=False` those nobody else held."""
        ordered = sorted(set(names), key=_key if self._postgresql else self._stripe)
        if self._postgresql:
            async with self._advisory(ordered, wait) as held:
                yield held
        elif self._directory is not None:
            async with self._flocks(ordered, wait) as held:
                yield held
        else:  # an in-memory database: one process, nothing to exclude
            yield ordered

    # -- PostgreSQL ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _advisory(self, names: list[str], wait: bool) -> AsyncIterator[list[str]]:
        # On the event loop: in threads over SQLAlchemy's pool (with its pre-ping) a commit's lock
        # and unlock were three hops and three round trips.
        if self._connections is None:
            self._connections = AsyncReads(self.engine, size=LOCK_CONNECTIONS, timeout=30)
        try:
            async with self._connections.connection() as conn:
                held = []
                for name in names:
                    if wait:
                        await conn.execute("SELECT pg_advisory_lock(%s)", (_key(name),))
                        held.append(name)
                    else:
                        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_key(name),))
                        if (await cursor.fetchone() or (False,))[0]:
                            held.append(name)
                try:
                    yield held
                finally:
                    # A connection that cannot unlock is closed (connection() discards it on an
                    # error), which ends its session and so its locks.
                    await conn.execute("SELECT pg_advisory_unlock_all()")
        except Exception as error:
            problem = _condition(error)
            if problem is error:
                raise
            raise problem from None

    def close(self) -> None:
        if self._connections is not None:
            self._connections.close()

    # -- SQLite --------------------------------------------------------------------------------

    def _stripe(self, name: str) -> int:
        return _key(name) % _STRIPES

    @contextlib.asynccontextmanager
    async def _flocks(self, names: list[str], wait: bool) -> AsyncIterator[list[str]]:
        assert self._directory is not None
        descriptors: dict[int, int] = {}  # stripe -> fd: names sharing a stripe share its lock
        held: list[str] = []
        try:
            for name in names:
                stripe = self._stripe(name)
                if stripe not in descriptors:
                    # First without blocking, on the loop: opening an existing lock file and an
                    # uncontended flock are two syscalls that touch no disk, where handing them to a
                    # thread was ~4 % of a small-image push's samples (py-spy). Only a held lock is
                    # waited for, in a thread.
                    fd = self._flock(stripe, block=False)
                    if fd is None and wait:
                        fd = await anyio.to_thread.run_sync(self._flock, stripe, True)
                    if fd is None:
                        continue
                    descriptors[stripe] = fd
                held.append(name)
            yield held
        finally:
            for fd in descriptors.values():
                os.close(fd)  # closing the descriptor releases its flock

    def _flock(self, stripe: int, block: bool) -> int | None:
        assert self._directory is not None
        if not self._made:  # once per process: every upload commit comes here
            self._directory.mkdir(exist_ok=True)
            self._made = True
        fd = os.open(self._directory / f"{stripe:02x}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd
