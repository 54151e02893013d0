"""The audit log: security events (sign-ins and failures, tokens, visibility, grants, deletions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from portside.clock import now
from portside.metadata.schema import audit_events


def record(
    conn: Connection,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, object] | None = None,
    client: str = "",
) -> None:
    conn.execute(
        audit_events.insert().values(
            at=now(),
            actor=actor,
            action=action,
            target=target,
            client=client,
            detail=json.dumps(detail, default=str) if detail else None,
        )
    )


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: datetime
    actor: str
    action: str
    target: str
    client: str
    detail: dict[str, object] | None


def events_since(conn: Connection, since: datetime) -> list[AuditEvent]:
    rows = conn.execute(
        select(
            audit_events.c.at,
            audit_events.c.actor,
            audit_events.c.action,
            audit_events.c.target,
            audit_events.c.client,
            audit_events.c.detail,
        )
        .where(audit_events.c.at >= since)
        .order_by(audit_events.c.id)
    )
    return [
        AuditEvent(at, actor, action, target, client, json.loads(detail) if detail else None)
        for at, actor, action, target, client, detail in rows
    ]
