"""Housekeeping that runs once across a fleet: every worker of every replica wakes up on its own
schedule, and the one whose compare-and-set on the chore's row succeeds runs it this interval (on
SQLite and PostgreSQL alike; no lock is held while the chore runs, so a replica killed in the middle
only delays the next run by one interval)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import Connection, update

from portside.clock import now
from portside.faults import Unavailable
from portside.metadata.database import Database, dialect_insert
from portside.metadata.schema import chores

log = logging.getLogger("portside")


def _claim(conn: Connection, name: str, interval: float) -> bool:
    moment = now()
    conn.execute(
        dialect_insert(conn.dialect.name, chores)
        .values(name=name, last_run_at=moment - timedelta(seconds=interval))
        .on_conflict_do_nothing(index_elements=["name"])
    )
    claimed = conn.execute(
        update(chores)
        .where(chores.c.name == name, chores.c.last_run_at <= moment - timedelta(seconds=interval * 0.9))
        .values(last_run_at=moment)
    )
    return bool(claimed.rowcount)


async def claim(db: Database, name: str, interval: float) -> bool:
    """Whether this process runs chore `name` now (nobody ran it within the interval)."""
    return bool(await db.write(_claim, name, interval))


async def every(
    interval: float, chore: Callable[[], Awaitable[object]], *, db: Database | None = None, name: str = ""
) -> None:
    """Run `chore` periodically; with `db`, once per interval across the fleet. A failure is logged
    and retried next time."""
    await asyncio.sleep(interval * random.uniform(0.5, 1.0))  # replicas started together do not wake together
    while True:
        try:
            if db is None or await claim(db, name, interval):
                await chore()
        except Unavailable as error:  # the condition itself is logged once where it is found
            log.debug("%s skipped: %s", name or getattr(chore, "__qualname__", chore), error)
        except Exception:
            log.exception("%s failed; will retry", name or getattr(chore, "__qualname__", chore))
        await asyncio.sleep(interval)
