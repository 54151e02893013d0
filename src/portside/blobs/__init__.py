"""Blob storage drivers behind one protocol (blobs.store.BlobStore), chosen by `storage_url`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from portside.blobs.store import BlobStore, StorageUrlInvalid

__all__ = ["BlobStore", "StorageUrlInvalid", "open_store"]


def open_store(url: str, data_dir: Path, *, fsync: bool = True, redirect: bool | None = None) -> BlobStore:
    """The driver `url` names: empty is the filesystem under the data directory (the layout every
    installation has had), `file:///PATH` another directory, `s3://BUCKET[/PREFIX]?...` S3."""
    if not url:
        from portside.blobs.filesystem import FilesystemBlobStore

        return FilesystemBlobStore(data_dir.resolve(), fsync=fsync)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise StorageUrlInvalid(f"storage_url {url!r}: a file URL names an absolute path, as file:///srv/portside")
        from portside.blobs.filesystem import FilesystemBlobStore

        return FilesystemBlobStore(Path(unquote(parts.path)), fsync=fsync)
    if parts.scheme == "s3":
        from portside.blobs.s3 import S3BlobStore

        return S3BlobStore.from_url(url, redirect=True if redirect is None else redirect)
    raise StorageUrlInvalid(f"storage_url {url!r}: use file:///PATH or s3://BUCKET[/PREFIX]?endpoint=...&region=...")
