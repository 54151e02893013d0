"""Byte counts as people read and write them: the pages, the CLI and error messages say sizes alike;
10GiB, 500MB, 1.5TiB in (quotas)."""

from __future__ import annotations

import math
import re

UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)
_SHOWN = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def parse_size(text: str) -> int:
    """Bytes from "10GiB", "500MB", "1.5TiB" or "1048576" (KB/MB/GB/TB are powers of 1000, KiB/MiB/
    GiB/TiB of 1024, as everywhere else); ValueError with what is accepted otherwise."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in UNITS:
        raise ValueError(f"{text!r} is not a size; write it like 10GiB, 500MB, 1.5TiB or a number of bytes")
    return int(float(match.group(1)) * UNITS[unit]) if "." in match.group(1) else int(match.group(1)) * UNITS[unit]


def human(size: int, *, up: bool = False) -> str:
    """A size with one decimal in the largest binary unit it reaches ("10.2 GiB", "10 GiB", "512 B");
    `up` rounds up rather than to nearest, so a figure just over a limit never reads as the limit."""
    for name, unit in _SHOWN:
        if size >= unit:
            tenths = math.ceil(size * 10 / unit) if up else round(size * 10 / unit)
            whole, tenth = divmod(tenths, 10)
            return f"{whole} {name}" if tenth == 0 else f"{whole}.{tenth} {name}"
    return f"{size} B"
