"""A deterministic, pure-Python builder of OCI image layouts for tests.

The same arguments always give the same bytes (tar and gzip times are fixed at 0, entries are
sorted, JSON is written with fixed separators), so digests are stable across runs and machines.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def tar_bytes(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of regular files with fixed owners, modes and times."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    # mtime=0 keeps the gzip header (and so the layer digest) reproducible.
    return gzip.compress(data, compresslevel=6, mtime=0)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            doc["platform"] = self.platform
        if self.annotations:
            doc["annotations"] = self.annotations
        return doc


@dataclass(frozen=True)
class BuiltImage:
    """One single-platform image: its manifest and the blobs it references."""

    manifest: bytes
    manifest_digest: str
    config: bytes
    config_digest: str
    layer: bytes
    layer_digest: str
    architecture: str

    @property
    def blob_digests(self) -> set[str]:
        return {self.config_digest, self.layer_digest}


@dataclass
class OciLayout:
    """An OCI image layout directory being written."""

    root: Path
    refs: list[Descriptor] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))

    def write_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return digest

    def add_ref(self, name: str, media_type: str, data: bytes) -> None:
        descriptor = Descriptor(media_type, sha256_digest(data), len(data), annotations={REF_NAME: name})
        self.refs.append(descriptor)
        self.write_index()

    def write_index(self) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d.to_json() for d in self.refs]}
        (self.root / "index.json").write_bytes(canonical_json(index))


def build_image(layout: OciLayout, architecture: str, files: dict[str, bytes]) -> BuiltImage:
    """Write one gzip layer, its config and its manifest into the layout."""
    diff = tar_bytes(files)
    layer = gzip_bytes(diff)
    config = canonical_json(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {"Cmd": ["/hello"], "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(diff)]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tests/support/images.py"}],
            "created": "1970-01-01T00:00:00Z",
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": Descriptor(OCI_CONFIG, sha256_digest(config), len(config)).to_json(),
            "layers": [Descriptor(OCI_LAYER_GZIP, sha256_digest(layer), len(layer)).to_json()],
        }
    )
    return BuiltImage(
        manifest=manifest,
        manifest_digest=layout.write_blob(manifest),
        config=config,
        config_digest=layout.write_blob(config),
        layer=layer,
        layer_digest=layout.write_blob(layer),
        architecture=architecture,
    )


def build_index(layout: OciLayout, images: list[BuiltImage]) -> bytes:
    index = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                Descriptor(
                    OCI_MANIFEST,
                    image.manifest_digest,
                    len(image.manifest),
                    platform={"architecture": image.architecture, "os": "linux"},
                ).to_json()
                for image in images
            ],
        }
    )
    layout.write_blob(index)
    return index


@dataclass(frozen=True)
class ImageLayout:
    """What `build_test_layout` wrote: refs `v1` (the amd64 image) and `multi` (the index)."""

    root: Path
    amd64: BuiltImage
    arm64: BuiltImage
    index: bytes

    @property
    def index_digest(self) -> str:
        return sha256_digest(self.index)

    def ref(self, name: str) -> str:
        """A containers/image transport reference, e.g. `oci:/path:v1`."""
        return f"oci:{self.root}:{name}"


def build_test_layout(root: Path, seed: str = "portside") -> ImageLayout:
    """An OCI layout with one image per platform and a two-platform index.

    `seed` goes into the file contents, so different seeds give unrelated digests.
    """
    layout = OciLayout(root)
    amd64 = build_image(layout, "amd64", {"hello": f"hello amd64 {seed}\n".encode(), "etc/seed": seed.encode()})
    arm64 = build_image(layout, "arm64", {"hello": f"hello arm64 {seed}\n".encode(), "etc/seed": seed.encode()})
    index = build_index(layout, [amd64, arm64])
    layout.add_ref("v1", OCI_MANIFEST, amd64.manifest)
    layout.add_ref("multi", OCI_INDEX, index)
    return ImageLayout(root=root, amd64=amd64, arm64=arm64, index=index)
