"""Chores run once per interval across a fleet: of many processes claiming at once, one wins."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.chores import claim
from portside.metadata.database import Database, make_engine, upgrade
from tests.support.postgres import PostgresCluster
from tests.support.server import OUTPUT


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'portside.db'}"
        upgrade(url)
        yield url
        return
    with PostgresCluster(tmp_path / "pg", OUTPUT / "logs" / "chores-postgres.log") as cluster:
        url = cluster.create_database("chores")
        upgrade(url)
        yield url


def test_one_of_many_claimants_runs_a_chore_per_interval(database_url: str) -> None:
    # Separate Database objects, as separate workers and replicas have.
    databases = [Database(make_engine(database_url)) for _ in range(4)]

    async def round_of_claims() -> list[bool]:
        return list(await asyncio.gather(*(claim(db, "purge", 3600) for db in databases for _ in range(3))))

    try:
        first = asyncio.run(round_of_claims())
        assert first.count(True) == 1
        again = asyncio.run(round_of_claims())  # within the interval: nobody
        assert again.count(True) == 0
        other = asyncio.run(claim(databases[0], "expiry", 3600))  # chores are claimed separately
        assert other is True
        assert asyncio.run(claim(databases[1], "often", 0.05)) is True
        asyncio.run(asyncio.sleep(0.1))
        assert asyncio.run(claim(databases[2], "often", 0.05)) is True  # the next interval: again one
    finally:
        for db in databases:
            db.close()
