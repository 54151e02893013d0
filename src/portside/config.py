"""Portside's settings: defaults < config file (TOML) < PORTSIDE_* environment < command-line flags.

The command line writes its flags into the environment before the server starts, so that every
worker process reads exactly the same settings with `Settings.load()`.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from portside.sizes import parse_size

CONFIG_FILE_ENV = "PORTSIDE_CONFIG"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PORTSIDE_", extra="forbid")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(5000, ge=0, le=65535, description="TCP port to listen on.")
    data_dir: Path = Field(Path("portside-data"), description="Where metadata and blobs live.")
    workers: int = Field(0, ge=0, description="Worker processes; 0 means one per CPU.")
    server: Literal["uvicorn", "granian"] = Field("granian", description="The ASGI server that runs Portside.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in the data directory.")
    storage_url: str = Field(
        "",
        description="Where blobs live: file:///PATH or s3://BUCKET[/PREFIX]?endpoint=URL&region=R; "
        "empty means the data directory.",
    )
    storage_redirect: bool | None = Field(
        None, description="Answer blob downloads with a presigned redirect (S3; default true)."
    )
    max_manifest_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Largest manifest accepted.")
    upload_ttl_seconds: int = Field(24 * 3600, gt=0, description="Abandoned uploads expire after this.")
    restore_days: int = Field(30, gt=0, description="Deleted packages and versions can be restored for this long.")
    storage_quota_bytes: int | None = Field(
        None,
        ge=0,
        description="Bytes each user or organization may store unless given its own quota (10GiB, 500MB, "
        "or bytes); empty means unlimited.",
    )
    storage_quota_warning: float = Field(
        0.9, gt=0, le=1, description="Share of a quota from which pushes and pages warn (0.9: at 90%)."
    )
    gc_grace_seconds: int = Field(
        24 * 3600, ge=0, description="Garbage collection leaves a blob alone this long after its upload or mount."
    )
    retention_interval_seconds: float = Field(
        86400.0, gt=0, description="How often retention policies run on their own (once across a fleet)."
    )
    gc_interval_seconds: float = Field(
        3600.0, gt=0, description="How often garbage collection runs in the background (once across a fleet)."
    )
    download_flush_seconds: float = Field(5.0, gt=0, description="How often pull counts are written to the database.")
    fsync: bool = Field(True, description="fsync blobs and the database before acknowledging a write.")
    tls_cert: Path | None = Field(None, description="PEM certificate; serves HTTPS with tls_key.")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks whose X-Forwarded-Proto/Host headers are honoured.",
    )
    service: str = Field("portside", description="The service name in token challenges and token audiences.")
    token_lifetime_seconds: int = Field(300, gt=0, description="Lifetime of registry bearer tokens.")
    allow_password_login: bool = Field(False, description="Accept passwords (not only tokens) on the registry.")
    session_days: int = Field(14, gt=0, description="How long a browser stays signed in.")
    session_secret: SecretStr = Field(
        SecretStr(""), description="Signs browser cookies; empty: a key kept in the data directory (one per replica)."
    )
    auth_max_failures: int = Field(10, gt=0, description="Failed sign-ins allowed per address and user per window.")
    auth_failure_window_seconds: int = Field(60, gt=0, description="The window for auth_max_failures.")
    log_format: Literal["text", "json"] = Field("text", description="Access log format.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")

    @field_validator("storage_url")
    @classmethod
    def _no_credentials_in_storage_url(cls, value: str) -> str:
        if "@" in urlsplit(value).netloc:
            raise ValueError(
                "storage_url must not carry credentials; give them the AWS way (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, a shared credentials file, or an instance role)"
            )
        return value

    @field_validator("storage_quota_bytes", mode="before")
    @classmethod
    def _parse_quota(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_size(value) if value.strip() else None
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @classmethod
    def load(cls) -> Settings:
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file and not Path(config_file).is_file():
            raise ValueError(f"config file {config_file} does not exist")
        return cls()

    @property
    def effective_workers(self) -> int:
        return self.workers or (os.cpu_count() or 1)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'portside.db'}"

    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies]
