"""Runs the ASGI application under uvicorn with several worker processes."""

from __future__ import annotations

import uvicorn

from portside.config import Settings
from portside.metadata.database import upgrade


def serve(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Migrate once, before any worker starts, so workers never race each other on the schema.
    upgrade(settings.effective_database_url)
    uvicorn.run(
        "portside.app:create_app",
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
