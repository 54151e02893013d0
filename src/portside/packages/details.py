"""What a version's page shows beyond its row: platforms, layers, the image configuration, referrers.

Read from the manifest as stored, the config blob (through the store's small-blob reader) and the
database. The referrers tree costs two queries per level however many referrers there are: each
manifest's newest referrers are read through the subject index (a bounded number each, so a version
signed thousands of times stays fast), grouped by kind, and a bounded number shown. Nothing here
knows about HTTP or decides access: the caller has checked that the viewer may read the package.
Nothing here raises on content: a manifest or config that is not what it claims is described.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, func, select

from portside.blobs.store import BlobStore
from portside.faults import Unavailable
from portside.metadata.database import Database
from portside.metadata.schema import manifests
from portside.packages.service import VersionInfo
from portside.registry.errors import DigestInvalid
from portside.registry.manifests import CONFIG_TYPES, INDEX_TYPES
from portside.registry.references import Digest
from portside.registry.service import MAX_CONFIG, blob_location

EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
REFERRER_DEPTH = 3  # levels of the tree; below that, referrers are counted and shown on their own page
PER_GROUP = 20  # referrers shown per manifest and kind, newest first
MAX_REFERRERS = 150  # referrers shown on one page, whatever the tree's shape
SCAN_ROOT = 500  # the version's own referrers read and grouped, newest first
SCAN_NODE = 100  # a referrer's referrers read; more are on its own page
COUNT_LIMIT = 10_000  # the version's referrers counted beyond SCAN_ROOT; more is "10,000+"
MAX_PLATFORMS = 200  # an index's entries shown; a manifest of a few MiB could list tens of thousands

# What a referrer is, by the start of its artifactType (a format's next version lands in the same
# group). Images without artifactType are stored with their config's media type, so cosign's
# simple-signing config counts as a signature too.
KINDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "signature",
        "Signatures",
        (
            "application/vnd.dev.cosign.artifact.sig.",
            "application/vnd.dev.cosign.simplesigning.",
            "application/vnd.dev.sigstore.bundle",
            "application/vnd.cncf.notary.signature",
        ),
    ),
    (
        "sbom",
        "SBOMs",
        (
            "application/vnd.dev.cosign.artifact.sbom.",
            "application/spdx",
            "text/spdx",
            "application/vnd.cyclonedx",
            "application/vnd.syft",
        ),
    ),
    (
        "attestation",
        "Attestations",
        (
            "application/vnd.dev.cosign.artifact.att.",
            "application/vnd.in-toto",
            "application/vnd.dsse.envelope",
        ),
    ),
)
_LABELS = {kind: label for kind, label, _ in KINDS}
_ORDER = {kind: i for i, (kind, _, _) in enumerate(KINDS)}

Kind = Literal["image", "index", "artifact", "unknown"]
# Why no configuration is shown: an artifact's empty config, a config that is not an image's, a
# blob gone from the store, one over MAX_CONFIG, one that is not a JSON object.
ConfigProblem = Literal["empty", "not_image", "missing", "too_large", "invalid"]


@dataclass(frozen=True, slots=True)
class Platform:
    digest: str
    media_type: str
    size: int | None
    platform: str | None  # os/architecture[/variant], and the OS version when given
    version_id: int | None  # its version page, when it is a live version of the same package
    attests: str | None  # buildx's attestation manifests: the digest of the image they describe


@dataclass(frozen=True, slots=True)
class Blob:
    digest: str
    media_type: str
    size: int | None
    title: str | None  # org.opencontainers.image.title: an artifact's file name


@dataclass(frozen=True, slots=True)
class Step:
    created: str | None
    created_by: str | None
    empty_layer: bool
    comment: str | None


@dataclass(frozen=True, slots=True)
class ImageConfig:
    entrypoint: list[str] | None
    cmd: list[str] | None
    env: list[str]
    exposed_ports: list[str]
    labels: list[tuple[str, str]]
    user: str | None
    working_dir: str | None
    created: str | None
    history: list[Step]


@dataclass(slots=True)
class Referrers:
    """What refers to one manifest: the newest, grouped by kind, and how many there are."""

    groups: list[ReferrerGroup] = field(default_factory=list)
    count: int = 0  # how many refer to it, as far as they were read or counted
    at_least: bool = False  # more than `count` refer to it: a limit stopped the reading

    @property
    def grouped(self) -> int:
        return sum(group.total for group in self.groups)

    @property
    def shown(self) -> int:
        return sum(len(group.items) for group in self.groups)


@dataclass(slots=True)
class Referrer:
    version_id: int
    digest: str
    media_type: str
    artifact_type: str | None
    size: int
    created_at: datetime
    referrers: Referrers = field(default_factory=Referrers)


@dataclass(slots=True)
class ReferrerGroup:
    kind: str  # "signature", "sbom", "attestation" or "other"
    artifact_type: str | None  # for "other": the type they share
    total: int = 0  # how many of those read are of this kind
    items: list[Referrer] = field(default_factory=list)

    @property
    def label(self) -> str:
        return _LABELS.get(self.kind) or self.artifact_type or "Artifacts without a type"

    @property
    def more(self) -> int:
        return self.total - len(self.items)


@dataclass(frozen=True, slots=True)
class Linked:
    digest: str
    version_id: int | None  # None: not a live version of this package


@dataclass(slots=True)
class Details:
    kind: Kind
    artifact_type: str | None
    subject: Linked | None  # what this manifest refers to, when it is a referrer
    platforms: list[Platform]
    more_platforms: int
    layers: list[Blob]
    config_blob: Blob | None
    config: ImageConfig | None
    config_problem: ConfigProblem | None
    referrers: Referrers

    @property
    def layers_size(self) -> int:
        return sum(layer.size or 0 for layer in self.layers)


class VersionDetails:
    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store

    async def details(self, package_id: int, version: VersionInfo, payload: bytes) -> Details:
        """Everything the version page shows about `version` of the package `package_id`, from its
        stored manifest `payload`. The caller has checked that the viewer may read the package."""
        doc = _json_object(payload) or {}
        children = _list(doc.get("manifests")) if version.media_type in INDEX_TYPES else []
        entries = [entry for entry in (_platform(child) for child in children[:MAX_PLATFORMS]) if entry is not None]
        config_blob = _blob(doc.get("config"))
        layers = [blob for blob in map(_blob, _list(doc.get("layers"))) if blob is not None]
        artifact_type = _text(doc.get("artifactType"))
        if version.media_type in INDEX_TYPES:
            kind: Kind = "index"
        elif config_blob is None:
            kind = "unknown"
        elif artifact_type or config_blob.media_type not in CONFIG_TYPES:
            kind = "artifact"
            artifact_type = artifact_type or config_blob.media_type
        else:
            kind = "image"
        config, problem = await self._config(config_blob) if config_blob is not None else (None, None)
        subject = _text(_dict(doc.get("subject")).get("digest"))

        linked = [entry.digest for entry in entries] + ([subject] if subject else [])
        ids, referrers = await self.db.read(_read, package_id, version.digest, linked)
        return Details(
            kind=kind,
            artifact_type=artifact_type,
            subject=Linked(subject, ids.get(subject)) if subject else None,
            platforms=[replace(entry, version_id=ids.get(entry.digest)) for entry in entries],
            more_platforms=max(0, len(children) - MAX_PLATFORMS),
            layers=layers,
            config_blob=config_blob,
            config=config,
            config_problem=problem,
            referrers=referrers,
        )

    async def _config(self, blob: Blob) -> tuple[ImageConfig | None, ConfigProblem | None]:
        if blob.media_type == EMPTY_CONFIG:
            return None, "empty"
        if blob.media_type not in CONFIG_TYPES:
            return None, "not_image"
        try:
            Digest.parse(blob.digest)  # validated at push; checked again before it names a file
        except DigestInvalid:
            return None, "missing"
        try:
            # At most 1 MiB, read by the store off the event loop.
            location = await self.db.read(blob_location, blob.digest)
            raw = await self.store.read_small(blob.digest, MAX_CONFIG, location=location)
            if raw is None:
                missing = await self.store.size(blob.digest, location=location) is None
                return None, "missing" if missing else "too_large"
        except (OSError, Unavailable):
            return None, "missing"
        config = _json_object(raw)
        return (_image_config(config), None) if config is not None else (None, "invalid")


# -- the manifest and the config, read defensively ------------------------------------------------


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _size(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _strings(value: object) -> list[str] | None:
    """A list of strings (Entrypoint, Cmd, Env), or None when it is anything else."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def _blob(value: object) -> Blob | None:
    descriptor = _dict(value)
    digest, media_type = _text(descriptor.get("digest")), _text(descriptor.get("mediaType"))
    if digest is None or media_type is None:
        return None
    title = _text(_dict(descriptor.get("annotations")).get("org.opencontainers.image.title"))
    return Blob(digest, media_type, _size(descriptor.get("size")), title)


