"""First start: the signing key, and a site admin with a token and a password, so a new registry is
usable at once: the token for docker and the APIs, the password for the pages in a browser."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import Connection, select

from portside.access import accounts, keys
from portside.access.bearer import KEY_FILE
from portside.access.policy import SCOPES
from portside.config import Settings
from portside.metadata.database import Database, make_engine
from portside.metadata.schema import accounts as accounts_table

ADMIN = "admin"
CREDENTIALS_FILE = "initial-admin-credentials"
SESSION_KEY_FILE = "web-session-key"  # where a single machine kept its cookie key before the database did


def bootstrap(settings: Settings) -> str | None:
    """Create the signing key and, on an empty database, the admin; return a message to print once."""
    db = Database(make_engine(settings.effective_database_url, fsync=settings.fsync))
    password = secrets.token_urlsafe(12)
    data_dir = settings.data_dir.resolve()
    try:
        # The keys a single machine kept in its data directory move into the database on first
        # start, so the tokens and cookies it issued stay valid; then every replica shares them.
        db.write_sync(keys.ensure, keys.TOKEN, keys.new_token_key, data_dir / KEY_FILE)
        db.write_sync(keys.ensure, keys.SESSION, keys.new_session_key, data_dir / SESSION_KEY_FILE)
        token = db.write_sync(_create_admin, password)
    finally:
        db.close()
    if token is None:
        return None
    path = settings.data_dir.resolve() / CREDENTIALS_FILE
    _write_private(path, f"user: {ADMIN}\ntoken: {token}\npassword: {password}\n")
    # 0.0.0.0 (as in the container image) is where it listens, not an address to connect to.
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    address = f"{host}:{settings.port}"
    return (
        f"Created the site admin {ADMIN!r} (also in {path}):\n\n"
        f"    token:    {token}   (every package scope; for docker and the APIs)\n"
        f"    password: {password}   (for signing in at http://{address}/login)\n\n"
        f'Log in with:  echo "$TOKEN" | docker login {address} -u {ADMIN} --password-stdin\n'
        "This is shown once. Create users with `portside user create` and tokens with `portside token create`, "
        "or on the site admin pages."
    )


def _create_admin(conn: Connection, password: str) -> str | None:
    if conn.execute(select(accounts_table.c.id).where(accounts_table.c.kind == "user").limit(1)).first():
        return None
    accounts.create_user(conn, ADMIN, admin=True, password=password, actor="bootstrap")
    token, _ = accounts.create_token(conn, ADMIN, SCOPES, note="created on first start", actor="bootstrap")
    return token


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
