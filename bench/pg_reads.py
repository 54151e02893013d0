"""The cost of one prepared read on PostgreSQL, by the way it is run (metadata/async_reads.py).

    python bench/pg_reads.py [--concurrency 16] [--seconds 4]

Starts a private PostgreSQL cluster (tests/support/postgres.py), fills a table of 1,000 rows and,
with N concurrent readers in one uvloop process, reads one row by its key over and over: through
`Database.fetch` (on the event loop over psycopg's async connections), through the threaded path
it replaced (`threaded_read` below: a thread and SQLAlchemy's pool), and, when installed, over
asyncpg's pool and psycopg_pool's (neither is a dependency). Prints reads a second and the CPU this
process spent per read (the server's is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, bindparam, select  # noqa: E402
from tests.support.postgres import PostgresCluster  # noqa: E402

from portside.metadata.database import Database, Query, make_engine  # noqa: E402

metadata = MetaData()
rows = Table("bench_rows", metadata, Column("key", String, primary_key=True), Column("size", Integer))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(name: str, read: Callable[[str], Awaitable[object]], concurrency: int, seconds: float) -> None:
    done = 0
    stop = time.monotonic() + seconds

    async def reader() -> None:
        nonlocal done
        i = 0
        while time.monotonic() < stop:
            assert await read(f"k{i % 1000:04d}")
            done += 1
            i += 7

    c0, t0 = cpu(), time.monotonic()
    await asyncio.gather(*(reader() for _ in range(concurrency)))
    wall, used = time.monotonic() - t0, cpu() - c0
    print(f"| {name} | {done / wall:,.0f} | {used / done * 1e6:.0f} |", flush=True)


def threaded_read(engine: Engine, query: Query, key: str) -> list[tuple[object, ...]]:
    """What `Database.fetch` did on PostgreSQL before metadata/async_reads.py (54438ae..c5ef41d):
    a pooled connection in a thread, its one statement in autocommit."""
    connection = engine.raw_connection()
    driver = connection.driver_connection
    try:
        driver.autocommit = True
        cursor = connection.cursor()
        cursor.execute(query.sql, query.parameters({"key": key}))
        rows = [query.row(raw) for raw in cursor.fetchall()]
        cursor.close()
        driver.autocommit = False
        return rows
    finally:
        connection.close()


async def main(cluster: PostgresCluster, concurrency: int, seconds: float) -> None:
    engine = make_engine(cluster.url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(rows.insert(), [{"key": f"k{i:04d}", "size": i} for i in range(1000)])
    db = Database(engine)
    query = db.query(select(rows.c.size).where(rows.c.key == bindparam("key")))
    ways: list[tuple[str, Callable[[str], Awaitable[object]]]] = [
        ("Database.fetch (event loop, async psycopg)", lambda key: db.fetch(query, key=key)),
        ("AsyncReads.fetch alone", lambda key: db._async_reads.fetch(query.sql, {"key": key})),
        ("thread + SQLAlchemy pool (before)", lambda key: asyncio.to_thread(threaded_read, engine, query, key)),
    ]
    closers = []
    try:
        import asyncpg

        apool = await asyncpg.create_pool(cluster.dsn, min_size=16, max_size=16)
        closers.append(apool.close)

        async def by_asyncpg(key: str) -> object:
            async with apool.acquire() as conn:
                return await conn.fetchrow("SELECT size FROM bench_rows WHERE key = $1", key)

        ways.append(("asyncpg pool", by_asyncpg))
    except ImportError:
        pass
    try:
        import psycopg_pool

        ppool = psycopg_pool.AsyncConnectionPool(
            cluster.dsn, min_size=16, max_size=16, kwargs={"autocommit": True}, open=False
        )
        await ppool.open(wait=True)
        closers.append(ppool.close)

        async def by_psycopg_pool(key: str) -> object:
            conn = await ppool.getconn()
            try:
                cursor = conn.cursor()
                await cursor.execute(query.sql, query.parameters({"key": key}))
                return await cursor.fetchall()
            finally:
                await ppool.putconn(conn)

        ways.append(("psycopg_pool getconn/putconn", by_psycopg_pool))
    except ImportError:
        pass
    print(f"{concurrency} concurrent readers, {seconds:g} s each, two rounds\n")
    print("| way | reads/s | client CPU per read, us |\n|---|---:|---:|")
    for _ in range(2):
        for name, read in ways:
            await drive(name, read, concurrency, seconds)
    for close in closers:
        await close()
    db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, PostgresCluster(Path(tmp) / "pg", Path(tmp) / "postgres.log") as pg:
        uvloop.run(main(pg, args.concurrency, args.seconds))
