"""Keys every replica shares through the database: the bearer-token signing keys (ECDSA P-256, by
key id) and the key that signs browser cookies.

Why the database and not a file configured on each replica: the database is already what every
replica trusts (whoever can write to it can make themselves site admin), a fleet needs no extra
secret distribution, and rotation is one command. The cost, said in docs/scale-out.md: a copy of the
database carries the keys, so backups are as sensitive as the keys themselves.

Rotation: `portside keys rotate` adds a key that signs from then on and retires the old one, which
still verifies until every token it signed has expired. Replicas reload keys every RELOAD_SECONDS
and whenever a token names a key they do not know.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, select, update

from portside.clock import now
from portside.metadata.database import dialect_insert
from portside.metadata.schema import server_keys

TOKEN = "token"
SESSION = "session"
RELOAD_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    material: bytes
    created_at: datetime
    retired_at: datetime | None


def new_token_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_session_key() -> bytes:
    return secrets.token_bytes(32)


def key_id(material: bytes, purpose: str) -> str:
    """A token key's id is a fingerprint of its public key (what bearer tokens already carry as
    `kid`); a cookie key's, of the key itself."""
    digest = hashes.Hash(hashes.SHA256())
    if purpose == TOKEN:
        private = serialization.load_pem_private_key(material, password=None)
        digest.update(
            private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    else:
        digest.update(b"portside-session-key:" + material)
    return digest.finalize()[:12].hex()


def ensure(conn: Connection, purpose: str, make: Callable[[], bytes], legacy: Path | None = None) -> None:
    """Make sure `purpose` has a key that signs: the one a single-machine installation kept in its
    data directory (so its tokens and cookies stay valid), else a new one. Concurrent replicas
    starting at once agree on one: the first insert wins, the others see it."""
    if _active(conn, purpose):
        return
    material = legacy.read_bytes() if legacy is not None and legacy.is_file() else make()
    _insert(conn, purpose, material)


def keys(conn: Connection, purpose: str, verify_for: timedelta) -> list[Key]:
    """Keys that sign or still verify, newest first: the first is the one that signs."""
    cutoff = now() - verify_for
    rows = conn.execute(
        select(server_keys.c.id, server_keys.c.material, server_keys.c.created_at, server_keys.c.retired_at)
        .where(
            server_keys.c.purpose == purpose,
            (server_keys.c.retired_at.is_(None)) | (server_keys.c.retired_at > cutoff),
        )
        .order_by(server_keys.c.retired_at.is_not(None), server_keys.c.created_at.desc())
    )
    return [Key(*row) for row in rows]


def rotate(conn: Connection, purpose: str, make: Callable[[], bytes]) -> str:
    """A new key signs from now on; the one before it is retired (it still verifies for a while)."""
    conn.execute(
        update(server_keys)
        .where(server_keys.c.purpose == purpose, server_keys.c.retired_at.is_(None))
        .values(retired_at=now())
    )
    return _insert(conn, purpose, make())


def _active(conn: Connection, purpose: str) -> bool:
    found = conn.execute(
        select(server_keys.c.id).where(server_keys.c.purpose == purpose, server_keys.c.retired_at.is_(None)).limit(1)
    )
    return found.first() is not None


def _insert(conn: Connection, purpose: str, material: bytes) -> str:
    identifier = key_id(material, purpose)
    conn.execute(
        dialect_insert(conn.dialect.name, server_keys)
        .values(id=identifier, purpose=purpose, material=material, created_at=now())
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return identifier


def token_keys(conn: Connection, lifetime_seconds: int) -> list[tuple[str, bytes]]:
    """(key id, PEM) of every token key that signs or verifies, the signing key first. A retired key
    verifies for a token's lifetime, plus the time replicas take to notice the rotation."""
    verify_for = timedelta(seconds=lifetime_seconds + 2 * RELOAD_SECONDS)
    return [(key.id, key.material) for key in keys(conn, TOKEN, verify_for)]


def session_key(conn: Connection) -> bytes:
    found = keys(conn, SESSION, timedelta(0))
    if not found:
        raise LookupError("no session key: run `portside migrate`, then start the server")
    return found[0].material


def describe(conn: Connection) -> list[dict[str, object]]:
    rows = conn.execute(
        select(server_keys.c.id, server_keys.c.purpose, server_keys.c.created_at, server_keys.c.retired_at).order_by(
            server_keys.c.purpose, server_keys.c.created_at
        )
    )
    return [{"id": i, "purpose": p, "created": c, "retired": r} for i, p, c, r in rows]
