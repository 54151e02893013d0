"""Byte counts as people read them: the pages, the CLI and error messages say sizes alike."""

from __future__ import annotations


def human_size(n: int) -> str:
    """`512 B`, `3.4 KiB`, `12.0 MiB`, `1.5 GiB` (binary units, one decimal)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
