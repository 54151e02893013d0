"""A write transaction PostgreSQL picks as a deadlock's victim runs again instead of failing the
request (a real private cluster: the deadlock is PostgreSQL's own detection)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from portside.metadata.database import Database, make_engine
from tests.support.postgres import PostgresCluster
from tests.support.server import OUTPUT


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with PostgresCluster(tmp_path / "pg", OUTPUT / "logs" / "deadlock-postgres.log") as cluster:
        db = Database(make_engine(cluster.create_database("deadlock")))
        try:
            db.write_sync(lambda conn: conn.execute(text("CREATE TABLE pair (id int PRIMARY KEY, n int NOT NULL)")))
            db.write_sync(lambda conn: conn.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)")))
            yield db
        finally:
            db.close()


def test_a_deadlocked_transaction_runs_again(database: Database) -> None:
    both_hold_one = threading.Barrier(2, timeout=10)
    calls: list[int] = []
    failures: list[BaseException] = []

    def bump(first: int, second: int) -> None:
        def change(conn: Connection) -> None:
            calls.append(first)
            conn.execute(text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": first})
            if calls.count(first) == 1:
                both_hold_one.wait()  # each holds its first row and now wants the other's
            conn.execute(text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": second})

        try:
            database.write_sync(change)
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=bump, args=order) for order in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert len(calls) == 3  # the victim ran twice, the other once
    rows = database.read_sync(lambda conn: conn.execute(text("SELECT id, n FROM pair ORDER BY id")).all())
    assert [tuple(row) for row in rows] == [(1, 2), (2, 2)]  # each transaction counted once
