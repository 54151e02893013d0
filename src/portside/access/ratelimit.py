"""Rate limiting of failed authentications, per client address and per user name.

Kept in process memory: each worker counts on its own, so the effective limit is at most
`workers` times the configured one. That is enough to make online guessing of 178-bit tokens or
argon2id passwords hopeless, without a shared store.
"""

from __future__ import annotations

import time
from collections import deque


class FailureLimiter:
    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, *keys: str) -> int:
        """Seconds until these keys may try again; 0 when they may try now."""
        now = time.monotonic()
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        if len(self._failures) > 100_000:
            self._failures.clear()  # a flood of distinct keys must not exhaust memory
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self.max_failures)).append(now)
