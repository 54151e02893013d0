"""Runs the ASGI application with several worker processes, under uvicorn or Granian."""

from __future__ import annotations

import asyncio
import sys

from portside.blobs import open_store
from portside.bootstrap import bootstrap
from portside.config import Settings
from portside.metadata.database import schema_behind, upgrade

APP = "portside.app:create_app"


class StartupError(Exception):
    """Something the operator must fix before the registry can serve; one line says what."""


def serve(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    check_storage(settings)
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        # The embedded default migrates itself, once, before any worker starts.
        upgrade(url)
    elif problem := schema_behind(url):
        # N replicas must not race to migrate: that is `portside migrate`, once per upgrade.
        raise StartupError(f"{problem}: run `portside migrate` (once, from one machine), then start the replicas")
    message = bootstrap(settings)
    if message:
        print(message, file=sys.stderr, flush=True)
    if settings.server == "granian":
        _granian(settings)
    else:
        _uvicorn(settings)


def check_storage(settings: Settings) -> None:
    """The blob store must answer before workers start: an unreachable endpoint, wrong credentials
    or a missing bucket is one clear line, not a worker crash loop or a 503 on every push."""
    store = open_store(
        settings.storage_url, settings.data_dir, fsync=settings.fsync, redirect=settings.storage_redirect
    )

    async def probe() -> str | None:
        try:
            return await store.check()
        finally:
            await store.close()

    problem = asyncio.run(probe())
    if problem is not None:
        raise StartupError(f"cannot use blob storage {store.description}: {problem}")


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
