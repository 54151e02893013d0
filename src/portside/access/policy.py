"""The one decision function: may this actor do this action on this package?

Every surface (registry, token service, REST API, web pages) asks `decide`. It is a pure function of
facts gathered by `portside.access.facts`, so that it can be tested as a full matrix and so that the
rules live in exactly one place. The rules are ghcr.io's:

- a package is OWNER/NAME; OWNER is a user or an organization that exists;
- the first push creates the package, private; its creator gets admin on it;
- public packages may be pulled by anyone; internal ones by members of the owning organization;
- roles read < write < admin come from grants to users (and to teams, on organization packages);
  the user who owns a namespace, the owners of an organization, and site admins are admin;
- pull needs read, push needs write, delete needs admin and the delete:packages scope;
- changing a package's settings (visibility, collaborators, immutable tags: manage) needs admin and the
  write:packages scope;
- a token only ever narrows what its user may do (scopes, and Portside's fine-grained `only` list).

Storage quotas are decided here too (`quota_decision`, `usage_decision`): only site admins set an
owner's quota; an owner's usage is for the user themself, an organization's members, and site admins.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum


class Action(StrEnum):
    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"
    RESTORE = "restore"  # bring back a deleted package or version (REST API only)
    MANAGE = "manage"  # change a package's settings: visibility, collaborators, immutable tags (REST API only)


# What a registry bearer token can carry (the token endpoint's scope actions).
REGISTRY_ACTIONS = (Action.PULL, Action.PUSH, Action.DELETE)


class Role(IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, value: str | None) -> Role:
        return cls[value.upper()] if value else cls.NONE


READ_SCOPE, WRITE_SCOPE, DELETE_SCOPE = "read:packages", "write:packages", "delete:packages"
SCOPES = (READ_SCOPE, WRITE_SCOPE, DELETE_SCOPE)
VISIBILITIES = ("private", "internal", "public")
REQUIRED_ROLE = {
    Action.PULL: Role.READ,
    Action.PUSH: Role.WRITE,
    Action.DELETE: Role.ADMIN,
    Action.RESTORE: Role.ADMIN,
    Action.MANAGE: Role.ADMIN,
}
# write:packages implies read:packages, as on ghcr.io; restoring takes write:packages, as there, and so
# does changing a package's settings (ghcr.io's package settings page has no token equivalent).
SCOPE_GRANTS = {
    READ_SCOPE: {Action.PULL},
    WRITE_SCOPE: {Action.PULL, Action.PUSH, Action.RESTORE, Action.MANAGE},
    DELETE_SCOPE: {Action.DELETE},
}
SCOPE_FOR = {
    Action.PULL: READ_SCOPE,
    Action.PUSH: WRITE_SCOPE,
    Action.DELETE: DELETE_SCOPE,
    Action.RESTORE: WRITE_SCOPE,
    Action.MANAGE: WRITE_SCOPE,
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking. `scopes` and `only` are None when not limited by a token (web sign-in)."""

    user_id: int | None = None
    name: str | None = None
    site_admin: bool = False
    scopes: frozenset[str] | None = None
    only: tuple[str, ...] | None = None
    token_expires_at: datetime | None = None  # when the token this actor signed in with expires

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


ANONYMOUS = Actor()


@dataclass(frozen=True, slots=True)
class Facts:
    """What the database says about the package's namespace and the actor's relation to it."""

    package: str  # OWNER/NAME
    owner_exists: bool
    owner_kind: str | None = None  # "user" or "org"
    registry_enabled: bool = True
    actor_owns_namespace: bool = False  # the actor is the user that owns the namespace
    org_role: str | None = None  # the actor's role in the owning organization: "member" or "owner"
    package_exists: bool = False
    visibility: str = "private"
    granted: Role = Role.NONE  # the highest role granted to the actor or one of its teams

    @property
    def owner(self) -> str:
        return self.package.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""
    # True when the actor may not even know the package exists: answer as if it did not.
    hidden: bool = False
    # True when no credentials could change the answer (no such namespace, registry disabled), so an
    # anonymous client is told the reason instead of being asked to log in.
    final: bool = False


ALLOW = Decision(True)


def role_of(actor: Actor, facts: Facts) -> Role:
    if actor.site_admin or facts.actor_owns_namespace or facts.org_role == "owner":
        return Role.ADMIN
    role = facts.granted if facts.package_exists else Role.NONE
    if facts.package_exists and facts.visibility == "public":
        role = max(role, Role.READ)
    if facts.package_exists and facts.visibility == "internal" and facts.org_role is not None:
        role = max(role, Role.READ)
    if not facts.package_exists and facts.org_role == "member":
        role = Role.WRITE  # members may create packages in their organization
    return role


