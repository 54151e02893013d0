"""`portside gc`: a garbage collection pass now, on the configured database and blob store."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Connection

from portside.access import accounts as acc
from portside.access.audit import record
from portside.blobs import open_store
from portside.cli.admin import ConfigOption, DataDirOption, JsonOption, _database, _fail, _write
from portside.faults import Unavailable
from portside.packages import retention
from portside.packages.manage import run_policy
from portside.packages.service import PackageError
from portside.registry import gc as gc_module
from portside.registry.gc import GarbageCollector, GcReport
from portside.sizes import human


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
        f"{verb} {report.blobs} blob{'s' * (report.blobs != 1)} ({human(report.bytes)}) and "
        f"{report.manifests} version{'s' * (report.manifests != 1)} past the restore window"
    )
    if report.skipped_busy:
        line += f"; {report.skipped_busy} left for the next pass (being uploaded or mounted right now)"
    return line


# -- retention -----------------------------------------------------------------------------------

retention_app = typer.Typer(
    help="Retention policies: which versions a package keeps (OWNER/NAME), or an owner's default (OWNER).",
    no_args_is_help=True,
)


def _subject(conn: Connection, target: str) -> tuple[int | None, int | None]:
    """(repository id, None) for OWNER/NAME, (None, owner id) for OWNER."""
    if "/" in target:
        repository_id = gc_module.live_package(conn, target)
        if repository_id is None:
            raise acc.AccessError(f"package {target} not found")
        return repository_id, None
    return None, acc.get_account(conn, target).id


def _show(conn: Connection, target: str) -> dict[str, Any]:
    repository_id, owner_id = _subject(conn, target)
    if repository_id is not None:
        return retention.setting(conn, repository_id).as_json()
    assert owner_id is not None
    policy = retention.owner_policy(conn, owner_id)
    return {"owner": target, "policy": policy.as_json() if policy else None}


@retention_app.command("set")
def retention_set(
    target: Annotated[str, typer.Argument(metavar="OWNER/NAME|OWNER")],
    keep_last_tagged: Annotated[int | None, typer.Option(help="Keep this many most recently tagged.")] = None,
    tag_pattern: Annotated[str, typer.Option(help="The tags keep-last-tagged counts.")] = "*",
    protect: Annotated[list[str] | None, typer.Option(help="A tag pattern never deleted; repeat.")] = None,
    delete_untagged_after_days: Annotated[int | None, typer.Option(help="Delete untagged versions older.")] = None,
    keep_pulled_within_days: Annotated[int | None, typer.Option(help="Keep what was pulled this recently.")] = None,
    disable: Annotated[bool, typer.Option("--disable", help="Keep the policy but do not run it.")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the policy.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set a package's policy (it replaces its owner's default) or an owner's default."""
    policy = None
    if not clear:
        body = {
            "enabled": not disable,
            "keep_last_tagged": keep_last_tagged,
            "tag_pattern": tag_pattern,
            "protected_tags": protect or [],
            "delete_untagged_after_days": delete_untagged_after_days,
            "keep_pulled_within_days": keep_pulled_within_days,
        }
        try:
            policy = retention.parse(body)
        except retention.InvalidPolicy as exc:
            _fail(str(exc))

    def change(conn: Connection) -> dict[str, Any]:
        repository_id, owner_id = _subject(conn, target)
        retention.save(conn, repository_id=repository_id, owner_id=owner_id, policy=policy, actor="-")
        action = "package.retention_set" if repository_id is not None else "owner.retention_set"
        record(conn, "-", action, target, {"policy": policy.as_json() if policy else None}, "cli")
        return _show(conn, target)

    shown = _write(config, data_dir, change)
    typer.echo(
        json.dumps(shown, indent=2) if as_json else f"{target}: retention policy {'removed' if clear else 'set'}"
    )


@retention_app.command("show")
def retention_show(
    target: Annotated[str, typer.Argument(metavar="OWNER/NAME|OWNER")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """The policy of a package (its own, its owner's default, the one that applies) or an owner's."""
    shown = _write(config, data_dir, lambda conn: _show(conn, target))
    typer.echo(json.dumps(shown, indent=2 if as_json else None))


def _run(target: str, dry_run: bool, config: Path | None, data_dir: Path | None, as_json: bool) -> None:
    if "/" not in target:
        _fail("preview and run take a package, OWNER/NAME")

    def run(conn: Connection) -> list[retention.Decision]:
        repository_id, _ = _subject(conn, target)
        assert repository_id is not None
        return run_policy(conn, repository_id, "-", dry_run=dry_run, explicit=True)

    try:
        decisions = _write(config, data_dir, run)
    except PackageError as exc:
        _fail(exc.message)
        return
    deleting = [d for d in decisions if d.delete]
    if as_json:
        body = {"package": target, "dry_run": dry_run, "delete": [d.as_json() for d in deleting]}
        body["keep"] = [d.as_json() for d in decisions if not d.delete]
        typer.echo(json.dumps(body, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    count = len(deleting)
    typer.echo(f"{target}: {verb} {count} version{'s' * (count != 1)}, kept {len(decisions) - count}")
    for d in decisions:
        typer.echo(f"  {'delete' if d.delete else 'keep  '} {d.digest} {','.join(d.tags) or '-'}: {d.reason}")


@retention_app.command("preview")
def retention_preview(
    target: Annotated[str, typer.Argument(metavar="OWNER/NAME")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """What the policy would delete and keep now, each with the reason; nothing changes."""
    _run(target, True, config, data_dir, as_json)


@retention_app.command("run")
def retention_run(
    target: Annotated[str, typer.Argument(metavar="OWNER/NAME")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the policy now: what it deletes is restorable for the restore window."""
    _run(target, False, config, data_dir, as_json)


def register(app: typer.Typer) -> None:
    app.command("gc")(gc)
    app.add_typer(retention_app, name="retention")
