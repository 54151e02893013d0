"""Immutable tags: patterns on tag names whose tags, once they exist, never move nor go away.

A package may have patterns of its own; a user or an organization may set default patterns for
every package it owns. The package's own patterns, when set, replace the owner's. A tag that
matches the effective patterns (`fnmatch.fnmatchcase`: shell-style, case-sensitive) may be pushed
again with the digest it has (an idempotent re-push) and not with another one; the tag cannot be
removed, and neither can the version it points to (nor the package that holds it).

The checks run inside the transaction that makes the change (`Registry._store_manifest`,
`hide_manifest`, the untag paths), so two pushes cannot both pass them. Plain functions on a
connection, as `portside.access.accounts`: the command line and the HTTP surfaces share them.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection, delete, select

from portside.access.audit import record
from portside.clock import now
from portside.metadata.schema import accounts, immutable_tags, manifests, repositories, tags
from portside.registry import defaults
from portside.registry.errors import RegistryError

MAX_PATTERNS = 50
MAX_PATTERN_LENGTH = 128  # as long as the longest tag
PATTERN_RE = re.compile(r"[A-Za-z0-9_.\-*?\[\]]+")
API = "/api/v3/portside"


class ImmutableTag(RegistryError):
    """A change refused because it would move or remove an immutable tag (DENIED on the registry)."""

    code, status = "DENIED", 403


class InvalidPatterns(ValueError):
    """A pattern list that cannot be saved; the message names the bad pattern."""


class NotFound(LookupError):
    pass


def validate(patterns: object) -> tuple[str, ...]:
    """The patterns to save, in order, without repeats; [] clears."""
    if not isinstance(patterns, list | tuple):
        raise InvalidPatterns('patterns must be a list of strings, such as ["v*", "release-*"] ([] clears)')
    if len(patterns) > MAX_PATTERNS:
        raise InvalidPatterns(f"at most {MAX_PATTERNS} patterns, not {len(patterns)}")
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise InvalidPatterns(f"pattern {json.dumps(pattern)} is not a string")
        if not 1 <= len(pattern) <= MAX_PATTERN_LENGTH:
            raise InvalidPatterns(
                f"pattern {json.dumps(pattern[:40])} is {len(pattern)} characters long; use 1 to {MAX_PATTERN_LENGTH}"
            )
        if not PATTERN_RE.fullmatch(pattern):
            raise InvalidPatterns(
                f"pattern {json.dumps(pattern)} has a character a tag cannot have; use letters, digits, _ . - "
                "and the wildcards * ? [...]"
            )
        if pattern.count("[") != pattern.count("]"):
            raise InvalidPatterns(f"pattern {json.dumps(pattern)} has an unclosed [ or a stray ]")
    return tuple(dict.fromkeys(patterns))


@lru_cache(maxsize=1024)
def parse(stored: str | None) -> tuple[str, ...] | None:
    """A stored JSON list (the hot path parses the same few lists again and again)."""
    return tuple(json.loads(stored)) if stored is not None else None


def matching(patterns: tuple[str, ...] | None, tag: str) -> str | None:
    """The first pattern the tag matches, None when it matches none."""
    for pattern in patterns or ():
        if fnmatch.fnmatchcase(tag, pattern):
            return pattern
    return None


@dataclass(frozen=True, slots=True)
class Setting:
    package: str  # OWNER/NAME
    own: tuple[str, ...] | None  # the package's own patterns; None when not set
    default: tuple[str, ...] | None  # the owner's default; None when not set
    owner_kind: str  # "user" or "org"

    @property
    def owner(self) -> str:
        return self.package.split("/", 1)[0]

    @property
    def effective(self) -> tuple[str, ...]:
        return self.own if self.own is not None else (self.default or ())

    @property
    def source(self) -> str | None:
        """Where the effective patterns come from: "package", "owner" or None (no rule)."""
        if self.own is not None:
            return "package"
        return "owner" if self.default else None


@dataclass(frozen=True, slots=True)
class OwnerSetting:
    owner: str
    kind: str  # "user" or "org"
    patterns: tuple[str, ...]  # () when not set


def _setting(conn: Connection, repository_id: int) -> Setting:
    found = defaults.stored(conn, immutable_tags, immutable_tags.c.patterns, repository_id)
    return Setting(found.package, parse(found.own), parse(found.default), found.owner_kind)


def package_rules(conn: Connection, repository_id: int) -> tuple[str, ...]:
    """The patterns that hold the package's tags (its own, else its owner's default)."""
    return _setting(conn, repository_id).effective


def _live_package(conn: Connection, package: str) -> int:
    found = conn.execute(
        select(repositories.c.id).where(repositories.c.name == package, repositories.c.deleted_at.is_(None))
    ).scalar()
    if found is None:
        raise NotFound(f"package {package} not found")
    return int(found)


def _owner(conn: Connection, name: str, kind: str | None = None) -> tuple[int, str]:
    row = conn.execute(select(accounts.c.id, accounts.c.kind).where(accounts.c.name == name)).first()
    if row is None or (kind is not None and row.kind != kind):
        raise NotFound(
            f"{'organization' if kind == 'org' else 'user' if kind == 'user' else 'account'} {name} not found"
        )
    return int(row.id), str(row.kind)


# -- settings --------------------------------------------------------------------------------------


def package_setting(conn: Connection, package: str) -> Setting:
    return _setting(conn, _live_package(conn, package))


def owner_setting(conn: Connection, owner: str, kind: str | None = None) -> OwnerSetting:
    owner_id, found_kind = _owner(conn, owner, kind)
    stored = conn.execute(select(immutable_tags.c.patterns).where(immutable_tags.c.owner_id == owner_id)).scalar()
    return OwnerSetting(owner, found_kind, parse(stored) or ())


def _save(conn: Connection, column: str, subject_id: int, patterns: tuple[str, ...], actor: str) -> None:
    match = immutable_tags.c[column] == subject_id
    conn.execute(delete(immutable_tags).where(match))
    if patterns:
        conn.execute(
            immutable_tags.insert().values(
                {column: subject_id, "patterns": json.dumps(list(patterns)), "updated_at": now(), "updated_by": actor}
            )
        )


def set_package_patterns(conn: Connection, package: str, patterns: tuple[str, ...], *, actor: str = "cli") -> Setting:
    """Set (or, with no patterns, clear) a package's own patterns; audited."""
    repository_id = _live_package(conn, package)
    _save(conn, "repository_id", repository_id, patterns, actor)
    record(conn, actor, "package.immutable_tags", package, {"patterns": list(patterns)})
    return _setting(conn, repository_id)


