"""Planner hints that belong to one database, written once so that domain code stays portable.

`unindexed(column)` is the column on PostgreSQL and `column + 0` on SQLite: an expression SQLite
cannot look up in an index, the documented way to steer its planner to the index it should use
instead (https://sqlite.org/optoverview.html#disqualifying_where_clause_terms_using_unary_). The
comments where it is used say what was measured.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class unindexed(FunctionElement[Any]):
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _plain(element: unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(next(iter(element.clauses)), **kw))


@compiles(unindexed, "sqlite")
def _sqlite(element: unindexed, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(next(iter(element.clauses)), **kw)} + 0)"
