"""Prepared reads on the event loop (metadata.async_reads), against a real private PostgreSQL:
the rows the threaded path gives, a bounded number of connections, an outage failing at once as the
condition it is, a restarted server's stale connections replaced without an error, and a read
cancelled mid-statement leaving nothing broken behind."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select, text

from portside.faults import StoreUnreachable
from portside.metadata.async_reads import AsyncReads
from portside.metadata.database import Database, make_engine, upgrade
from portside.metadata.schema import accounts
from tests.support.postgres import PostgresCluster
from tests.support.server import OUTPUT


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PostgresCluster]:
    with PostgresCluster(tmp_path / "pg", OUTPUT / "logs" / "async-reads-postgres.log") as pg:
        yield pg


@pytest.fixture
def database(cluster: PostgresCluster) -> Iterator[Database]:
    url = cluster.create_database("reads")
    upgrade(url)
    db = Database(make_engine(url))
    created = dt.datetime(2026, 12, 4, 18, 0, tzinfo=dt.UTC)
    db.write_sync(
        lambda conn: conn.execute(
            accounts.insert().values(id=7, name="octo", kind="org", created_at=created, is_site_admin=False)
        )
    )
    try:
        yield db
    finally:
        db.close()


def backends(cluster: PostgresCluster, database: str) -> int:
    return int(cluster.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'").strip())


def test_rows_are_those_of_the_threaded_path(database: Database) -> None:
    query = database.query(
        select(accounts.c.id, accounts.c.name, accounts.c.created_at, accounts.c.is_site_admin).where(
            accounts.c.name == bindparam("name")
        )
    )
    on_loop = asyncio.run(database.fetch(query, name="octo"))
    in_thread = database._fetch_pooled(query, {"name": "octo"})
    assert on_loop == in_thread == [(7, "octo", dt.datetime(2026, 12, 4, 18, 0, tzinfo=dt.UTC), False)]
    assert asyncio.run(database.fetch(query, name="nobody")) == []


def test_readers_beyond_the_pool_wait_for_a_connection(cluster: PostgresCluster, database: Database) -> None:
    reads = AsyncReads(database.engine, size=3, timeout=10)
    before = backends(cluster, "reads")

    async def many() -> tuple[list[list[tuple[object, ...]]], int]:
        async def one(n: int) -> list[tuple[object, ...]]:
            return await reads.fetch("SELECT %(n)s::int, pg_sleep(0.05)::text", {"n": n})

        task = asyncio.gather(*(one(n) for n in range(24)))
        await asyncio.sleep(0.1)
        during = backends(cluster, "reads")  # psql in this thread: the reads wait meanwhile, then go on
        return await task, during

    rows, during = asyncio.run(many())
    assert [r[0][0] for r in rows] == list(range(24))
    assert during - before == 3  # never more connections than the pool's size
    reads.close()


def test_a_pool_that_stays_busy_fails_with_a_timeout(database: Database) -> None:
    reads = AsyncReads(database.engine, size=1, timeout=0.2)

    async def two() -> BaseException | None:
        slow = asyncio.create_task(reads.fetch("SELECT pg_sleep(1)::text", {}))
        await asyncio.sleep(0.1)
        try:
            await reads.fetch("SELECT 1", {})
        except TimeoutError as error:
            await slow
            return error
        return None

    error = asyncio.run(two())
    assert str(error) == "every one of the 1 database read connections was busy for 0.2 s"
    reads.close()


def test_outage_fails_at_once_then_recovers_by_itself(cluster: PostgresCluster, database: Database) -> None:
    query = database.query(select(accounts.c.name).where(accounts.c.id == bindparam("id")))

    async def scenario() -> tuple[StoreUnreachable, float]:
        assert await database.fetch(query, id=7) == [("octo",)]  # a pooled connection now exists
        cluster.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnreachable) as caught:
            await database.fetch(query, id=7)
        waited = time.monotonic() - started
        cluster.start()
        assert await database.fetch(query, id=7) == [("octo",)]
        return caught.value, waited

    error, waited = asyncio.run(scenario())
    assert str(error).startswith("the registry's database cannot be reached right now; try again shortly")
    assert waited < 3  # refused connections answer at once, not after the 5 s pool timeout


def test_connections_of_a_restarted_server_are_replaced_without_an_error(
    cluster: PostgresCluster, database: Database
) -> None:
    query = database.query(select(accounts.c.name).where(accounts.c.id == bindparam("id")))

    async def scenario() -> list[list[tuple[object, ...]]]:
        first = await asyncio.gather(*(database.fetch(query, id=7) for _ in range(4)))
        cluster.restart()  # every idle connection's server is gone
        second = await asyncio.gather(*(database.fetch(query, id=7) for _ in range(4)))
        return [*first, *second]

    assert asyncio.run(scenario()) == [[("octo",)]] * 8


def test_a_read_cancelled_mid_statement_leaves_no_broken_connection(
    cluster: PostgresCluster, database: Database
) -> None:
    reads = AsyncReads(database.engine, size=1, timeout=5)

    async def scenario() -> list[tuple[object, ...]]:
        slow = asyncio.create_task(reads.fetch("SELECT pg_sleep(5)::text", {}))
        await asyncio.sleep(0.2)
        slow.cancel()  # a client that went away while its read ran
        with pytest.raises(asyncio.CancelledError):
            await slow
        return await reads.fetch("SELECT 'next'", {})

    assert asyncio.run(scenario()) == [("next",)]
    reads.close()
    database.write_sync(lambda conn: conn.execute(text("SELECT 1")))
