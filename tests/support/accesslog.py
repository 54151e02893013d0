"""Reading the requests a test caused from the registry's access log.

The session server appends to one log file for its whole life (and across sessions), so a test
marks the file's end before acting and reads only the lines written after that mark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r'portside\.access: \S+ "(?P<method>[A-Z]+) (?P<path>\S+)" (?P<status>\d{3}) ')


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int


@dataclass(frozen=True)
class AccessLogWindow:
    path: Path
    start: int

    @classmethod
    def mark(cls, path: Path) -> AccessLogWindow:
        return cls(path, path.stat().st_size if path.exists() else 0)

    def requests(self, path_prefix: str = "") -> list[Request]:
        with self.path.open("rb") as log:
            log.seek(self.start)
            text = log.read().decode(errors="replace")
        found = (_LINE.search(line) for line in text.splitlines())
        return [
            Request(m["method"], m["path"], int(m["status"]))
            for m in found
            if m is not None and m["path"].startswith(path_prefix)
        ]

    def describe(self, path_prefix: str = "") -> str:
        return "\n".join(f"{r.method} {r.path} {r.status}" for r in self.requests(path_prefix))