def _platform(value: object) -> Platform | None:
    descriptor = _dict(value)
    digest = _text(descriptor.get("digest"))
    if digest is None:
        return None
    platform = _dict(descriptor.get("platform"))
    parts = [_text(platform.get(key)) for key in ("os", "architecture", "variant")]
    name = "/".join(part for part in parts if part) or None
    os_version = _text(platform.get("os.version"))
    if name and os_version:
        name = f"{name} ({os_version})"
    annotations = _dict(descriptor.get("annotations"))
    attests = (
        _text(annotations.get("vnd.docker.reference.digest"))
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest"
        else None
    )
    return Platform(
        digest, _text(descriptor.get("mediaType")) or "", _size(descriptor.get("size")), name, None, attests
    )


def _image_config(doc: dict[str, Any]) -> ImageConfig:
    inner = _dict(doc.get("config"))
    labels = _dict(inner.get("Labels"))
    steps = [_dict(step) for step in _list(doc.get("history"))]
    return ImageConfig(
        entrypoint=_strings(inner.get("Entrypoint")),
        cmd=_strings(inner.get("Cmd")),
        env=_strings(inner.get("Env")) or [],
        exposed_ports=sorted(str(port) for port in _dict(inner.get("ExposedPorts"))),
        labels=sorted((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in labels.items()),
        user=_text(inner.get("User")),
        working_dir=_text(inner.get("WorkingDir")),
        created=_text(doc.get("created")),
        history=[
            Step(
                created=_text(step.get("created")),
                created_by=_text(step.get("created_by")),
                empty_layer=step.get("empty_layer") is True,
                comment=_text(step.get("comment")),
            )
            for step in steps
        ],
    )


# -- the database: linked versions and the referrers tree ------------------------------------------


@functools.lru_cache(maxsize=1024)  # artifact types are few, but pushed by anyone: bounded
def _kind(artifact_type: str | None) -> str:
    if artifact_type:
        for kind, _, prefixes in KINDS:
            if artifact_type.startswith(prefixes):
                return kind
    return "other"


# The statements, built once: building them (the aliases above all) would cost more than running them.
_subject, _referrer = manifests.alias("subject"), manifests.alias("referrer")
_PACKAGE = bindparam("package_id")
_LINKED = select(manifests.c.digest, manifests.c.id).where(
    manifests.c.repository_id == _PACKAGE,
    manifests.c.digest.in_(bindparam("digests", expanding=True)),
    manifests.c.deleted_at.is_(None),
)
# Each subject's newest live referrers, newest first: the correlated subquery walks the
# (repository, subject) index backwards for each subject, so one with thousands of referrers costs
# no more rows than the limit.
_SCAN = (
    select(_subject.c.digest.label("subject"), manifests.c.id, manifests.c.artifact_type)
    .select_from(
        _subject.join(
            manifests,
            manifests.c.id.in_(
                select(_referrer.c.id)
                .where(
                    _referrer.c.repository_id == _PACKAGE,
                    _referrer.c.subject_digest == _subject.c.digest,
                    _referrer.c.deleted_at.is_(None),
                )
                .order_by(_referrer.c.id.desc())
                .limit(bindparam("scan"))
            ),
        )
    )
    .where(_subject.c.repository_id == _PACKAGE, _subject.c.digest.in_(bindparam("subjects", expanding=True)))
    .order_by(manifests.c.id.desc())
)
_COUNT = select(func.count()).select_from(
    select(manifests.c.id)
    .where(
        manifests.c.repository_id == _PACKAGE,
        manifests.c.subject_digest == bindparam("digest"),
        manifests.c.deleted_at.is_(None),
    )
    .limit(bindparam("scan"))
    .subquery()
)
_ROWS = (
    select(
        manifests.c.id,
        manifests.c.digest,
        manifests.c.media_type,
        manifests.c.artifact_type,
        manifests.c.size,
        manifests.c.created_at,
        manifests.c.subject_digest,
    )
    .where(manifests.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(manifests.c.id.desc())
)


def _read(conn: Connection, package_id: int, digest: str, linked: list[str]) -> tuple[dict[str, int], Referrers]:
    ids: dict[str, int] = {}
    if linked:
        rows = conn.execute(_LINKED, {"package_id": package_id, "digests": linked})
        ids = {found: version_id for found, version_id in rows}
    return ids, _referrers(conn, package_id, digest)


def _referrers(conn: Connection, package_id: int, digest: str) -> Referrers:
    """The tree of live referrers under `digest`, level by level: read each manifest's newest
    referrers (one query), choose those to show within the limits, read their rows (one query)."""
    root = Referrers()
    level = {digest: root}  # the manifests whose referrers are read next, by digest
    budget = MAX_REFERRERS
    for depth in range(REFERRER_DEPTH + 1):
        limit = SCAN_ROOT if depth == 0 else SCAN_NODE
        found: dict[str, list[Any]] = {}
        scanned = conn.execute(_SCAN, {"package_id": package_id, "subjects": list(level), "scan": limit + 1}).all()
        for row in scanned:
            found.setdefault(row.subject, []).append(row)
        for subject, rows in found.items():
            level[subject].count, level[subject].at_least = min(len(rows), limit), len(rows) > limit
        if depth == 0 and root.at_least:
            counted = conn.execute(_COUNT, {"package_id": package_id, "digest": digest, "scan": COUNT_LIMIT + 1})
            total = int(counted.scalar_one())
            root.count, root.at_least = min(total, COUNT_LIMIT), total > COUNT_LIMIT
        if depth == REFERRER_DEPTH or budget <= 0 or not found:
            break  # what is below is counted, and shown on the pages of these referrers
        chosen = _choose(level, found, limit, budget)
        budget -= len(chosen)
        level = _fill(conn, level, chosen)
    return root


def _choose(level: dict[str, Referrers], found: dict[str, list[Any]], limit: int, budget: int) -> list[int]:
    """Group what was read under each subject by kind, and pick the ids to show: every group's
    newest before any group's next, up to PER_GROUP a group and `budget` in all."""
    ranked: list[tuple[int, int]] = []  # (rank in its group, -id)
    for subject, rows in found.items():
        groups: dict[tuple[str, str | None], ReferrerGroup] = {}
        for row in rows[:limit]:
            kind = _kind(row.artifact_type)
            key = (kind, row.artifact_type if kind == "other" else None)
            group = groups.get(key)
            if group is None:
                group = groups[key] = ReferrerGroup(*key)
            if group.total < PER_GROUP:
                ranked.append((group.total, -row.id))
            group.total += 1
        level[subject].groups = sorted(
            groups.values(), key=lambda g: (_ORDER.get(g.kind, len(_ORDER)), g.artifact_type or "")
        )
    return [-negative for _, negative in sorted(ranked)[:budget]]


def _fill(conn: Connection, level: dict[str, Referrers], chosen: list[int]) -> dict[str, Referrers]:
    """Read the chosen referrers' rows and hang them in their groups, newest first; their own
    referrers are the next level."""
    if not chosen:
        return {}
    following: dict[str, Referrers] = {}
    for row in conn.execute(_ROWS, {"ids": chosen}).all():
        kind = _kind(row.artifact_type)
        other = row.artifact_type if kind == "other" else None
        group = next(g for g in level[row.subject_digest].groups if (g.kind, g.artifact_type) == (kind, other))
        node = Referrer(row.id, row.digest, row.media_type, row.artifact_type, int(row.size), row.created_at)
        group.items.append(node)
        following[row.digest] = node.referrers
    return following
