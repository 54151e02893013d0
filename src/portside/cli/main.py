"""The `portside` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from typer.exceptions import TyperException

from portside.cli import admin, lifecycle
from portside.config import CONFIG_FILE_ENV, Settings

if TYPE_CHECKING:
    from portside.copy_data import Summary

app = typer.Typer(
    help="Portside: a self-hosted container registry.", no_args_is_help=True, pretty_exceptions_enable=False
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (PORTSIDE_DATA_DIR).")]
DatabaseUrlOption = Annotated[
    str | None, typer.Option("--database-url", help="Metadata database URL (PORTSIDE_DATABASE_URL).")
]
StorageUrlOption = Annotated[
    str | None,
    typer.Option("--storage-url", help="file:///PATH or s3://BUCKET/PREFIX?endpoint=... (PORTSIDE_STORAGE_URL)."),
]


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def load_settings(config: Path | None, **overrides: Any) -> Settings:
    """Put flags into the environment (so worker processes see them too), then read the settings."""
    if config is not None:
        os.environ[CONFIG_FILE_ENV] = str(config)
    for key, value in overrides.items():
        if value is not None:
            os.environ[f"PORTSIDE_{key.upper()}"] = str(value)
    try:
        return Settings.load()
    except (ValidationError, ValueError) as exc:
        fail(_settings_error(exc))
        raise AssertionError from exc  # unreachable: fail() exits


def _settings_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"invalid setting {where}: {first['msg'].removeprefix('Value error, ')}"
    return str(exc)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (PORTSIDE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (PORTSIDE_PORT).")] = None,
    data_dir: DataDirOption = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes; 0 = one per CPU.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate for HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for HTTPS.")] = None,
    log_format: Annotated[str | None, typer.Option(help="text or json.")] = None,
    server: Annotated[str | None, typer.Option(help="uvicorn or granian (PORTSIDE_SERVER).")] = None,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
    storage_url: StorageUrlOption = None,
) -> None:
    """Run the registry."""
    settings = load_settings(
        config,
        host=host,
        port=port,
        data_dir=data_dir,
        workers=workers,
        tls_cert=tls_cert,
        tls_key=tls_key,
        log_format=log_format,
        server=server,
        database_url=database_url,
        storage_url=storage_url,
    )
    if (settings.tls_cert is None) != (settings.tls_key is None):
        fail("--tls-cert and --tls-key go together")
    from portside.blobs import StorageUrlInvalid
    from portside.server import StartupError
    from portside.server import serve as run_server

    try:
        run_server(settings)
    except (StartupError, StorageUrlInvalid) as error:
        fail(str(error))


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    storage_url: StorageUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the effective configuration (never a secret: S3 credentials come from the AWS chain)."""
    settings = load_settings(config, data_dir=data_dir, database_url=database_url, storage_url=storage_url)
    values = settings.model_dump(mode="json")
    values["effective_workers"] = settings.effective_workers
    values["effective_database_url"] = settings.effective_database_url
    if as_json:
        typer.echo(json.dumps(values, indent=2))
        return
    width = max(len(key) for key in values)
    for key, value in values.items():
        typer.echo(f"{key:<{width}}  {value}")


@app.command()
def migrate(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    storage_url: StorageUrlOption = None,
) -> None:
    """Apply database migrations (serve does this on start)."""
    from portside.metadata.database import upgrade

    settings = load_settings(config, data_dir=data_dir, database_url=database_url, storage_url=storage_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    typer.echo("database is up to date")


@app.command("copy-data")
def copy_data(
    to_database: Annotated[
        str | None, typer.Option("--to-database", help="Database URL to copy the metadata into (migrated first).")
    ] = None,
    to_storage: Annotated[
        str | None, typer.Option("--to-storage", help="file:///PATH or s3://... to copy the blobs into.")
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    storage_url: StorageUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Copy this installation (its settings are the source) into other backends, verifying every
    blob's digest. Stop the server first; after an interruption, run the same command again."""
    from portside.copy_data import CopyError, Plan, copy_installation

    if to_database is None and to_storage is None:
        fail("give --to-database, --to-storage or both")
    settings = load_settings(config, data_dir=data_dir, database_url=database_url, storage_url=storage_url)
    plan = Plan(
        database_url=settings.effective_database_url,
        storage_url=settings.storage_url,
        data_dir=settings.data_dir,
        to_database=to_database,
        to_storage=to_storage,
        fsync=settings.fsync,
    )
    try:
        summary = copy_installation(plan, _ProgressBar())
    except CopyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("\nerror: interrupted; run the same command again to resume", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        _print_copy_summary(summary)
    if not summary.ok:
        raise typer.Exit(1)


class _ProgressBar:
    """click's progress bar on stderr (drawn only on a terminal), so stdout keeps just the summary."""

    def __init__(self) -> None:
        self._bar: Any = None

    def begin(self, what: str, total: int) -> None:
        self._bar = typer.progressbar(length=max(total, 1), label=what, file=sys.stderr, show_pos=False)
        self._bar.__enter__()

    def advance(self, amount: int) -> None:
        self._bar.update(amount)

    def end(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _print_copy_summary(summary: Summary) -> None:
    if summary.rows_note:
        typer.echo(f"rows: {summary.rows_note}")
    else:
        width = max(len(name) for name in [t.table for t in summary.tables] + list(summary.skipped_tables))
        digits = max(len("COPIED"), *(len(str(t.rows)) for t in summary.tables))
        typer.echo(f"{'TABLE':<{width}}  {'ROWS':>{digits}}  {'COPIED':>{digits}}")
        for table in summary.tables:
            typer.echo(f"{table.table:<{width}}  {table.rows:>{digits}}  {table.copied:>{digits}}")
        for name, reason in summary.skipped_tables.items():
            typer.echo(f"{name:<{width}}  skipped: {reason}")
    if summary.blobs_note:
        typer.echo(f"blobs: {summary.blobs_note}")
    else:
        typer.echo(
            f"blobs: {summary.blobs_copied} copied ({summary.bytes_copied / 1024**2:.1f} MiB), "
            f"{summary.blobs_present} already there, {len(summary.blob_failures)} failed"
        )
        for failure in summary.blob_failures:
            typer.echo(f"  failed {failure.digest}: {failure.reason}")
    typer.echo(f"elapsed: {summary.elapsed_seconds:.1f} s")


@app.callback()
def _everywhere(database_url: DatabaseUrlOption = None, storage_url: StorageUrlOption = None) -> None:
    """Portside: a self-hosted container registry. `--database-url` and `--storage-url` given
    before any command (`portside --storage-url s3://... user list`) apply to it."""
    load_settings(None, database_url=database_url, storage_url=storage_url)


admin.register(app)
lifecycle.register(app)


def main() -> None:
    """Run the CLI; a usage mistake is one line on stderr and exit code 2, like every other bad input."""
    try:
        result = app(standalone_mode=False)
    except TyperException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        context = getattr(exc, "ctx", None)
        if not message and context is not None:  # a command group called without a command
            typer.echo(context.get_help())
        else:
            typer.echo(f"error: {message} (see --help)", err=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
