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
from portside.metadata.database import Database, Rider, make_engine, upgrade
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
    in_thread = database.read_sync(lambda conn: Database.rows(conn, query, name="octo"))  # SQLAlchemy's pool
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
    assert str(error) == "every one of the 1 database connections was busy for 0.2 s"
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


# -- digest locks (metadata.locks) on connections of their own -----------------------------------


def test_digest_locks_exclude_another_process_and_are_released(database: Database) -> None:
    other = Database(make_engine(database.engine.url.render_as_string(hide_password=False)))  # another replica
    events: list[str] = []

    async def scenario() -> tuple[list[str], list[str]]:
        async def first() -> None:
            async with database.locks.hold(["sha256:a", "sha256:b"]) as held:
                events.append(f"first holds {held}")
                await asyncio.sleep(0.3)
                events.append("first releases")

        async def second() -> None:
            await asyncio.sleep(0.1)
            async with other.locks.hold(["sha256:b"]) as held:
                events.append(f"second holds {held}")

        holding = asyncio.create_task(first())
        await asyncio.sleep(0.1)
        async with other.locks.hold(["sha256:a", "sha256:c"], wait=False) as free_now:
            pass
        await asyncio.gather(holding, second())
        async with other.locks.hold(["sha256:a", "sha256:c"], wait=False) as free_after:
            pass
        return free_now, free_after

    free_now, free_after = asyncio.run(scenario())
    assert events == ["first holds ['sha256:a', 'sha256:b']", "first releases", "second holds ['sha256:b']"]
    assert free_now == ["sha256:c"]  # sha256:a was held by the first
    assert sorted(free_after) == ["sha256:a", "sha256:c"]
    other.close()


def test_a_holder_cancelled_while_waiting_leaves_no_lock_behind(database: Database) -> None:
    other = Database(make_engine(database.engine.url.render_as_string(hide_password=False)))

    async def scenario() -> list[str]:
        release = asyncio.Event()

        async def holder() -> None:
            async with database.locks.hold(["sha256:d"]):
                await release.wait()

        holding = asyncio.create_task(holder())
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(other.locks.hold(["sha256:d"]).__aenter__())
        await asyncio.sleep(0.2)
        waiting.cancel()  # a client gone while its commit waited for the digest
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        await holding
        async with other.locks.hold(["sha256:d"], wait=False) as held:
            return held

    assert asyncio.run(scenario()) == ["sha256:d"]
    other.close()


# -- a read riding along with another (Database.fetch_one(..., rider=)) ---------------------------


def test_a_rider_comes_back_with_the_read_it_rode_along_with(database: Database) -> None:
    by_name = database.query(select(accounts.c.id, accounts.c.created_at).where(accounts.c.name == bindparam("name")))
    by_id = database.query(select(accounts.c.name, accounts.c.is_site_admin).where(accounts.c.id == bindparam("id")))
    created = dt.datetime(2026, 12, 4, 18, 0, tzinfo=dt.UTC)

    async def pairs() -> list[tuple[object, object, bool]]:
        found = []
        for name, account_id in (("octo", 7), ("octo", 8), ("nobody", 7), ("nobody", 8)):
            rider = Rider(by_id, id=account_id)
            row = await database.fetch_one(by_name, rider=rider, name=name)
            found.append((row, rider.row, rider.done))
        return found

    assert asyncio.run(pairs()) == [
        ((7, created), ("octo", False), True),
        ((7, created), None, True),
        (None, ("octo", False), True),
        (None, None, True),
    ]
    clash = Rider(by_name, name="octo")
    with pytest.raises(ValueError, match=r"must not share parameter names: \['name'\]"):
        asyncio.run(database.fetch_one(by_name, rider=clash, name="octo"))