def set_owner_patterns(
    conn: Connection, owner: str, patterns: tuple[str, ...], *, kind: str | None = None, actor: str = "cli"
) -> OwnerSetting:
    """Set (or clear) the default patterns of every package of a user or an organization; audited."""
    owner_id, found_kind = _owner(conn, owner, kind)
    _save(conn, "owner_id", owner_id, patterns, actor)
    record(conn, actor, f"{found_kind}.immutable_tags", owner, {"patterns": list(patterns)})
    return OwnerSetting(owner, found_kind, patterns)


# -- enforcement -----------------------------------------------------------------------------------


def refusal(setting: Setting, pattern: str, subject: str, consequence: str) -> ImmutableTag:
    """The DENIED that names the rule, where it is set and how to change it."""
    package, owner = setting.package, setting.owner
    package_url = f"PUT {API}/packages/{package}/immutable-tags"
    if setting.source == "package":
        where = f"set on package {package}"
        advice = f"ask a package admin to change the rule: {package_url}"
    else:
        where = f"set for every package of {owner}"
        if setting.owner_kind == "org":
            who, owner_url = f"an owner of {owner}", f"PUT {API}/orgs/{owner}/immutable-tags"
        else:
            who, owner_url = owner, f"PUT {API}/users/{owner}/immutable-tags"
        advice = (
            f"ask {who} to change the rule: {owner_url} (or a package admin to replace it for {package}: {package_url})"
        )
    message = f'{subject} is immutable (rule "{pattern}" {where}); {consequence}{advice}'
    return ImmutableTag(message, detail={"package": package, "pattern": pattern, "rule": setting.source})


def _first_immutable(conn: Connection, repository_id: int, tag_names: list[str]) -> tuple[Setting, str, str] | None:
    """The package's setting, and the first of these tags that it makes immutable with its pattern."""
    if not tag_names:
        return None
    setting = _setting(conn, repository_id)
    for tag in sorted(tag_names):
        pattern = matching(setting.effective, tag)
        if pattern is not None:
            return setting, tag, pattern
    return None


def refuse_untag(conn: Connection, repository_id: int, tag: str) -> None:
    found = _first_immutable(conn, repository_id, [tag])
    if found is not None:
        setting, tag, pattern = found
        raise refusal(setting, pattern, f"tag {tag} of {setting.package}", "it cannot be removed; ")


def refuse_version_deletion(conn: Connection, repository_id: int, manifest_id: int, tag_names: list[str]) -> None:
    found = _first_immutable(conn, repository_id, tag_names)
    if found is not None:
        setting, tag, pattern = found
        digest = conn.execute(select(manifests.c.digest).where(manifests.c.id == manifest_id)).scalar()
        consequence = f"version {digest}, which it points to, cannot be deleted; "
        raise refusal(setting, pattern, f"tag {tag} of {setting.package}", consequence)


def refuse_package_deletion(conn: Connection, repository_id: int) -> None:
    names = list(conn.execute(select(tags.c.name).where(tags.c.repository_id == repository_id)).scalars())
    found = _first_immutable(conn, repository_id, names)
    if found is not None:
        setting, tag, pattern = found
        consequence = "the package cannot be deleted while it has the tag; "
        raise refusal(setting, pattern, f"tag {tag} of {setting.package}", consequence)


def refuse_push(conn: Connection, repository_id: int, tag: str, pattern: str) -> ImmutableTag:
    """The refusal of a push that would move `tag` (which matches `pattern`) to another digest."""
    setting = _setting(conn, repository_id)
    return refusal(setting, pattern, f"tag {tag} of {setting.package}", "push a new tag, or ")
