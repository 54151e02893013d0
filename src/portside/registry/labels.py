"""What ghcr.io shows about an image: its org.opencontainers.image labels and its platform.

An image's labels are in its config blob; a multi-platform image's are the annotations of its
index (ghcr.io reads the description of a multi-arch image from there, not from the configs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DESCRIPTION = "org.opencontainers.image.description"
SOURCE = "org.opencontainers.image.source"
LICENSES = "org.opencontainers.image.licenses"
MAX_DESCRIPTION, MAX_LICENSES, MAX_SOURCE = 512, 256, 2048  # ghcr.io's limits; the source is a URL


@dataclass(frozen=True, slots=True)
class Labels:
    description: str | None = None
    source_url: str | None = None
    licenses: str | None = None
    platform: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.description or self.source_url or self.licenses)


def from_annotations(annotations: dict[str, str] | None) -> Labels:
    return _labels(annotations or {}, None)


def from_config(raw: bytes) -> Labels:
    """Labels and platform from an image config; a config that is not what it claims gives none."""
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return Labels()
    if not isinstance(config, dict):
        return Labels()
    inner = config.get("config")
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    return _labels(labels if isinstance(labels, dict) else {}, _platform(config))


def _labels(values: dict[str, Any], platform: str | None) -> Labels:
    def text(key: str, limit: int) -> str | None:
        value = values.get(key)
        return value.strip()[:limit] or None if isinstance(value, str) else None

    return Labels(text(DESCRIPTION, MAX_DESCRIPTION), text(SOURCE, MAX_SOURCE), text(LICENSES, MAX_LICENSES), platform)


def _platform(config: dict[str, Any]) -> str | None:
    parts = [config.get("os"), config.get("architecture"), config.get("variant")]
    if not all(isinstance(part, str) for part in parts[:2]):
        return None
    return "/".join(part for part in parts if isinstance(part, str) and part)
