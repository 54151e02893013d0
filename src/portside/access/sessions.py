"""Browser sessions: a random secret in a cookie, its sha256 in the database.

A session stands for a user signed in with their password, so it carries no token scopes (like a
github.com session). Signing out, disabling the user or deleting them ends it at once: every page
view looks the session up, with a prepared statement, so nothing outlives its row.
"""

from __future__ import annotations

import secrets as random
from datetime import timedelta

from sqlalchemy import Connection, and_, bindparam, delete, insert, select

from portside.access import secrets
from portside.access.policy import Actor
from portside.clock import now
from portside.metadata.database import Database
from portside.metadata.schema import accounts, web_sessions


class Sessions:
    def __init__(self, db: Database, *, lifetime: timedelta) -> None:
        self.db = db
        self.lifetime = lifetime
        self._lookup = db.query(
            select(web_sessions.c.user_id, accounts.c.name, accounts.c.is_site_admin)
            .join(accounts, accounts.c.id == web_sessions.c.user_id)
            .where(
                and_(
                    web_sessions.c.secret_hash == bindparam("secret_hash"),
                    web_sessions.c.expires_at > bindparam("moment"),
                    accounts.c.is_disabled.is_(False),
                )
            )
        )

    async def start(self, actor: Actor, client: str) -> str:
        """A new session for a user who has just proved who they are; returns its secret."""
        secret = random.token_urlsafe(32)
        moment = now()

        def change(conn: Connection) -> None:
            conn.execute(web_sessions.delete().where(web_sessions.c.expires_at <= moment))  # keep the table small
            conn.execute(
                insert(web_sessions).values(
                    user_id=actor.user_id,
                    secret_hash=secrets.token_hash(secret),
                    client=client[:64],
                    created_at=moment,
                    expires_at=moment + self.lifetime,
                )
            )

        await self.db.write(change)
        return secret

    async def actor(self, secret: str) -> Actor | None:
        """The signed-in user, or None when the session ended, expired, or its user is disabled."""
        rows = await self.db.read(
            lambda conn: self.db.rows(conn, self._lookup, secret_hash=secrets.token_hash(secret), moment=now())
        )
        if not rows:
            return None
        user_id, name, site_admin = rows[0]
        return Actor(user_id=user_id, name=name, site_admin=bool(site_admin))

    async def end(self, secret: str) -> None:
        hashed = secrets.token_hash(secret)
        await self.db.write(lambda conn: conn.execute(delete(web_sessions).where(web_sessions.c.secret_hash == hashed)))
