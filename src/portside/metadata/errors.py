"""The database's own failures, as the conditions the surfaces know (portside.faults)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from portside.faults import storage_full

_PG_DISK_FULL = "53100"  # SQLSTATE disk_full


def database_problem(error: Exception, where: str) -> Exception:
    """`error` as StorageFull when the database had no space left to write; otherwise unchanged."""
    cause = getattr(error, "orig", error)  # SQLAlchemy wraps the driver's exception
    full = (
        isinstance(cause, sqlite3.OperationalError) and getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )
    full = full or getattr(cause, "sqlstate", None) == _PG_DISK_FULL or getattr(cause, "pgcode", None) == _PG_DISK_FULL
    if not full:
        return error
    return storage_full("the database", Path(where), OSError(errno.ENOSPC, str(cause)))
