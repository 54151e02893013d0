"""Runs the ASGI application with several worker processes, under uvicorn or Granian."""

from __future__ import annotations

import sys

from portside.bootstrap import bootstrap
from portside.config import Settings
from portside.metadata.database import upgrade

APP = "portside.app:create_app"


def serve(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Migrate once, before any worker starts, so workers never race each other on the schema.
    upgrade(settings.effective_database_url)
    message = bootstrap(settings)
    if message:
        print(message, file=sys.stderr, flush=True)
    if settings.server == "granian":
        _granian(settings)
    else:
        _uvicorn(settings)


def _uvicorn(settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.effective_workers,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=30,
    )


def _granian(settings: Settings) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    Server(
        APP,
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.effective_workers,
        ssl_cert=settings.tls_cert,
        ssl_key=settings.tls_key,
        log_enabled=False,
        backlog=2048,
    ).serve()
