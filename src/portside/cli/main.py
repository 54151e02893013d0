"""The `portside` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from typer.exceptions import TyperException

from portside.cli import admin, lifecycle
from portside.config import CONFIG_FILE_ENV, Settings

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
