"""Management beyond ghcr.io's API: package settings and collaborators, tokens, users, organizations, audit.

What the `portside` command line does on the database, for a signed-in actor and with its permission
checks: package permissions through `Access.decide` (the one decision function), account permissions
(site admin, organization owner or member) here. Changes go through `portside.access.accounts`, which
records each in the audit log as the command line's are, with the actor's name. Nothing here knows
about HTTP; refusals are `PackageError`s with the status they mean.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio
from sqlalchemy import Connection, delete, select, update

from portside.access import accounts as acc
from portside.access.audit import AuditEvent, events_since, record
from portside.access.policy import (
    SCOPE_FOR,
    SCOPE_GRANTS,
    Action,
    Actor,
    matches_only,
    quota_decision,
    scope_allows,
    usage_decision,
)
from portside.access.service import Access
from portside.clock import now
from portside.metadata.database import Database
from portside.metadata.schema import manifests, repositories, tags
from portside.packages import retention
from portside.packages.service import Conflict, Forbidden, NotFound, PackageError, Packages
from portside.registry import gc, immutable
from portside.registry.quotas import Quotas, Usage
from portside.registry.service import lock_repository

T = TypeVar("T")
MAX_BATCH = 100  # version ids in one batch deletion


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Collaborator:
    kind: str  # "user" or "team"
    name: str  # a user name, or a team's name within the package's organization
    role: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    deleted: list[int]
    failed: list[tuple[int, str]]  # (version id, why)


@dataclass(frozen=True, slots=True)
class OrgInfo:
    account: acc.Account
    role: str | None  # the actor's role in it, if a member


@dataclass(frozen=True, slots=True)
class OrgSettingsView:
    """What an organization's settings page shows its owners and site admins."""

    account: acc.Account
    role: str | None  # the actor's role in it; None for a site admin who is not a member
    members: list[tuple[str, str]]  # (user, role), by name
    teams: list[tuple[str, list[str]]]  # (team, members), by name


def _translated(exc: acc.AccessError) -> PackageError:
    if isinstance(exc, acc.NotFound):
        return NotFound(str(exc))
    if isinstance(exc, acc.Conflict):
        return Conflict(str(exc))
    return PackageError(str(exc))


