"""Logging set-up shared by the server's workers and the command line."""

from __future__ import annotations

import logging
import sys

from portside.config import Settings
from portside.metadata.errors import database_problem


class _NoPoolResetNoise(logging.Filter):
    """Drops SQLAlchemy's traceback for a pooled connection that could not be reset because the
    database went away (restarted, cut): the pool discards that connection by itself, and the
    condition is reported once by faults.report, not once per connection with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("sqlalchemy.pool") or not record.exc_info:
            return True
        error = record.exc_info[1]
        return database_problem(error, "") is error if isinstance(error, Exception) else True


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if getattr(root, "_portside_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_NoPoolResetNoise())
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root._portside_configured = True  # type: ignore[attr-defined]
