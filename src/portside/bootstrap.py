"""First start: the signing key, and a site admin with a token, so a new registry is usable at once."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Connection, select

from portside.access import accounts
from portside.access.bearer import ensure_signing_key
from portside.access.policy import SCOPES
from portside.config import Settings
from portside.metadata.database import Database, make_engine
from portside.metadata.schema import accounts as accounts_table

ADMIN = "admin"
CREDENTIALS_FILE = "initial-admin-credentials"


def bootstrap(settings: Settings) -> str | None:
    """Create the signing key and, on an empty database, the admin; return a message to print once."""
    ensure_signing_key(settings.data_dir.resolve())
    db = Database(make_engine(settings.effective_database_url, fsync=settings.fsync))
    try:
        token = db.write_sync(_create_admin)
    finally:
        db.close()
    if token is None:
        return None
    path = settings.data_dir.resolve() / CREDENTIALS_FILE
    _write_private(path, f"user: {ADMIN}\ntoken: {token}\n")
    return (
        f"Created the site admin {ADMIN!r} with a token that has every package scope (also in {path}):\n\n"
        f"    {token}\n\n"
        f'Log in with:  echo "$TOKEN" | docker login {settings.host}:{settings.port} -u {ADMIN} --password-stdin\n'
        "This is shown once. Create users with `portside user create` and tokens with `portside token create`."
    )


def _create_admin(conn: Connection) -> str | None:
    if conn.execute(select(accounts_table.c.id).where(accounts_table.c.kind == "user").limit(1)).first():
        return None
    accounts.create_user(conn, ADMIN, admin=True, actor="bootstrap")
    token, _ = accounts.create_token(conn, ADMIN, SCOPES, note="created on first start", actor="bootstrap")
    return token


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
