"""Logging set-up shared by the server's workers and the command line."""

from __future__ import annotations

import logging
import sys

from portside.config import Settings


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if getattr(root, "_portside_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root._portside_configured = True  # type: ignore[attr-defined]
