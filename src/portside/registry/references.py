"""The spec's grammar for repository names, tags and digests, with messages that name the bad part."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from portside.registry.errors import DigestInvalid, ManifestInvalid, ManifestUnknown, NameInvalid

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(_COMPONENT)
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
MAX_NAME_LENGTH = 255

ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")


def validate_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid(f"repository name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if not NAME_RE.fullmatch(name):
        bad = next(component for component in name.split("/") if not _COMPONENT_RE.fullmatch(component))
        raise NameInvalid(f"invalid repository name {name!r}: {_component_problem(bad)}", detail={"name": name})
    return name


def _component_problem(component: str) -> str:
    if not component:
        return "it has an empty path component (a leading, trailing or doubled '/')"
    if component.lower() != component:
        return f"path component {component!r} has uppercase letters; names must be lowercase"
    return f"path component {component!r} must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*"


def is_tag(reference: str) -> bool:
    return TAG_RE.fullmatch(reference) is not None


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, value: str) -> Digest:
        match = _DIGEST_RE.fullmatch(value)
        if not match:
            raise DigestInvalid(
                f"invalid digest {value!r}: expected algorithm:hex, e.g. sha256:<64 hex digits>",
                detail={"digest": value},
            )
        algorithm, encoded = match.groups()
        length = ALGORITHMS.get(algorithm)
        if length is None:
            raise DigestInvalid(
                f"unsupported digest algorithm {algorithm!r} in {value!r}; use sha256 or sha512",
                detail={"digest": value},
            )
        if len(encoded) != length or not re.fullmatch(r"[a-f0-9]+", encoded):
            raise DigestInvalid(
                f"invalid {algorithm} digest {value!r}: expected {length} lowercase hex digits",
                detail={"digest": value},
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def parse_reference(reference: str) -> str | Digest:
    """A manifest reference to write: a tag or a digest, and nothing else (400 naming the bad part)."""
    if ":" in reference:
        return Digest.parse(reference)
    if is_tag(reference):
        return reference
    raise ManifestInvalid(_not_a_tag(reference), detail={"reference": reference})


def lookup_reference(reference: str) -> str | Digest:
    """A manifest reference to read or delete: one that cannot be a tag names nothing, so it is
    MANIFEST_UNKNOWN (404), as the conformance suite and every client expect; a malformed digest
    stays DIGEST_INVALID."""
    if ":" in reference or is_tag(reference):
        return parse_reference(reference)
    raise ManifestUnknown(
        f"manifest {reference!r} does not exist: {_not_a_tag(reference)}", detail={"reference": reference}
    )


def _not_a_tag(reference: str) -> str:
    return f"invalid manifest reference {reference!r}: a tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"
