"""`Database.rows_each`: one prepared statement run for several parameter sets inside a transaction,
each run's rows in order, on SQLite and on a real private PostgreSQL, where the runs are one round
trip (pinned by libpq's own trace of the protocol messages)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from portside.metadata.database import Database, make_engine, upgrade
from portside.metadata.schema import accounts
from tests.support.postgres import PostgresCluster
from tests.support.server import OUTPUT

CREATED = dt.datetime(2026, 12, 7, 5, 0, tzinfo=dt.UTC)


@contextlib.contextmanager
def _migrated(url: str) -> Iterator[Database]:
    upgrade(url)
    db = Database(make_engine(url))
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def on_postgresql(tmp_path: Path) -> Iterator[Database]:
    with (
        PostgresCluster(tmp_path / "pg", OUTPUT / "logs" / "rows-each-postgres.log") as pg,
        _migrated(pg.create_database("each")) as db,
    ):
        yield db


@pytest.fixture
def on_sqlite(tmp_path: Path) -> Iterator[Database]:
    with _migrated(f"sqlite:///{tmp_path / 'portside.db'}") as db:
        yield db


@pytest.fixture(params=["on_sqlite", "on_postgresql"])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def _add(db: Database, *names: str) -> None:
    def change(conn: Connection) -> None:
        for number, name in enumerate(names, start=1):
            conn.execute(accounts.insert().values(id=number, name=name, kind="user", created_at=CREATED))

    db.write_sync(change)


def _insert(db: Database, *, returning: bool):  # type: ignore[no-untyped-def]
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(accounts)
        .values(id=bindparam("id"), name=bindparam("name"), kind="org", created_at=CREATED)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return db.query(stmt.returning(accounts.c.id) if returning else stmt)


def test_each_run_has_its_own_rows_in_order(database: Database) -> None:
    _add(database, "ana", "bob")
    by_name = database.query(select(accounts.c.id, accounts.c.name).where(accounts.c.name == bindparam("name")))
    each = [{"name": "bob"}, {"name": "nobody"}, {"name": "ana"}, {"name": "bob"}]
    rows = database.read_sync(lambda conn: Database.rows_each(conn, by_name, each))
    assert rows == [[(2, "bob")], [], [(1, "ana")], [(2, "bob")]]
    assert database.read_sync(lambda conn: Database.rows_each(conn, by_name, [])) == []


def test_writes_run_in_the_callers_transaction(database: Database) -> None:
    _add(database, "ana")
    with_ids = _insert(database, returning=True)
    each = [{"id": 10, "name": "octo"}, {"id": 11, "name": "ana"}, {"id": 12, "name": "acme"}]
    # RETURNING: the new row's id, nothing where the name was taken already.
    assert database.write_sync(lambda conn: Database.rows_each(conn, with_ids, each)) == [[(10,)], [], [(12,)]]
    plain = _insert(database, returning=False)
    more = [{"id": 13, "name": "umbrella"}, {"id": 14, "name": "octo"}]
    assert database.write_sync(lambda conn: Database.rows_each(conn, plain, more)) == [[], []]

    def undone(conn: Connection) -> None:
        Database.rows_each(conn, plain, [{"id": 15, "name": "initech"}])
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        database.write_sync(undone)
    names = database.read_sync(lambda conn: list(conn.execute(select(accounts.c.name)).scalars()))
    assert sorted(names) == ["acme", "ana", "octo", "umbrella"]


def test_postgresql_sends_every_run_before_the_first_answer(on_postgresql: Database, tmp_path: Path) -> None:
    database = on_postgresql
    _add(database, "ana", "bob")
    by_name = database.query(select(accounts.c.id).where(accounts.c.name == bindparam("name")))
    trace = tmp_path / "libpq-trace.txt"

    def traced(conn: Connection) -> list[list[tuple[object, ...]]]:
        conn.execute(select(1))  # the transaction's BEGIN, outside the trace
        pgconn = conn.connection.dbapi_connection.pgconn  # type: ignore[union-attr]
        with trace.open("w") as out:
            pgconn.trace(out.fileno())
            try:
                return Database.rows_each(conn, by_name, [{"name": "ana"}, {"name": "carol"}, {"name": "bob"}])
            finally:
                pgconn.untrace()

    assert database.read_sync(traced) == [[(1,)], [], [(2,)]]
    # libpq's trace: a line per protocol message, "F" sent by the client, "B" by the server.
    messages = [line.split("\t")[1:4:2] for line in trace.read_text().splitlines() if "\t" in line]
    executes = [i for i, (side, kind) in enumerate(messages) if side == "F" and kind == "Execute"]
    answers = [i for i, (side, kind) in enumerate(messages) if side == "B" and kind == "CommandComplete"]
    assert len(executes) == 3 and len(answers) == 3
    assert max(executes) < min(answers)  # all three sent before the server answered the first
