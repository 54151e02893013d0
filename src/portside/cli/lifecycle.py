"""`portside gc`: a garbage collection pass now, on the configured database and blob store."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Annotated

import typer

from portside.blobs import open_store
from portside.cli.admin import ConfigOption, DataDirOption, JsonOption, _database, _fail
from portside.faults import Unavailable
from portside.registry.gc import GarbageCollector, GcReport
from portside.sizes import human_size


def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be removed; change nothing.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Collect garbage now: versions past their restore window, then blobs that nothing references
    (left alone for gc_grace_seconds after their upload). Safe while the registry serves pushes."""
    from portside.cli.main import load_settings

    settings = load_settings(config, data_dir=data_dir)
    with _database(config, data_dir) as db:
        store = open_store(
            settings.storage_url, settings.data_dir, fsync=settings.fsync, redirect=settings.storage_redirect
        )
        collector = GarbageCollector(
            db,
            store,
            grace=timedelta(seconds=settings.gc_grace_seconds),
            restore_window=timedelta(days=settings.restore_days),
        )
        try:
            report = asyncio.run(_pass(collector, dry_run))
        except Unavailable as error:
            _fail(f"{error.message} ({error.operator})")
            return
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        typer.echo(_summary(report))


async def _pass(collector: GarbageCollector, dry_run: bool) -> GcReport:
    try:
        return await collector.run(dry_run=dry_run)
    finally:
        await collector.store.close()


def _summary(report: GcReport) -> str:
    verb = "would remove" if report.dry_run else "removed"
    line = (
        f"{verb} {report.blobs} blob{'s' * (report.blobs != 1)} ({human_size(report.bytes)}) and "
        f"{report.manifests} version{'s' * (report.manifests != 1)} past the restore window"
    )
    if report.skipped_busy:
        line += f"; {report.skipped_busy} left for the next pass (being uploaded or mounted right now)"
    return line


def register(app: typer.Typer) -> None:
    app.command("gc")(gc)