def decide(actor: Actor, facts: Facts, action: Action) -> Decision:
    package, owner = facts.package, facts.owner
    if "/" not in package:
        return Decision(
            False,
            f"{package} has no owner: name packages OWNER/NAME, e.g. {actor.name or 'you'}/{package}",
            final=True,
        )
    token_denial = _token_denial(actor, package, action)
    if not facts.owner_exists:
        if action is Action.PULL:
            return Decision(False, f"repository {package} not found", hidden=True)
        return Decision(
            False, f"namespace {owner} does not exist; push to a user or organization that exists", final=True
        )
    if not facts.registry_enabled:
        return Decision(
            False,
            f"organization {owner} has not enabled the container registry; an owner can enable it in the "
            f"organization's settings (/orgs/{owner}/settings) or with "
            f"`portside org set {owner} --container-registry enabled`",
            final=True,
        )
    role = role_of(actor, facts)
    visible = role >= Role.READ
    if token_denial is not None:
        return Decision(False, token_denial, hidden=not visible and facts.package_exists)
    if role >= REQUIRED_ROLE[action]:
        return ALLOW
    if not visible and action is Action.PULL:
        return Decision(False, f"repository {package} not found", hidden=True)
    return Decision(False, _role_denial(actor, facts, action, role), hidden=not visible and facts.package_exists)


def _token_denial(actor: Actor, package: str, action: Action) -> str | None:
    if actor.anonymous:
        return None
    if not scope_allows(actor, action):
        scope = SCOPE_FOR[action]
        return f"your token lacks the {scope} scope needed to {action} {package}; create a token with it"
    if actor.only is not None and not matches_only(actor.only, package):
        return f"your token is limited to {', '.join(actor.only)} and cannot be used for {package}"
    return None


def scope_allows(actor: Actor, action: Action) -> bool:
    """Whether the actor's token scopes (if it signed in with a token) allow the action."""
    return actor.scopes is None or any(action in SCOPE_GRANTS.get(scope, ()) for scope in actor.scopes)


def _role_denial(actor: Actor, facts: Facts, action: Action, role: Role) -> str:
    package, owner = facts.package, facts.owner
    if actor.anonymous:
        return f"authentication required to {action} {package}"
    if action is Action.RESTORE:
        return f"only an admin of {owner}'s packages can restore {package}"
    if action is Action.MANAGE and facts.package_exists:
        have = role.name.lower() if role else "no"
        return (
            f"{actor.name} has {have} access to {package}; changing its settings (visibility, collaborators, "
            f"immutable tags) needs admin, which a package admin can grant in its package settings or with "
            f"`portside package grant {package} --user {actor.name} --role admin`"
        )
    if not facts.package_exists:
        if facts.owner_kind == "org":
            return f"{actor.name} is not a member of organization {owner}, so cannot publish packages there"
        return f"only {owner} can publish packages to the {owner} namespace"
    needed = REQUIRED_ROLE[action].name.lower()
    have = role.name.lower() if role else "no"
    return (
        f"{actor.name} has {have} access to {package}, and {action} needs {needed}; "
        f"a package admin can grant it in its package settings or with "
        f"`portside package grant {package} --user {actor.name} --role {needed}`"
    )


def matches_only(only: tuple[str, ...] | None, package: str) -> bool:
    return only is None or any(fnmatch.fnmatchcase(package, pattern) for pattern in only)


# -- storage quotas --------------------------------------------------------------------------------


def quota_decision(actor: Actor, kind: str, owner: str) -> Decision:
    """Who may set the storage quota of a user or organization: site admins only (an organization's
    own owners could otherwise lift the limit the site set them)."""
    if actor.site_admin:
        return ALLOW
    command = "org" if kind == "org" else "user"
    return Decision(
        False,
        f"only site admins can set storage quotas; ask one to run "
        f"`portside {command} set {owner} --storage-quota SIZE`",
    )


def usage_decision(actor: Actor, kind: str, owner: str, org_role: str | None) -> Decision:
    """Who may read an owner's storage usage: the user themself, an organization's members and
    owners, and site admins. Outsiders of an organization are told it is not theirs, not that it
    does not exist: organizations are not secret (their public packages are listed)."""
    if actor.site_admin:
        return ALLOW
    if kind == "user" and actor.name == owner:
        return ALLOW
    if kind == "org" and org_role is not None:
        return ALLOW
    if kind == "org":
        return Decision(False, f"only members of {owner} and site admins can see its storage usage")
    return Decision(False, f"only {owner} and site admins can see {owner}'s storage usage")
