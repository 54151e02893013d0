"""Secrets the server generates for itself on first start and keeps in the data directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def ensure_key_file(path: Path, make: Callable[[], bytes]) -> Path:
    """Create the file once, atomically, readable only by its owner; concurrent workers agree on one."""
    if path.exists():
        return path
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(make())
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(temporary, path)  # fails if another process won the race: keep theirs
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path
