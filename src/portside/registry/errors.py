"""Registry errors, each carrying one of the OCI Distribution spec's error codes and its status."""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    code = "UNSUPPORTED"
    status = 400

    def __init__(
        self, message: str, *, detail: Any = None, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.headers = headers or {}
        if status is not None:
            self.status = status


class BlobUnknown(RegistryError):
    code, status = "BLOB_UNKNOWN", 404


class BlobUploadInvalid(RegistryError):
    code, status = "BLOB_UPLOAD_INVALID", 400


class BlobUploadUnknown(RegistryError):
    code, status = "BLOB_UPLOAD_UNKNOWN", 404


class DigestInvalid(RegistryError):
    code, status = "DIGEST_INVALID", 400


class ManifestBlobUnknown(RegistryError):
    code, status = "MANIFEST_BLOB_UNKNOWN", 400


class ManifestInvalid(RegistryError):
    code, status = "MANIFEST_INVALID", 400


class ManifestUnknown(RegistryError):
    code, status = "MANIFEST_UNKNOWN", 404


class NameInvalid(RegistryError):
    code, status = "NAME_INVALID", 400


class NameUnknown(RegistryError):
    code, status = "NAME_UNKNOWN", 404


class SizeInvalid(RegistryError):
    code, status = "SIZE_INVALID", 400


class Unsupported(RegistryError):
    code, status = "UNSUPPORTED", 400


class RangeNotSatisfiable(RegistryError):
    """416: the spec names the status (out-of-order chunk, unsatisfiable Range) but no code of its own."""

    code, status = "BLOB_UPLOAD_INVALID", 416
