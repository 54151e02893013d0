"""Settings a package has of its own or takes from its owner (immutable tags, retention): one row per
package or per owner in the setting's table, the package's replacing the owner's."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, Connection, Table, select

from portside.metadata.schema import accounts, repositories


@dataclass(frozen=True)
class Stored:
    package: str  # OWNER/NAME (a deleted package's name without its @id)
    own: str | None  # the package's own stored value
    default: str | None  # its owner's
    owner_kind: str  # "user" or "org"


def stored(conn: Connection, table: Table, value: Column[str], repository_id: int) -> Stored:
    """The package's own value and its owner's default, in one indexed query."""
    own, default = table.alias("own"), table.alias("default")
    row = conn.execute(
        select(repositories.c.name, own.c[value.name], default.c[value.name], accounts.c.kind)
        .select_from(
            repositories.outerjoin(own, own.c.repository_id == repositories.c.id)
            .outerjoin(default, default.c.owner_id == repositories.c.owner_id)
            .outerjoin(accounts, accounts.c.id == repositories.c.owner_id)
        )
        .where(repositories.c.id == repository_id)
    ).one()
    return Stored(str(row[0]).split("@", 1)[0], row[1], row[2], row[3] or "user")
