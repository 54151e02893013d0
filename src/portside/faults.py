"""Conditions that keep a store from serving a request for now: full storage, a store that cannot be
reached, a blob whose bytes are gone. The client is told to try later and an operator what to fix.

The stores raise these (they know no HTTP); each surface maps them to its own wire format and
`report`s the operator's line, which the log gets once per condition and process, then at most every
few minutes while it lasts, instead of a traceback per request.
"""

from __future__ import annotations

import errno
import logging
import shutil
import time
from pathlib import Path

log = logging.getLogger("portside.storage")

REMIND_SECONDS = 300.0
_last_logged: dict[str, float] = {}


class Unavailable(Exception):
    """A store cannot do what the request needs right now; nothing the client sent was kept."""

    retry_after = 30

    def __init__(self, message: str, *, condition: str, operator: str) -> None:
        super().__init__(message)
        self.message = message
        self.condition = condition  # what the log line is about: one line per condition, not per request
        self.operator = operator  # what the log says: the path or URL, the free space, what to do


class StorageFull(Unavailable):
    """No space (ENOSPC) or quota (EDQUOT) left where blobs or the database are written."""

    retry_after = 60


class StoreUnreachable(Unavailable):
    """The database or the object store did not answer, or refused the connection."""


class BlobMissing(Unavailable):
    """A blob the database records has no bytes in the blob store (lost, or removed by hand)."""

    retry_after = 300


def report(condition: str, line: str) -> None:
    moment = time.monotonic()
    last = _last_logged.get(condition)
    if last is None or moment - last >= REMIND_SECONDS:
        _last_logged[condition] = moment
        log.error("%s", line)


def clear(condition: str) -> None:
    """The condition is over: say so once, and log it afresh if it comes back."""
    if _last_logged.pop(condition, None) is not None:
        log.warning("%s: resolved", condition)


def storage_full(what: str, path: Path, error: OSError) -> StorageFull:
    """The error for a write of `what` ("blob storage", "the database") that found no space at `path`."""
    directory = path if path.is_dir() else path.parent
    try:
        free = f"{shutil.disk_usage(directory).free / 1024**2:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return StorageFull(
        "the registry's storage is full; an operator must free space or add capacity, then push again",
        condition=f"{what} is full",
        operator=f"{what} is full: cannot write {path}: {error.strerror} ({free} in {directory}); "
        "free space or add capacity",
    )


NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
