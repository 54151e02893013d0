"""Retention policies: which versions of a package a run deletes (the restorable way) and why.

The decision is a pure function of the package's live versions (`decide`), so that a preview and a
run agree and the table of cases in tests/unit/test_retention.py pins it. Correct by construction:

- a version is kept if *any* rule keeps it: a protected tag (whatever other tags it carries), an
  immutable tag, a pull within `keep_pulled_within_days`, being among the `keep_last_tagged` most
  recently tagged versions whose tags match `tag_pattern`, a tag that `tag_pattern` does not
  match, or being untagged for less than `delete_untagged_after_days`;
- the platform images of a kept index and the referrers (signatures, SBOMs, attestations) of a
  kept version are kept with it: they are never "untagged" victims;
- everything deleted is deleted as a person would: restorable for the restore window.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select

from portside.clock import now
from portside.metadata.schema import manifest_references, manifests, repositories, retention_policies, tags
from portside.registry import defaults, immutable
from portside.registry.immutable import InvalidPatterns
from portside.registry.immutable import validate as validate_patterns
from portside.registry.service import hide_manifest

FIELDS = (
    "enabled",
    "keep_last_tagged",
    "tag_pattern",
    "protected_tags",
    "delete_untagged_after_days",
    "keep_pulled_within_days",
)
EXAMPLE = (
    '{"enabled": true, "keep_last_tagged": 10, "tag_pattern": "*", "protected_tags": ["latest", "v*"], '
    '"delete_untagged_after_days": 7, "keep_pulled_within_days": 30}'
)


class InvalidPolicy(ValueError):
    """A policy body that cannot be a policy; the message says what to send."""


@dataclass(frozen=True)
class Policy:
    enabled: bool = True
    keep_last_tagged: int | None = None  # None: every tagged version is kept
    tag_pattern: str = "*"  # the tagged versions keep_last_tagged counts; others are kept
    protected_tags: tuple[str, ...] = ()
    delete_untagged_after_days: int | None = None  # None: untagged versions are kept
    keep_pulled_within_days: int | None = None

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["protected_tags"] = list(self.protected_tags)
        return body

    def dump(self) -> str:
        return json.dumps(self.as_json(), sort_keys=True)

    @classmethod
    def load(cls, stored: str) -> Policy:
        return parse(json.loads(stored))


def _days(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 36500:
        raise InvalidPolicy(f"{name} must be a whole number from 0 to 36500, or null; send {EXAMPLE}")
    return value


def parse(body: object) -> Policy:
    """A policy from a request body (every field optional, defaults as Policy's); InvalidPolicy
    names the first thing wrong."""
    if not isinstance(body, dict):
        raise InvalidPolicy(f"the body must be a JSON object like {EXAMPLE}")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InvalidPolicy(f"unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidPolicy("enabled must be true or false")
    keep = body.get("keep_last_tagged")
    if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or not 0 <= keep <= 100_000):
        raise InvalidPolicy(f"keep_last_tagged must be a whole number from 0 to 100000, or null; send {EXAMPLE}")
    pattern = body.get("tag_pattern", "*")
    protected = body.get("protected_tags", [])
    try:
        (pattern,) = validate_patterns([pattern]) if isinstance(pattern, str) else validate_patterns(pattern)
        protected = validate_patterns(protected) if protected else ()
    except (InvalidPatterns, ValueError) as error:
        raise InvalidPolicy(f"tag_pattern and protected_tags take tag patterns such as v*: {error}") from None
    return Policy(
        enabled=enabled,
        keep_last_tagged=keep,
        tag_pattern=pattern,
        protected_tags=tuple(protected),
        delete_untagged_after_days=_days(body, "delete_untagged_after_days"),
        keep_pulled_within_days=_days(body, "keep_pulled_within_days"),
    )


@dataclass
class Version:
    """What a decision needs to know about one live version."""

    id: int
    digest: str
    tags: list[str]
    created_at: datetime
    tagged_at: datetime | None = None  # when its newest tag was set
    last_pulled_at: datetime | None = None
    children: list[str] = field(default_factory=list)  # digests an index lists
    subject: str | None = None  # the digest a referrer refers to
    immutable: str | None = None  # a tag the package's immutable-tag rules hold, if any


@dataclass(frozen=True)
class Decision:
    id: int
    digest: str
    tags: tuple[str, ...]
    delete: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "digest": self.digest, "tags": list(self.tags), "reason": self.reason}


def _matches(tags: Iterable[str], patterns: Sequence[str]) -> str | None:
    for tag in sorted(tags):
        for pattern in patterns:
            if fnmatch.fnmatchcase(tag, pattern):
                return tag
    return None


def _own(policy: Policy, version: Version, rank: dict[int, int], at: datetime) -> tuple[bool, str]:
    """The version's decision by its own rules alone: (delete, reason)."""
    if (tag := _matches(version.tags, policy.protected_tags)) is not None:
        return False, f"tag {tag} is protected"
    if version.immutable is not None:
        return False, f"tag {version.immutable} is immutable"
    window = policy.keep_pulled_within_days
    if window is not None and version.last_pulled_at is not None and version.last_pulled_at >= at - timedelta(window):
        return False, f"pulled within the last {window} days"
    if version.tags:
        if _matches(version.tags, (policy.tag_pattern,)) is None:
            return False, f"its tags do not match {policy.tag_pattern}"
        if policy.keep_last_tagged is None:
            return False, "tagged (keep_last_tagged is not set)"
        place = rank[version.id]
        if place < policy.keep_last_tagged:
            return False, f"among the {policy.keep_last_tagged} most recently tagged matching {policy.tag_pattern}"
        return True, (
            f"tagged {', '.join(sorted(version.tags))}, older than the {policy.keep_last_tagged} most recently tagged "
            f"matching {policy.tag_pattern}"
        )
    days = policy.delete_untagged_after_days
    if days is None:
        return False, "untagged (delete_untagged_after_days is not set)"
    if version.created_at < at - timedelta(days):
        return True, f"untagged, pushed more than {days} days ago"
    return False, f"untagged, pushed within the last {days} days"


def decide(policy: Policy, versions: Sequence[Version], at: datetime) -> list[Decision]:
    """Keep or delete each live version, with the reason; in the order given."""
    by_digest = {v.digest: v for v in versions}
    counted = [v for v in versions if v.tags and _matches(v.tags, (policy.tag_pattern,)) is not None]
    counted.sort(key=lambda v: (v.tagged_at or v.created_at, v.id), reverse=True)
    rank = {v.id: place for place, v in enumerate(counted)}
    # Who depends on whom: an index's platform images and a version's referrers are kept with it.
    parents: dict[str, list[Version]] = {}
    for v in versions:
        for child in v.children:
            parents.setdefault(child, []).append(v)
        if v.subject is not None and v.subject in by_digest:
            parents.setdefault(v.digest, []).append(by_digest[v.subject])
    own = {v.id: _own(policy, v, rank, at) for v in versions}
    memo: dict[str, str | None] = {}

    def kept(v: Version, visiting: frozenset[str]) -> str | None:
        """Why `v` stays, or None if it goes."""
        if v.digest in memo:
            return memo[v.digest]
        delete, reason = own[v.id]
        # An untagged platform image or referrer has no life of its own: it follows what it belongs to.
        follows = v.digest in parents and not v.tags and reason.startswith("untagged")
        why = None if delete or follows else reason
        for parent in parents.get(v.digest, []) if why is None else []:
            if parent.digest not in visiting and kept(parent, visiting | {v.digest}) is not None:
                what = "a referrer of" if v.subject == parent.digest else "part of"
                why = f"{what} {parent.digest}, which is kept"
                break
        memo[v.digest] = why
        return why

    decisions = []
    for v in versions:
        why = kept(v, frozenset())
        if why is not None:
            decisions.append(Decision(v.id, v.digest, tuple(v.tags), False, why))
            continue
        delete, reason = own[v.id]
        if not delete:  # kept on its own only as an untagged dependant: it goes with what it belongs to
            reason = "goes with " + ", ".join(p.digest for p in parents[v.digest])
        decisions.append(Decision(v.id, v.digest, tuple(v.tags), True, reason))
    return decisions


# -- stored policies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    package: str
    own: Policy | None
    default: Policy | None
    owner_kind: str

    @property
    def effective(self) -> Policy | None:
        return self.own if self.own is not None else self.default

    @property
    def source(self) -> str:
        return "package" if self.own is not None else "owner" if self.default is not None else "none"

    def as_json(self) -> dict[str, Any]:
        effective = self.effective
        return {
            "package": self.package,
            "policy": self.own.as_json() if self.own else None,
            "owner_default": self.default.as_json() if self.default else None,
            "effective": effective.as_json() if effective else None,
            "effective_from": self.source,
        }


def _load(stored: str | None) -> Policy | None:
    return Policy.load(stored) if stored is not None else None


def setting(conn: Connection, repository_id: int) -> Setting:
    found = defaults.stored(conn, retention_policies, retention_policies.c.policy, repository_id)
    return Setting(found.package, _load(found.own), _load(found.default), found.owner_kind)


def save(
    conn: Connection, *, repository_id: int | None, owner_id: int | None, policy: Policy | None, actor: str
) -> None:
    """Store (or with None, remove) a package's policy or an owner's default."""
    subject = (
        retention_policies.c.repository_id == repository_id
        if repository_id is not None
        else retention_policies.c.owner_id == owner_id
    )
    conn.execute(delete(retention_policies).where(subject))
    if policy is not None:
        conn.execute(
            retention_policies.insert().values(
                repository_id=repository_id, owner_id=owner_id, policy=policy.dump(), updated_at=now(), updated_by=actor
            )
        )


def owner_policy(conn: Connection, owner_id: int) -> Policy | None:
    stored = conn.execute(select(retention_policies.c.policy).where(retention_policies.c.owner_id == owner_id)).scalar()
    return _load(stored)


def live_versions(conn: Connection, repository_id: int) -> list[Version]:
    """The package's live versions as `decide` sees them."""
    rows = conn.execute(
        select(
            manifests.c.id,
            manifests.c.digest,
            manifests.c.created_at,
            manifests.c.last_pulled_at,
            manifests.c.subject_digest,
        ).where(manifests.c.repository_id == repository_id, manifests.c.deleted_at.is_(None))
    ).all()
    versions = {int(r[0]): Version(int(r[0]), str(r[1]), [], r[2], None, r[3], [], r[4]) for r in rows}
    for manifest_id, name, tagged_at in conn.execute(
        select(tags.c.manifest_id, tags.c.name, tags.c.updated_at).where(tags.c.repository_id == repository_id)
    ):
        version = versions.get(int(manifest_id))
        if version is not None:
            version.tags.append(str(name))
            version.tagged_at = max(version.tagged_at or tagged_at, tagged_at)
    for manifest_id, child in conn.execute(
        select(manifest_references.c.manifest_id, manifest_references.c.digest).where(
            manifest_references.c.manifest_id.in_(list(versions)), manifest_references.c.kind == "manifest"
        )
    ):
        versions[int(manifest_id)].children.append(str(child))
    rules = immutable.package_rules(conn, repository_id)
    for version in versions.values():
        version.tags.sort()
        version.immutable = next((t for t in version.tags if immutable.matching(rules, t) is not None), None)
    return sorted(versions.values(), key=lambda v: v.id)


def apply(conn: Connection, repository_id: int, policy: Policy, *, dry_run: bool, at: datetime) -> list[Decision]:
    """Decide, and unless `dry_run` delete what goes, the restorable way (hide_manifest)."""
    decisions = decide(policy, live_versions(conn, repository_id), at)
    if not dry_run:
        versions = {v.id: v for v in live_versions(conn, repository_id)}
        for decision in decisions:
            if decision.delete:
                hide_manifest(conn, repository_id, decision.id, versions[decision.id].tags)
    return decisions


def governed(conn: Connection) -> list[int]:
    """The live packages that have a policy of their own or an owner's default (enabled or not)."""
    own = select(retention_policies.c.repository_id).where(retention_policies.c.repository_id.is_not(None))
    owners = select(retention_policies.c.owner_id).where(retention_policies.c.owner_id.is_not(None))
    rows = conn.execute(
        select(repositories.c.id)
        .where(repositories.c.deleted_at.is_(None))
        .where(repositories.c.id.in_(own) | repositories.c.owner_id.in_(owners))
        .order_by(repositories.c.id)
    )
    return [int(row[0]) for row in rows]
