"""The database's own failures, as the conditions the surfaces know (portside.faults)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import sqlalchemy.exc

from portside.faults import StoreUnreachable, storage_full

_PG_DISK_FULL = "53100"  # SQLSTATE disk_full
_PG_ROLLED_BACK = {"40P01", "40001"}  # deadlock_detected, serialization_failure
UNREACHABLE = "database unavailable"  # the condition's name in the log (portside.faults)


def database_problem(error: Exception, where: str) -> Exception:
    """`error` as the condition it is: StorageFull when the database had no space left to write,
    StoreUnreachable when a networked database cannot be reached (down, restarting, the connection
    cut); otherwise unchanged (a bug, which stays a 500 with a traceback in the log)."""
    cause = getattr(error, "orig", error)  # SQLAlchemy wraps the driver's exception
    sqlite_full = isinstance(cause, sqlite3.OperationalError) and cause.sqlite_errorcode == sqlite3.SQLITE_FULL
    postgresql_full = _PG_DISK_FULL in (getattr(cause, "sqlstate", None), getattr(cause, "pgcode", None))
    if sqlite_full or postgresql_full:
        return storage_full("the database", Path(where), OSError(errno.ENOSPC, str(cause)))
    if _unreachable(error, cause):
        return StoreUnreachable(
            "the registry's database cannot be reached right now; try again shortly (if it persists, an "
            "operator must check the database)",
            condition=UNREACHABLE,
            operator=f"the database is unavailable: {cause.__class__.__name__}: {str(cause).strip()}".splitlines()[0],
        )
    return error


def _unreachable(error: Exception, cause: object) -> bool:
    # Every pooled connection busy or hung (SQLAlchemy's pool, or metadata.async_reads).
    if isinstance(error, sqlalchemy.exc.TimeoutError | TimeoutError):
        return True
    if isinstance(cause, sqlite3.Error):
        return False
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    # OperationalError: cannot connect, the server shut down or restarted, the connection was cut.
    return isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError)


def rolled_back(error: Exception) -> bool:
    """Whether PostgreSQL rolled the transaction back to resolve a conflict (a deadlock's victim, a
    serialization failure): the whole transaction may simply run again."""
    return getattr(getattr(error, "orig", error), "sqlstate", None) in _PG_ROLLED_BACK