class Management:
    def __init__(self, db: Database, access: Access, packages: Packages, quotas: Quotas | None = None) -> None:
        self.db = db
        self.access = access
        self.packages = packages
        self.quotas = quotas or Quotas(db, default_bytes=None, warning_ratio=0.9)

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await self.db.write(fn, *args, **kwargs)
        except acc.AccessError as exc:
            raise _translated(exc) from None

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self.db.read(fn, *args)
        except acc.AccessError as exc:
            raise _translated(exc) from None

    # -- who may: packages (the decision function) ---------------------------------------------

    async def _allow(self, actor: Actor, package: str, *actions: Action) -> None:
        """A package that does not exist, or that the actor may not see, is not found alike."""

        def exists(conn: Connection) -> bool:
            found = conn.execute(
                select(repositories.c.id).where(repositories.c.name == package, repositories.c.deleted_at.is_(None))
            ).first()
            return found is not None

        if not await self.db.read(exists):
            raise NotFound(f"package {package} not found")
        await self.packages.allow(actor, package, *actions)

    # -- who may: accounts ---------------------------------------------------------------------

    @staticmethod
    def _token_allows(actor: Actor, action: Action, what: str) -> None:
        """Account endpoints: reads need read:packages, changes write:packages, and a token limited
        to some packages (`only`) manages no accounts."""
        if not scope_allows(actor, action):
            raise Forbidden(f"your token lacks the {SCOPE_FOR[action]} scope needed to {what}; create a token with it")
        if actor.only is not None:
            raise Forbidden(
                f"your token is limited to {', '.join(actor.only)}, so it cannot be used to {what}; "
                "use a token without `only`"
            )

    def _site_admin(self, actor: Actor, action: Action, what: str) -> None:
        if not actor.site_admin:
            raise Forbidden(f"only site admins can {what}")
        self._token_allows(actor, action, what)

    async def _org_role(self, actor: Actor, org: str) -> str | None:
        members = await self._read(acc.org_members_of, org)  # also: the organization must exist
        return dict(members).get(actor.name or "")

    async def _org_owner(self, actor: Actor, org: str, what: str) -> None:
        role = await self._org_role(actor, org)
        if role != "owner" and not actor.site_admin:
            raise Forbidden(f"only owners of {org} and site admins can {what}")
        self._token_allows(actor, Action.MANAGE, what)

    async def _org_member(self, actor: Actor, org: str, what: str) -> None:
        role = await self._org_role(actor, org)
        if role is None and not actor.site_admin:
            raise Forbidden(f"only members of {org} and site admins can {what}")
        self._token_allows(actor, Action.PULL, what)

    # -- packages ------------------------------------------------------------------------------

    async def set_visibility(self, actor: Actor, package: str, visibility: str) -> None:
        await self._allow(actor, package, Action.PULL, Action.MANAGE)
        try:
            await self.db.write(acc.set_visibility, package, visibility, actor=actor.name or "-")
        except acc.NotFound as exc:
            raise NotFound(str(exc)) from None
        except acc.AccessError as exc:
            # The namespace's rules refuse it: internal in a user namespace, or the organization's policy.
            raise Forbidden(str(exc)) from None

    async def collaborators(self, actor: Actor, package: str) -> list[Collaborator]:
        await self._allow(actor, package, Action.PULL, Action.MANAGE)
        grants = await self._read(acc.grants_of, package)
        # Teams are the owning organization's: named without it, as in the collaborators/teams/{team} path.
        return [Collaborator(kind, name.rsplit("/", 1)[-1], role) for kind, name, role in grants]

    def _subject(self, package: str, kind: str, name: str) -> dict[str, str]:
        if kind == "user":
            return {"user": name}
        return {"team": f"{package.split('/', 1)[0]}/{name}"}

    async def _check_team_owner(self, package: str, kind: str) -> None:
        if kind != "team":
            return
        owner = await self.packages.owner(package.split("/", 1)[0])
        if owner.kind != "org":
            raise PackageError(
                f"teams can be granted only on organization packages; {package} belongs to the user {owner.login}"
            )

    async def set_collaborator(self, actor: Actor, package: str, kind: str, name: str, role: str) -> bool:
        """Give a user or a team of the owning organization a role; True when it had none before."""
        await self._allow(actor, package, Action.PULL, Action.MANAGE)
        await self._check_team_owner(package, kind)
        subject = self._subject(package, kind, name)

        def change(conn: Connection) -> bool:
            had = (kind, subject[kind]) in {(k, n) for k, n, _ in acc.grants_of(conn, package)}
            acc.grant(conn, package, role, actor=actor.name or "-", **subject)
            return not had

        return await self._write(change)

    async def remove_collaborator(self, actor: Actor, package: str, kind: str, name: str) -> None:
        await self._allow(actor, package, Action.PULL, Action.MANAGE)
        await self._check_team_owner(package, kind)
        await self._write(acc.revoke, package, actor=actor.name or "-", **self._subject(package, kind, name))

    async def untag(self, actor: Actor, package: str, tag: str) -> None:
        """Remove one tag; the version it pointed to stays (untagged, if that was its only tag)."""
        await self._allow(actor, package, Action.PULL, Action.DELETE)

        def change(conn: Connection) -> None:
            repository_id = conn.execute(
                select(repositories.c.id).where(repositories.c.name == package, repositories.c.deleted_at.is_(None))
            ).scalar()
            if repository_id is not None:
                lock_repository(conn, repository_id)  # before the tag, in a push's order
            removed = conn.execute(
                delete(tags).where(tags.c.repository_id == repository_id, tags.c.name == tag)
            ).rowcount
            if not removed:
                raise NotFound(f"tag {tag} not found in {package}")
            immutable.refuse_untag(conn, repository_id, tag)  # raising undoes the delete
            # Workers cache tag lists per tags_version: bump it, as every tag change does.
            conn.execute(
                update(repositories)
                .where(repositories.c.id == repository_id)
                .values(tags_version=repositories.c.tags_version + 1)
            )

        try:
            await self.db.write(change)
        except immutable.ImmutableTag as exc:
            raise Forbidden(exc.message) from None
        await self.access.audit(actor, "package.untag", package, "-", tag=tag)

    # -- immutable tags ------------------------------------------------------------------------

    async def _rules(self, write: bool, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            if write:
                return await self.db.write(fn, *args, **kwargs)
            return await self.db.read(functools.partial(fn, **kwargs), *args)
        except immutable.NotFound as exc:
            raise NotFound(str(exc)) from None

    async def immutable_tags(self, actor: Actor, package: str) -> immutable.Setting:
        """A package's immutable-tag patterns: its own, its owner's default, the effective ones.
        Whoever may pull it may read them (a pusher can tell which tags will not move)."""
        await self._allow(actor, package, Action.PULL)
        return await self._rules(False, immutable.package_setting, package)

    async def set_immutable_tags(self, actor: Actor, package: str, patterns: tuple[str, ...]) -> immutable.Setting:
        """Set a package's own patterns (they replace the owner's default); none clears them."""
        await self._allow(actor, package, Action.PULL, Action.MANAGE)
        return await self._rules(True, immutable.set_package_patterns, package, patterns, actor=actor.name or "-")

    async def _owner_rules_allowed(
        self, actor: Actor, owner: str, kind: str, change: bool, setting: str = "the immutable-tag default"
    ) -> None:
        what = f"{'change' if change else 'see'} {setting} of {owner}"
        if kind == "org":
            if change:
                await self._org_owner(actor, owner, what)
            else:
                await self._org_member(actor, owner, what)
            return
        await self._read(acc.get_account, owner, "user")
        if actor.name != owner and not actor.site_admin:
            raise Forbidden(f"only {owner} and site admins can {what}")
        self._token_allows(actor, Action.MANAGE if change else Action.PULL, what)

    async def owner_immutable_tags(self, actor: Actor, owner: str, kind: str) -> immutable.OwnerSetting:
        """The default patterns of a user's or an organization's packages: members (of an
        organization), the user themself, and site admins may read them."""
        await self._owner_rules_allowed(actor, owner, kind, change=False)
        return await self._rules(False, immutable.owner_setting, owner, kind=kind)

    async def set_owner_immutable_tags(
        self, actor: Actor, owner: str, kind: str, patterns: tuple[str, ...]
    ) -> immutable.OwnerSetting:
        """Set the default for every package of the owner: organization owners, the user themself,
        site admins."""
        await self._owner_rules_allowed(actor, owner, kind, change=True)
        return await self._rules(
            True, immutable.set_owner_patterns, owner, patterns, kind=kind, actor=actor.name or "-"
        )

    # -- retention -----------------------------------------------------------------------------

    async def retention(self, actor: Actor, package: str) -> retention.Setting:
        """A package's retention policy, its owner's default and the one that applies."""
        await self._allow(actor, package, Action.PULL)
        return await self._read(lambda conn: retention.setting(conn, _repository(conn, package)))

    async def set_retention(self, actor: Actor, package: str, policy: retention.Policy | None) -> retention.Setting:
        """Set (None: remove) a package's own policy; it replaces the owner's default."""
        await self._allow(actor, package, Action.PULL, Action.MANAGE)

        def change(conn: Connection) -> retention.Setting:
            repository_id = _repository(conn, package)
            retention.save(conn, repository_id=repository_id, owner_id=None, policy=policy, actor=actor.name or "-")
            detail = {"policy": policy.as_json() if policy else None}
            record(conn, actor.name or "-", "package.retention_set", package, detail)
            return retention.setting(conn, repository_id)

        return await self.db.write(change)

    async def owner_retention(self, actor: Actor, owner: str, kind: str) -> retention.Policy | None:
        await self._owner_rules_allowed(actor, owner, kind, False, "the retention default")
        account = await self._read(acc.get_account, owner, kind)
        return await self._read(retention.owner_policy, account.id)

    async def set_owner_retention(
        self, actor: Actor, owner: str, kind: str, policy: retention.Policy | None
    ) -> retention.Policy | None:
        """The default policy of every package of the owner that has none of its own."""
        await self._owner_rules_allowed(actor, owner, kind, True, "the retention default")
        account = await self._read(acc.get_account, owner, kind)

        def change(conn: Connection) -> retention.Policy | None:
            retention.save(conn, repository_id=None, owner_id=account.id, policy=policy, actor=actor.name or "-")
            detail = {"policy": policy.as_json() if policy else None}
            record(conn, actor.name or "-", f"{kind}.retention_set", owner, detail)
            return retention.owner_policy(conn, account.id)

        return await self.db.write(change)

    async def run_retention(self, actor: Actor, package: str, *, dry_run: bool) -> list[retention.Decision]:
        """What the package's policy deletes and keeps, with reasons; unless `dry_run`, delete it
        now (restorable for the restore window) and audit the run."""
        if dry_run:
            await self._allow(actor, package, Action.PULL)
        else:
            await self._allow(actor, package, Action.PULL, Action.DELETE)

        def change(conn: Connection) -> list[retention.Decision]:
            return run_policy(conn, _repository(conn, package), actor.name or "-", dry_run=dry_run, explicit=True)

        try:
            if dry_run:
                return await self._read(change)
            return await self.db.write(change)
        except immutable.ImmutableTag as exc:
            raise Forbidden(exc.message) from None

    async def scheduled_retention(self) -> int:
        """Every package's enabled policy, one package per transaction (a chore, once across a
        fleet); the number of versions deleted."""
        deleted = 0
        for repository_id in await self._read(retention.governed):

            def change(conn: Connection, repository_id: int = repository_id) -> int:
                policy = retention.setting(conn, repository_id).effective
                if policy is None or not policy.enabled:
                    return 0
                decisions = run_policy(conn, repository_id, "retention", dry_run=False, explicit=False)
                return sum(d.delete for d in decisions)

            try:
                deleted += await self.db.write(change)
            except (PackageError, immutable.ImmutableTag) as exc:  # one package's trouble stops no other
                log.warning("retention of package %d skipped: %s", repository_id, exc)
        if deleted:
            log.info("retention deleted %d versions (restorable for the restore window)", deleted)
        return deleted

    async def delete_versions(self, actor: Actor, package: str, ids: list[int], *, force: bool) -> BatchResult:
        """Delete many versions, each as `Packages.delete_version` does. A version that a live
        multi-platform index lists is tried again after the others, once that index may be gone."""
        await self._allow(actor, package, Action.PULL, Action.DELETE)
        deleted: list[int] = []
        pending = list(dict.fromkeys(ids))
        failed: dict[int, PackageError] = {}
        while pending:
            retry = []
            for version_id in pending:
                try:
                    await self.packages.delete_version(actor, package, version_id, force=force)
                except PackageError as exc:
                    failed[version_id] = exc
                    if isinstance(exc, Conflict):
                        retry.append(version_id)
                else:
                    failed.pop(version_id, None)
                    deleted.append(version_id)
            if len(retry) == len(pending):  # no progress: what is left stays refused
                break
            pending = retry
        order = {version_id: i for i, version_id in enumerate(dict.fromkeys(ids))}
        return BatchResult(
            deleted=deleted,
            failed=[(version_id, failed[version_id].message) for version_id in sorted(failed, key=order.__getitem__)],
        )

    async def purge_versions(self, actor: Actor, package: str, ids: list[int]) -> list[int]:
        """Delete versions (live or deleted) for good: no restore window. Their blobs go with the
        next garbage collection pass. The ids deleted, with the platform images and referrers that
        went with them (registry.gc.purge_manifests)."""
        await self._allow(actor, package, Action.PULL, Action.DELETE)

        def change(conn: Connection) -> list[int]:
            repository_id = _repository(conn, package)
            known = {
                int(row[0])
                for row in conn.execute(
                    select(manifests.c.id).where(manifests.c.repository_id == repository_id, manifests.c.id.in_(ids))
                )
            }
            if missing := [i for i in ids if i not in known]:
                raise NotFound(f"version {missing[0]} not found in {package}")
            purged = gc.purge_manifests(conn, repository_id, ids)
            record(conn, actor.name or "-", "package.purge_versions", package, {"versions": purged})
            return purged

        try:
            return await self.db.write(change)
        except immutable.ImmutableTag as exc:
            raise Forbidden(exc.message) from None

    async def purge_package(self, actor: Actor, package: str) -> int:
        """Delete a package for good with every version; the number of versions."""
        await self._allow(actor, package, Action.PULL, Action.DELETE)

        def change(conn: Connection) -> int:
            count = gc.purge_package(conn, _repository(conn, package))
            record(conn, actor.name or "-", "package.purge", package, {"versions": count})
            return count

        try:
            return await self.db.write(change)
        except immutable.ImmutableTag as exc:
            raise Forbidden(exc.message) from None

    # -- tokens --------------------------------------------------------------------------------

    async def tokens(self, actor: Actor, user: str | None = None) -> list[acc.TokenInfo]:
        """The actor's own tokens, or (site admins) another user's. Never their secrets."""
        if user is not None and user != actor.name:
            self._site_admin(actor, Action.PULL, f"list {user}'s tokens")
        return await self._read(acc.list_tokens, user or actor.name or "")

    @staticmethod
    def _within(actor: Actor, scopes: tuple[str, ...], only: tuple[str, ...] | None) -> str | None:
        """Why a token with these scopes and packages is beyond the actor's own token, or None."""
        if actor.scopes is not None:
            held = set().union(*(SCOPE_GRANTS.get(scope, set()) for scope in actor.scopes))
            beyond = [scope for scope in scopes if not SCOPE_GRANTS.get(scope, set()) <= held]
            if beyond:
                return (
                    f"your token has the scopes {', '.join(sorted(actor.scopes))} and cannot reach beyond them "
                    f"to {', '.join(beyond)}"
                )
        if actor.only is not None:
            if only is None:
                return f"your token is limited to {', '.join(actor.only)} and cannot reach every package"
            outside = [pattern for pattern in only if not matches_only(actor.only, pattern)]
            if outside:
                return f"your token is limited to {', '.join(actor.only)} and cannot reach {', '.join(outside)}"
        return None

    async def create_token(
        self,
        actor: Actor,
        *,
        scopes: tuple[str, ...],
        expires_in: timedelta | None,
        note: str,
        only: tuple[str, ...] | None,
    ) -> tuple[str, acc.TokenInfo]:
        """A new token for the actor; a token creates only tokens within its own scopes and packages."""
        beyond = self._within(actor, scopes, only)
        if beyond is not None:
            raise Forbidden(f"{beyond}; a token can only create tokens within its own scopes and packages")
        if actor.token_expires_at is not None:
            limit = actor.token_expires_at
            if expires_in is None or now() + expires_in > limit:
                raise Forbidden(
                    f"your token expires at {limit:%Y-%m-%d %H:%M} UTC and cannot create one that outlives it; "
                    "ask for a shorter expiry"
                )
        return await self._write(
            acc.create_token,
            actor.name or "",
            scopes,
            expires_in=expires_in,
            note=note,
            only=only,
            actor=actor.name or "-",
        )

    async def revoke_token(self, actor: Actor, token_id: int, user: str | None = None) -> None:
        """Revoke one of the actor's tokens (one within its own reach: itself, or a narrower one), or
        (site admins) any of another user's."""
        owner = user or actor.name or ""
        if user is not None and user != actor.name:
            self._site_admin(actor, Action.MANAGE, f"revoke {user}'s tokens")
            await self._read(acc.get_account, user, "user")
        try:
            info: acc.TokenInfo | None = await self.db.read(acc.get_token, token_id)
        except acc.NotFound:
            info = None
        if info is None or info.user != owner:
            raise NotFound(f"token {token_id} of {owner} not found")
        if owner == actor.name:
            beyond = self._within(actor, info.scopes, info.only)
            if beyond is not None:
                raise Forbidden(
                    f"{beyond}; revoke token {token_id} with a token that has its scopes and packages, or with itself"
                )
        await self._write(acc.revoke_token, token_id, actor=actor.name or "-")

    # -- users ---------------------------------------------------------------------------------

    async def users(self, actor: Actor) -> list[acc.Account]:
        self._site_admin(actor, Action.PULL, "list users")
        return await self._read(acc.list_accounts, "user")

    async def create_user(
        self, actor: Actor, name: str, *, site_admin: bool, password: str | None = None
    ) -> acc.Account:
        """A new user; without a password they sign in with tokens only."""
        self._site_admin(actor, Action.MANAGE, "create users")
        hashed = await self._hash(password) if password is not None else None

        def change(conn: Connection) -> acc.Account:
            user = acc.create_user(conn, name, admin=site_admin, actor=actor.name or "-")
            return acc.set_password(conn, name, hashed, actor=actor.name or "-") if hashed else user

        return await self._write(change)

    @staticmethod
    async def _hash(password: str) -> acc.PasswordHash:
        """argon2 takes tens of milliseconds of CPU: off the event loop and outside the write."""
        try:
            return await anyio.to_thread.run_sync(acc.hash_new_password, password)
        except acc.AccessError as exc:
            raise _translated(exc) from None

    async def set_password(self, actor: Actor, name: str, password: str | None) -> acc.Account:
        """Set (None: remove) a user's password; every browser signed in as them is signed out."""
        self._site_admin(actor, Action.MANAGE, "set passwords")
        hashed = await self._hash(password) if password is not None else None
        return await self._write(acc.set_password, name, hashed, actor=actor.name or "-")

    async def set_site_admin(self, actor: Actor, name: str, admin: bool) -> acc.Account:
        self._site_admin(actor, Action.MANAGE, "make or remove site admins")
        if name == actor.name and not admin:
            raise Conflict(
                f"you are signed in as {name} and cannot remove your own site admin role (you would lock yourself "
                "out); another site admin can"
            )
        return await self._write(acc.set_site_admin, name, admin, actor=actor.name or "-")

    async def set_disabled(self, actor: Actor, name: str, disabled: bool) -> acc.Account:
        """Disable a user (signed out at once, tokens refused) or enable them again."""
        self._site_admin(actor, Action.MANAGE, "disable or enable users")
        if name == actor.name and disabled:
            raise Conflict(
                f"you are signed in as {name} and cannot disable your own account (you would lock yourself out); "
                "another site admin can"
            )
        return await self._write(acc.set_disabled, name, disabled, actor=actor.name or "-")

    async def delete_user(self, actor: Actor, name: str) -> None:
        self._site_admin(actor, Action.MANAGE, "delete users")
        if name == actor.name:
            raise Conflict(f"you are signed in as {name}; another site admin can delete this account")
        await self._write(acc.delete_account, name, "user", actor=actor.name or "-")

    # -- organizations and teams ---------------------------------------------------------------

    async def orgs(self, actor: Actor) -> list[OrgInfo]:
        """Site admins see every organization; others those they belong to."""
        self._token_allows(actor, Action.PULL, "list organizations")

        def query(conn: Connection) -> list[OrgInfo]:
            mine = {account.name: OrgInfo(account, role) for account, role in acc.orgs_of(conn, actor.name or "")}
            if not actor.site_admin:
                return list(mine.values())
            return [mine.get(account.name, OrgInfo(account, None)) for account in acc.list_accounts(conn, "org")]

        return await self._read(query)

    async def create_org(self, actor: Actor, name: str) -> acc.Account:
        self._token_allows(actor, Action.MANAGE, "create organizations")
        return await self._write(acc.create_org, name, actor.name or "", actor=actor.name or "-")

    async def set_org(
        self, actor: Actor, org: str, *, registry_enabled: bool | None, allowed_visibilities: list[str] | None
    ) -> acc.Account:
        await self._org_owner(actor, org, f"change the settings of {org}")
        return await self._write(
            acc.set_org,
            org,
            registry_enabled=registry_enabled,
            allowed_visibilities=allowed_visibilities,
            actor=actor.name or "-",
        )

    async def members(self, actor: Actor, org: str) -> list[tuple[str, str]]:
        await self._org_member(actor, org, f"see the members of {org}")
        return await self._read(acc.org_members_of, org)

    @staticmethod
    def _keeps_an_owner(conn: Connection, org: str, user: str, new_role: str | None) -> dict[str, str]:
        """The members as they are; refuses to leave the organization without an owner."""
        members = dict(acc.org_members_of(conn, org))
        owners = [name for name, role in members.items() if role == "owner"]
        if owners == [user] and new_role != "owner":
            raise Conflict(f"{user} is the only owner of {org}; make another member an owner first")
        return members

    async def set_member(self, actor: Actor, org: str, user: str, role: str) -> bool:
        """Add a member or change a member's role; True when the user was not a member before."""
        await self._org_owner(actor, org, f"change the members of {org}")

        def change(conn: Connection) -> bool:
            before = self._keeps_an_owner(conn, org, user, role)
            acc.set_org_member(conn, org, user, role, actor=actor.name or "-")
            return user not in before

        return await self._write(change)

    async def remove_member(self, actor: Actor, org: str, user: str) -> None:
        await self._org_owner(actor, org, f"change the members of {org}")

        def change(conn: Connection) -> None:
            self._keeps_an_owner(conn, org, user, None)
            acc.remove_org_member(conn, org, user, actor=actor.name or "-")

        await self._write(change)

    async def org_settings(self, actor: Actor, org: str) -> OrgSettingsView:
        """Everything the settings page shows, for owners and site admins. Someone outside the
        organization is told it does not exist (as on github.com); a member, that only owners may."""
        role = await self._org_role(actor, org)
        if role is None and not actor.site_admin:
            raise NotFound(f"organization {org} does not exist")
        await self._org_owner(actor, org, f"change the settings of {org}")

        def query(conn: Connection) -> OrgSettingsView:
            account = acc.get_account(conn, org, "org")
            return OrgSettingsView(account, role, acc.org_members_of(conn, org), acc.teams_of(conn, org))

        return await self._read(query)

    async def teams(self, actor: Actor, org: str) -> list[tuple[str, list[str]]]:
        await self._org_member(actor, org, f"see the teams of {org}")
        return await self._read(acc.teams_of, org)

    async def create_team(self, actor: Actor, org: str, team: str) -> None:
        await self._org_owner(actor, org, f"create teams in {org}")
        await self._write(acc.create_team, org, team, actor=actor.name or "-")

    async def add_team_member(self, actor: Actor, org: str, team: str, user: str) -> bool:
        """Add an organization member to a team; True when the user was not in it before."""
        await self._org_owner(actor, org, f"change the teams of {org}")

        def change(conn: Connection) -> bool:
            found = dict(acc.teams_of(conn, org))
            if team not in found:
                raise acc.NotFound(f"team {org}/{team} does not exist")
            acc.get_account(conn, user, "user")
            if user not in dict(acc.org_members_of(conn, org)):
                raise acc.Conflict(f"{user} is not a member of {org}; add them to the organization first")
            acc.add_team_member(conn, org, team, user, actor=actor.name or "-")
            return user not in found[team]

        return await self._write(change)

    async def remove_team_member(self, actor: Actor, org: str, team: str, user: str) -> None:
        """Take a user out of a team; they stay a member of the organization."""
        await self._org_owner(actor, org, f"change the teams of {org}")
        await self._write(acc.remove_team_member, org, team, user, actor=actor.name or "-")

    # -- storage quotas ------------------------------------------------------------------------

    async def allow_storage_quota(self, actor: Actor, kind: str, name: str) -> None:
        """Refuse, unless the actor may set the owner's quota (site admins; an unknown owner is a 404)."""
        await self._read(acc.get_account, name, kind)
        decision = quota_decision(actor, kind, name)
        if not decision.allowed:
            raise Forbidden(decision.reason)
        self._token_allows(actor, Action.MANAGE, f"set the storage quota of {name}")

    async def set_storage_quota(self, actor: Actor, kind: str, name: str, quota: int | None) -> acc.Account:
        """Set a user's or organization's quota in bytes (None: the site's default): site admins only."""
        await self.allow_storage_quota(actor, kind, name)
        return await self._write(acc.set_storage_quota, name, kind, quota, actor=actor.name or "-")

    async def usage(self, actor: Actor, kind: str, name: str) -> Usage:
        """What the owner stores, its quota and each package's share."""
        account = await self._read(acc.get_account, name, kind)
        role = await self._org_role(actor, name) if kind == "org" else None
        decision = usage_decision(actor, kind, name, role)
        if not decision.allowed:
            raise Forbidden(decision.reason)
        self._token_allows(actor, Action.PULL, f"see the storage usage of {name}")
        return await self.db.read(self.quotas.usage, account.id)

    # -- audit ---------------------------------------------------------------------------------

    async def audit(self, actor: Actor, since: datetime) -> list[AuditEvent]:
        self._site_admin(actor, Action.PULL, "read the audit log")
        return await self._read(events_since, since)


def _repository(conn: Connection, package: str) -> int:
    found = gc.live_package(conn, package)
    if found is None:
        raise NotFound(f"package {package} not found")
    return found


def run_policy(
    conn: Connection, repository_id: int, actor: str, *, dry_run: bool, explicit: bool
) -> list[retention.Decision]:
    """Run the package's effective policy (a disabled one only when asked for by name, and then only
    as a preview); audited unless `dry_run`."""
    found = retention.setting(conn, repository_id)
    policy = found.effective
    if policy is None:
        raise NotFound(
            f"{found.package} has no retention policy; set one with PUT "
            f"/api/v3/portside/packages/{found.package}/retention (or a default for its owner)"
        )
    if not policy.enabled and not dry_run:
        raise Conflict(f"the retention policy of {found.package} is disabled; enable it to run it, or preview it")
    decisions = retention.apply(conn, repository_id, policy, dry_run=dry_run, at=now())
    if not dry_run:
        deleted = sum(d.delete for d in decisions)
        detail = {"deleted": deleted, "kept": len(decisions) - deleted, "scheduled": not explicit}
        record(conn, actor, "package.retention_run", found.package, detail)
    return decisions
