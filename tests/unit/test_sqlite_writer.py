"""The SQLite writer: queued writes committed together, each rolled back alone when it fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from portside.clock import now
from portside.metadata.database import Database, make_engine, upgrade
from portside.metadata.schema import blobs


class Refused(Exception):
    pass


def _database(path: Path) -> Database:
    url = f"sqlite:///{path}"
    upgrade(url)
    return Database(make_engine(url))


def _insert(conn: Connection, digest: str, *, fail: bool = False) -> str:
    conn.execute(blobs.insert().values(digest=digest, size=1, created_at=now()))
    if fail:
        raise Refused(digest)  # after writing: the savepoint must undo the row
    return digest


def _digests(db: Database) -> set[str]:
    return set(db.read_sync(lambda conn: list(conn.execute(select(blobs.c.digest)).scalars())))


async def _write_many(db: Database, prefix: str, count: int) -> list[object]:
    writes = [db.write(_insert, f"{prefix}{i}", fail=i % 5 == 0) for i in range(count)]
    return await asyncio.gather(*writes, return_exceptions=True)


def test_concurrent_writes_commit_and_failures_roll_back_alone(tmp_path: Path) -> None:
    db = _database(tmp_path / "one.db")
    try:
        results = asyncio.run(_write_many(db, "d", 50))
    finally:
        db.close()
    for i, result in enumerate(results):
        if i % 5 == 0:
            assert isinstance(result, Refused)
        else:
            assert result == f"d{i}"
    db = _database(tmp_path / "one.db")
    assert _digests(db) == {f"d{i}" for i in range(50) if i % 5}
    db.close()


def test_two_writers_on_one_file_take_turns(tmp_path: Path) -> None:
    """Two Database objects stand for two worker processes: flock serialises them, nothing is lost."""
    path = tmp_path / "two.db"
    first, second = _database(path), _database(path)

    async def both() -> None:
        await asyncio.gather(_write_many(first, "a", 40), _write_many(second, "b", 40))

    try:
        asyncio.run(both())
        expected = {f"{p}{i}" for p in "ab" for i in range(40) if i % 5}
        assert _digests(first) == expected
        count = first.read_sync(lambda conn: conn.execute(select(func.count()).select_from(blobs)).scalar())
        assert count == len(expected)
    finally:
        first.close()
        second.close()


def test_a_failed_write_alone_raises_its_own_error(tmp_path: Path) -> None:
    db = _database(tmp_path / "single.db")

    async def one() -> None:
        with pytest.raises(Refused):
            await db.write(_insert, "x", fail=True)
        assert await db.write(_insert, "y") == "y"

    try:
        asyncio.run(one())
        assert _digests(db) == {"y"}
    finally:
        db.close()


def test_write_sync_takes_the_same_lock(tmp_path: Path) -> None:
    db = _database(tmp_path / "sync.db")
    try:
        assert db.write_sync(_insert, "s") == "s"
        assert _digests(db) == {"s"}
    finally:
        db.close()


def test_a_writer_that_cannot_take_the_lock_fails_its_callers_instead_of_hanging(tmp_path: Path) -> None:
    db = _database(tmp_path / "locked.db")
    db.close()
    (tmp_path / "locked.db-writer.lock").mkdir()  # the lock file cannot be opened
    db = _database(tmp_path / "locked.db")

    async def attempt() -> None:
        with pytest.raises(IsADirectoryError):
            await asyncio.wait_for(asyncio.gather(db.write(_insert, "a"), db.write(_insert, "b")), timeout=10)

    try:
        asyncio.run(attempt())
        assert _digests(db) == set()
    finally:
        db.close()
