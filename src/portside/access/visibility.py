"""Which packages an actor may read, as a SQL condition: the set-based twin of `policy.decide`.

The catalog and automatic cross-repository mounts need "every package this actor can pull" as one
query; calling `decide` per row would not scale. The access-matrix tests check that this condition
and `decide(..., Action.PULL)` agree in every cell.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, or_, select, true

from portside.access.policy import Action, Actor, scope_allows
from portside.metadata.hints import unindexed
from portside.metadata.schema import accounts, org_members, package_grants, repositories, team_members


def readable(actor: Actor) -> ColumnElement[bool]:
    if not scope_allows(actor, Action.PULL):
        return false()  # a token without read:packages reads nothing, as decide() says
    # Not by the owner index (SQLite): it walks the name index for an ordered page (catalog) and
    # stops after a page, instead of sorting every row.
    enabled = unindexed(repositories.c.owner_id).in_(
        select(accounts.c.id).where(or_(accounts.c.kind == "user", accounts.c.registry_enabled == true()))
    )
    if actor.site_admin:
        return and_(enabled, _only(actor))
    public = repositories.c.visibility == "public"
    if actor.user_id is None:
        return and_(enabled, public)
    uid = actor.user_id
    org_ids = select(org_members.c.org_id).where(org_members.c.user_id == uid)
    owned_org_ids = org_ids.where(org_members.c.role == "owner")
    team_ids = select(team_members.c.team_id).where(team_members.c.user_id == uid)
    granted = select(package_grants.c.repository_id).where(
        or_(package_grants.c.user_id == uid, package_grants.c.team_id.in_(team_ids))
    )
    return and_(
        enabled,
        _only(actor),
        or_(
            public,
            repositories.c.owner_id == uid,
            repositories.c.owner_id.in_(owned_org_ids),
            and_(repositories.c.visibility == "internal", repositories.c.owner_id.in_(org_ids)),
            repositories.c.id.in_(granted),
        ),
    )


def _only(actor: Actor) -> ColumnElement[bool]:
    if actor.only is None:
        return true()
    conditions = []
    for pattern in actor.only:
        if pattern.endswith("/*"):
            prefix = pattern[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(repositories.c.name.like(f"{prefix}%", escape="\\"))
        else:
            conditions.append(repositories.c.name == pattern)
    return or_(*conditions) if conditions else false()
