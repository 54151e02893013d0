"""Assembles Portside: stores -> services -> HTTP surfaces, as one ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from portside.access import keys
from portside.access.bearer import TokenSigner
from portside.access.ratelimit import FailureLimiter
from portside.access.service import Access
from portside.access.sessions import Sessions
from portside.blobs import open_store
from portside.chores import every
from portside.config import Settings
from portside.faults import Unavailable
from portside.http.accesslog import AccessLog
from portside.http.api.manage import ManageApi
from portside.http.api.openapi import docs_page, openapi_json
from portside.http.api.routes import PackagesApi
from portside.http.auth import RegistryAuth
from portside.http.base_url import BaseUrl
from portside.http.distribution.routes import Distribution
from portside.http.errors import http_errors, registry_error, unavailable_error, unexpected_error
from portside.http.health import Health
from portside.http.token.routes import TokenService
from portside.http.web.admin import SiteAdmin
from portside.http.web.orgs import OrgSettings
from portside.http.web.package_settings import PackageSettings
from portside.http.web.routes import Web
from portside.http.web.signin import SignIn
from portside.http.web.site import Site
from portside.http.web.tokens import TokenPages
from portside.logs import configure_logging
from portside.metadata.database import Database, make_engine
from portside.packages.details import VersionDetails
from portside.packages.manage import Management
from portside.packages.service import Packages
from portside.registry.errors import RegistryError
from portside.registry.gc import GarbageCollector
from portside.registry.quotas import Quotas
from portside.registry.service import Registry
from portside.registry.uploads import Uploads

log = logging.getLogger("portside")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.load()
    configure_logging(settings)
    db = Database(make_engine(settings.effective_database_url, fsync=settings.fsync))
    store = open_store(
        settings.storage_url, settings.data_dir, fsync=settings.fsync, redirect=settings.storage_redirect
    )
    quotas = Quotas(db, default_bytes=settings.storage_quota_bytes, warning_ratio=settings.storage_quota_warning)
    registry = Registry(db, store, max_manifest_bytes=settings.max_manifest_bytes, quotas=quotas)
    uploads = Uploads(db, store, registry, ttl_seconds=settings.upload_ttl_seconds)
    # Keys every replica shares through the database (bootstrap made them); reloaded periodically.
    signer = TokenSigner(
        db.read_sync(keys.token_keys, settings.token_lifetime_seconds), lifetime=settings.token_lifetime_seconds
    )
    access = Access(
        db,
        signer,
        service=settings.service,
        allow_password_login=settings.allow_password_login,
        limiter=FailureLimiter(settings.auth_max_failures, settings.auth_failure_window_seconds),
    )
    base_url = BaseUrl(settings.trusted_proxy_networks())
    auth = RegistryAuth(access, base_url)
    distribution = Distribution(registry, uploads, base_url, auth)
    token_service = TokenService(access, auth)
    packages = Packages(db, access, restore_days=settings.restore_days)
    collector = GarbageCollector(
        db, store, grace=timedelta(seconds=settings.gc_grace_seconds), restore_window=packages.restore_window
    )
    packages_api = PackagesApi(packages, access, base_url)
    management = Management(db, access, packages, quotas)
    manage_api = ManageApi(packages_api, management)
    sessions = Sessions(db, lifetime=timedelta(days=settings.session_days))
    site = Site(packages_api, sessions, base_url, web_secret(settings, db))
    groups = (
        SignIn(site, access),
        TokenPages(site, packages, management),
        PackageSettings(site, packages, management),
        OrgSettings(site, packages, management),
        SiteAdmin(site, packages, management),
    )
    web = Web(site, packages, management, VersionDetails(db, store), extra=groups)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await collector.purge()  # what expired while the server was down
        expiry = max(1.0, min(settings.upload_ttl_seconds / 4, 600.0))
        tasks = [
            # Once across the fleet (chores.py): what every replica would otherwise repeat.
            asyncio.create_task(every(expiry, lambda: _expire(uploads), db=db, name="upload-expiry")),
            asyncio.create_task(every(600.0, collector.purge, db=db, name="restore-window-purge")),
            asyncio.create_task(every(settings.gc_interval_seconds, collector.run, db=db, name="garbage-collection")),
            asyncio.create_task(
                every(settings.retention_interval_seconds, management.scheduled_retention, db=db, name="retention")
            ),
            # Each process's own: its counted pulls, its copy of the keys.
            asyncio.create_task(every(settings.download_flush_seconds, registry.flush_downloads)),
            asyncio.create_task(every(keys.RELOAD_SECONDS, access.reload_keys)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await registry.flush_downloads()  # pulls counted since the last flush
            uploads.close()
            await store.close()
            db.close()

    app = Starlette(
        routes=[
            *Health(db, store).routes(),
            *token_service.routes(),
            *distribution.routes(),
            *packages_api.routes(),
            *manage_api.routes(),
            Route("/api/v3/openapi.json", openapi_json, methods=["GET"]),
            Route("/api/docs", docs_page, methods=["GET"]),
            # The browser's pages last: none of their paths overlaps /v2, /token, /api or /healthz.
            *web.routes(),
        ],
        middleware=[Middleware(AccessLog, json_format=settings.log_format == "json")],
        exception_handlers={
            RegistryError: registry_error,
            Unavailable: unavailable_error,
            HTTPException: http_errors(site.unknown),
            Exception: unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.uploads = uploads
    return app


def web_secret(settings: Settings, db: Database) -> bytes:
    """The key that signs browser cookies: configured, or the one every replica shares through the
    database (access/keys.py)."""
    if configured := settings.session_secret.get_secret_value():
        return configured.encode()
    return db.read_sync(keys.session_key)


async def _expire(uploads: Uploads) -> None:
    expired = await uploads.expire()
    if expired:
        log.info("expired %d abandoned uploads", expired)
