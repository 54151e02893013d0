"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, SeaweedFS, R2).

Layout under the URL's prefix: `blobs/<alg>/<2 hex>/<hex>` (the filesystem's), and uploads in
progress as objects under `uploads/<id>/`. S3 multipart parts must be at least 5 MiB (except the
last) while docker and containerd send chunks of any size, so an upload is staged as whole parts
(`part-…`, PART_SIZE each) plus a tail of fewer bytes (`tail-…`), which the next request reads back
and continues. Only when the caller has verified the digest does a multipart upload at the blob's
address copy the parts server-side (UploadPartCopy) and complete: a reader never sees a partial
blob. An upload whose digest is known from the start (docker's POST, then PUT with the whole body)
skips the staging: its parts go straight into a multipart upload at the blob's address, which
becomes visible only when it completes; one smaller than a part is a single PUT.

Client: boto3, in this store's threads. Measured against SeaweedFS here (docs/storage.md has the
table): boto3 and aiobotocore moved the same bytes (multipart 512 MiB: 62-130 MB/s both, bound by
SeaweedFS; curl's single PUT did 105-117), but aiobotocore signs and checksums on the event loop
(loop stalls up to 190 ms during uploads); obstore was fastest for small objects but cannot resume
a multipart upload from another process nor copy a part, which staging needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config

from portside.blobs.store import BlobRead, Redirect, StorageUrlInvalid, Stream
from portside.faults import BlobMissing, StoreUnreachable, clear

log = logging.getLogger("portside.storage")
T = TypeVar("T")
MiB = 1024 * 1024
PART_SIZE = 8 * MiB  # 10,000 parts: blobs up to 78 GiB
MIN_PART = 5 * MiB  # S3's smallest part but the last
PARTS_IN_FLIGHT = 2  # parts uploaded at once per upload (SeaweedFS here: 62 -> 120 MB/s from 1 to 4)
READ_CHUNK = MiB
REDIRECT_SECONDS = 600  # presigned download URLs live this long, and are reused for half of it
_PRESIGNED_CACHE = 4096
_MISSING = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str | None
    path_style: bool

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.username or parts.password or "@" in parts.netloc:
            raise StorageUrlInvalid(
                "storage_url must not carry credentials; give them the AWS way (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, a shared credentials file, or an instance role)"
            )
        if not parts.netloc:
            raise StorageUrlInvalid(f"storage_url {url!r} names no bucket: use s3://BUCKET[/PREFIX]")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        known = {"endpoint", "region", "path_style"}
        if unknown := sorted(set(query) - known):
            raise StorageUrlInvalid(f"storage_url has unknown parameters {unknown}; known: {sorted(known)}")
        endpoint = query.get("endpoint") or None
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise StorageUrlInvalid(f"storage_url endpoint {endpoint!r} must be an http:// or https:// URL")
        path_style = query.get("path_style", "true" if endpoint else "false").lower() in ("1", "true", "yes")
        return cls(parts.netloc, parts.path.strip("/"), endpoint, query.get("region") or None, path_style)

    def key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint}" if self.endpoint else "")


@dataclass
class _State:
    """An upload's staged objects: whole parts, then a tail shorter than a part (JSON in the database)."""

    parts: list[tuple[str, int]] = field(default_factory=list)  # (key suffix, size)
    tail: tuple[str, int] | None = None

    @classmethod
    def load(cls, text: str) -> _State:
        if not text:
            return cls()
        doc = json.loads(text)
        tail = doc.get("tail")
        return cls(
            [(str(name), int(size)) for name, size in doc.get("parts", [])], (tail[0], int(tail[1])) if tail else None
        )

    def dump(self) -> str:
        return json.dumps({"parts": self.parts, "tail": self.tail}, separators=(",", ":"))

    @property
    def size(self) -> int:
        return sum(size for _, size in self.parts) + (self.tail[1] if self.tail else 0)


class S3BlobStore:
    def __init__(self, location: S3Location, *, redirect: bool = True) -> None:
        self.location = location
        self.redirect = redirect
        self.description = str(location)
        session = boto3.session.Session()
        self._client = session.client(
            "s3",
            endpoint_url=location.endpoint,
            region_name=location.region,
            config=Config(
                s3={"addressing_style": "path" if location.path_style else "auto"},
                signature_version="s3v4",
                max_pool_connections=32,
                # An object store that is down is a 503 within seconds, not after botocore's default
                # five attempts (measured: up to 17 s); the client retries the push itself.
                connect_timeout=3,
                read_timeout=60,
                retries={"mode": "standard", "total_max_attempts": 2},
                # Portside verifies every blob's sha256 itself: no second checksum of every byte.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="s3")
        self._presigned: dict[str, tuple[str, float]] = {}

    @classmethod
    def from_url(cls, url: str, *, redirect: bool = True) -> S3BlobStore:
        return cls(S3Location.parse(url), redirect=redirect)

    # -- calls, off the event loop, with their failures as conditions ----------------------------

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self._call(fn, *args, **kwargs))

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            result = fn(*args, **kwargs)
        except botocore.exceptions.ClientError as error:
            if _code(error) in _MISSING:
                raise
            raise self._unavailable(error) from None
        except (botocore.exceptions.BotoCoreError, OSError) as error:
            raise self._unavailable(error) from None
        if getattr(fn, "__self__", None) is self._client:  # the store answered (helpers may swallow failures)
            clear(self._condition)
        return result

    @property
    def _condition(self) -> str:
        return f"object store {self.description} unavailable"

    def _unavailable(self, error: Exception) -> StoreUnreachable:
        return StoreUnreachable(
            "the registry's object storage cannot be reached right now; try again shortly (if it "
            "persists, an operator must check the object store)",
            condition=self._condition,
            operator=f"object store {self.description}: {describe(error)}",
        )

    def _blob_key(self, digest: str) -> str:
        algorithm, hexdigest = digest.split(":", 1)
        return self.location.key("blobs", algorithm, hexdigest[:2], hexdigest)

    def _upload_key(self, upload_id: str, name: str = "") -> str:
        return self.location.key("uploads", upload_id, name)

    # -- blobs -----------------------------------------------------------------------------------

    async def size(self, digest: str) -> int | None:
        try:
            head = await self._run(self._client.head_object, Bucket=self.location.bucket, Key=self._blob_key(digest))
        except botocore.exceptions.ClientError:
            return None
        return int(head["ContentLength"])

    async def read_small(self, digest: str, limit: int) -> bytes | None:
        def read() -> bytes | None:
            try:
                got = self._client.get_object(
                    Bucket=self.location.bucket, Key=self._blob_key(digest), Range=f"bytes=0-{limit}"
                )
            except botocore.exceptions.ClientError as error:
                if _code(error) in _MISSING or _code(error) == "InvalidRange":
                    return b"" if _code(error) == "InvalidRange" else None  # InvalidRange: an empty blob
                raise
            data: bytes = got["Body"].read()
            return data if len(data) <= limit else None

        return await self._run(read)

    async def serve(self, digest: str, size: int, byte_range: tuple[int, int] | None) -> BlobRead:
        if self.redirect:
            return Redirect(await self._presign(digest))
        start, end = byte_range if byte_range is not None else (0, size - 1)
        params: dict[str, Any] = {"Bucket": self.location.bucket, "Key": self._blob_key(digest)}
        if size and byte_range is not None:
            params["Range"] = f"bytes={start}-{end}"
        try:
            got = await self._run(self._client.get_object, **params)
        except botocore.exceptions.ClientError:
            raise self._missing(digest) from None
        if size == 0:
            return Stream(_empty(), 0, 0)
        return Stream(self._chunks(got["Body"]), start, end - start + 1)

    async def _presign(self, digest: str) -> str:
        """A presigned GET, reused while it has more than half its life left: hot layers pulled by a
        whole fleet of clients cost one signature and one HEAD (that the object is there), not one
        per pull."""
        moment = time.monotonic()
        cached = self._presigned.get(digest)
        if cached is not None and cached[1] > moment:
            return cached[0]
        if await self.size(digest) is None:
            raise self._missing(digest)
        url = await self._run(
            self._client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.location.bucket, "Key": self._blob_key(digest)},
            ExpiresIn=REDIRECT_SECONDS,
        )
        if len(self._presigned) >= _PRESIGNED_CACHE:
            self._presigned.clear()
        self._presigned[digest] = (url, moment + REDIRECT_SECONDS / 2)
        return url

    async def _chunks(self, body: Any) -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await self._run(body.read, READ_CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def _missing(self, digest: str) -> BlobMissing:
        return BlobMissing(
            f"blob {digest} is recorded by the registry but its bytes are missing from storage; "
            "ask an operator to restore it from a backup (the server log names where it should be)",
            condition=f"blob {digest} missing",
            operator=f"blob {digest} has no object at {self._blob_key(digest)} in {self.description}",
        )

    async def delete(self, digest: str) -> None:
        self._presigned.pop(digest, None)
        await self._run(self._client.delete_object, Bucket=self.location.bucket, Key=self._blob_key(digest))

    async def digests(self) -> AsyncIterator[str]:
        prefix = self.location.key("blobs") + "/"
        for key, _ in await self._run(self._list, prefix):
            algorithm, _, hexdigest = key.removeprefix(prefix).split("/")
            yield f"{algorithm}:{hexdigest}"

    def _list(self, prefix: str) -> list[tuple[str, float]]:
        found = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.location.bucket, Prefix=prefix):
            found += [(item["Key"], item["LastModified"].timestamp()) for item in page.get("Contents", [])]
        return found

    # -- uploads ---------------------------------------------------------------------------------

    async def create_upload(self, upload_id: str) -> str:
        return _State().dump()  # nothing is stored until a request brings bytes

    async def open_upload(self, upload_id: str, state: str, offset: int, digest: str | None) -> _S3Writer:
        staged = _State.load(state)
        if staged.size != offset:
            raise ValueError(f"upload {upload_id}: state holds {staged.size} bytes, not {offset}")
        return _S3Writer(self, upload_id, staged, direct=digest if offset == 0 else None)

    async def read_upload(self, upload_id: str, state: str, length: int) -> AsyncIterator[bytes]:
        staged = _State.load(state)
        pieces = [*staged.parts, *([staged.tail] if staged.tail else [])]
        remaining = length
        for name, _ in pieces:
            if remaining <= 0:
                return
            got = await self._run(
                self._client.get_object, Bucket=self.location.bucket, Key=self._upload_key(upload_id, name)
            )
            async for chunk in self._chunks(got["Body"]):
                yield chunk[:remaining]
                remaining -= len(chunk)
                if remaining <= 0:
                    break

    async def delete_upload(self, upload_id: str, state: str) -> None:
        await self._run(self._delete_prefix, self._upload_key(upload_id) + "/")

    def _delete_prefix(self, prefix: str) -> None:
        keys = [key for key, _ in self._list(prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._client.delete_objects(Bucket=self.location.bucket, Delete={"Objects": batch, "Quiet": True})

    async def stale_uploads(self, cutoff: float) -> list[str]:
        """Staged uploads last written before `cutoff`; multipart uploads begun before it (a crash
        in the middle of a push) are aborted on the way."""
        prefix = self.location.key("uploads") + "/"
        newest: dict[str, float] = {}
        for key, modified in await self._run(self._list, prefix):
            upload_id = key.removeprefix(prefix).split("/", 1)[0]
            newest[upload_id] = max(newest.get(upload_id, 0.0), modified)
        await self._run(self._abort_stale_multipart, cutoff)
        return [upload_id for upload_id, modified in newest.items() if modified < cutoff]

    def _abort_stale_multipart(self, cutoff: float) -> None:
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self.location.key("blobs") + "/"):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < cutoff:
                    log.info("aborting abandoned multipart upload of %s", upload["Key"])
                    with contextlib.suppress(botocore.exceptions.ClientError):
                        self._client.abort_multipart_upload(
                            Bucket=self.location.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )

    async def check(self) -> str | None:
        try:
            await self._run(self._client.head_bucket, Bucket=self.location.bucket)
        except botocore.exceptions.ClientError as error:
            return f"object store {self.description}: {describe(error)}"
        except StoreUnreachable as error:
            return error.operator
        return None

    async def close(self) -> None:
        self._executor.shutdown(wait=False)

    # -- what the writer uses --------------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._call(self._client.put_object, Bucket=self.location.bucket, Key=key, Body=bytes(data))

    def get(self, key: str) -> bytes:
        return self._call(self._client.get_object, Bucket=self.location.bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    def delete_keys(self, keys: list[str]) -> None:
        if keys:
            with contextlib.suppress(StoreUnreachable):  # leftovers are reclaimed when the upload expires
                self._call(
                    self._client.delete_objects,
                    Bucket=self.location.bucket,
                    Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
                )

    def begin_multipart(self, key: str) -> str:
        return str(self._call(self._client.create_multipart_upload, Bucket=self.location.bucket, Key=key)["UploadId"])

    def upload_part(self, key: str, upload: str, number: int, data: bytes) -> str:
        answer = self._call(
            self._client.upload_part,
            Bucket=self.location.bucket,
            Key=key,
            UploadId=upload,
            PartNumber=number,
            Body=data,
        )
        return str(answer["ETag"])

    def copy_part(self, key: str, upload: str, number: int, source: str) -> str:
        answer = self._call(
            self._client.upload_part_copy,
            Bucket=self.location.bucket,
            Key=key,
            UploadId=upload,
            PartNumber=number,
            CopySource={"Bucket": self.location.bucket, "Key": source},
        )
        return str(answer["CopyPartResult"]["ETag"])

    def complete_multipart(self, key: str, upload: str, etags: list[str]) -> None:
        parts = [{"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, 1)]
        self._call(
            self._client.complete_multipart_upload,
            Bucket=self.location.bucket,
            Key=key,
            UploadId=upload,
            MultipartUpload={"Parts": parts},
        )

    def abort_multipart(self, key: str, upload: str) -> None:
        with contextlib.suppress(StoreUnreachable, botocore.exceptions.ClientError):
            self._call(self._client.abort_multipart_upload, Bucket=self.location.bucket, Key=key, UploadId=upload)


class _S3Writer:
    """One request's bytes: whole parts as they fill (up to PARTS_IN_FLIGHT uploading at once), the
    rest kept as the upload's new tail, or, on commit, the blob's last part."""

    def __init__(self, store: S3BlobStore, upload_id: str, state: _State, *, direct: str | None) -> None:
        self._store = store
        self._upload_id = upload_id
        self._state = state
        self._direct = direct  # the blob's digest when parts go straight to its address
        self._buffer = bytearray()
        self._tail_loaded = state.tail is None
        self._new_parts: list[tuple[str, int]] = []  # staged by this request, forgotten on abort
        self._in_flight: list[asyncio.Future[None]] = []
        self._multipart: str | None = None  # the direct multipart upload's id
        self._etags: list[str] = []

    async def _load_tail(self) -> None:
        if not self._tail_loaded:
            assert self._state.tail is not None
            key = self._store._upload_key(self._upload_id, self._state.tail[0])
            self._buffer[:0] = await self._store._run(self._store.get, key)
            self._tail_loaded = True

    async def write(self, data: memoryview) -> None:
        await self._load_tail()
        self._buffer += data
        while len(self._buffer) >= PART_SIZE:
            part = bytes(self._buffer[:PART_SIZE])
            del self._buffer[:PART_SIZE]
            await self._send(part)

    async def _send(self, part: bytes) -> None:
        """Upload one whole part, keeping at most PARTS_IN_FLIGHT in the air."""
        while len(self._in_flight) >= PARTS_IN_FLIGHT:
            await self._in_flight.pop(0)
        if self._direct is not None:
            key = self._store._blob_key(self._direct)
            if self._multipart is None:
                self._multipart = await self._store._run(self._store.begin_multipart, key)
            self._etags.append("")
            number, upload = len(self._etags), self._multipart

            def send() -> None:
                self._etags[number - 1] = self._store.upload_part(key, upload, number, part)
        else:
            name = f"part-{len(self._state.parts) + len(self._new_parts):05d}-{secrets.token_hex(4)}"
            self._new_parts.append((name, len(part)))

            def send() -> None:
                self._store.put(self._store._upload_key(self._upload_id, name), part)

        self._in_flight.append(asyncio.ensure_future(self._store._run(send)))

    async def _drain(self) -> None:
        in_flight, self._in_flight = self._in_flight, []
        outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def close(self) -> str:
        await self._load_tail()
        if len(self._buffer) >= MIN_PART:
            await self._send(bytes(self._buffer))
            self._buffer.clear()
        await self._drain()
        old_tail = self._state.tail
        tail = None
        if self._buffer:
            tail = (f"tail-{secrets.token_hex(4)}", len(self._buffer))
            await self._store._run(self._store.put, self._store._upload_key(self._upload_id, tail[0]), self._buffer)
        state = _State([*self._state.parts, *self._new_parts], tail)
        if old_tail is not None:  # read into this request's bytes: no longer referenced
            await self._store._run(self._store.delete_keys, [self._store._upload_key(self._upload_id, old_tail[0])])
        return state.dump()

    async def commit(self, digest: str, size: int) -> None:
        await self._load_tail()
        store, key = self._store, self._store._blob_key(digest)
        if self._direct is not None:
            if self._multipart is None:  # smaller than a part: one PUT, already verified
                await store._run(store.put, key, self._buffer)
                return
            if self._buffer:
                await self._send(bytes(self._buffer))
                self._buffer.clear()
            await self._drain()
            await store._run(store.complete_multipart, key, self._multipart, self._etags)
            self._multipart = None
            return
        await self._drain()
        staged = [*self._state.parts, *self._new_parts]
        if staged:
            await store._run(self._assemble, key, staged)
        else:
            await store._run(store.put, key, self._buffer)
        leftovers = [name for name, _ in staged] + ([self._state.tail[0]] if self._state.tail else [])
        await store._run(store.delete_keys, [store._upload_key(self._upload_id, name) for name in leftovers])

    def _assemble(self, key: str, staged: list[tuple[str, int]]) -> None:
        """Copy the staged parts into a multipart upload at the blob's address (server-side), send
        what is left as its last part, and complete it."""
        store = self._store
        upload = store.begin_multipart(key)
        try:
            etags = [
                store.copy_part(key, upload, number, store._upload_key(self._upload_id, name))
                for number, (name, _) in enumerate(staged, 1)
            ]
            if self._buffer:
                etags.append(store.upload_part(key, upload, len(etags) + 1, bytes(self._buffer)))
            store.complete_multipart(key, upload, etags)
        except BaseException:
            store.abort_multipart(key, upload)
            raise

    async def abort(self) -> None:
        with contextlib.suppress(Exception):
            await self._drain()
        store = self._store
        if self._multipart is not None and self._direct is not None:
            await store._run(store.abort_multipart, store._blob_key(self._direct), self._multipart)
            self._multipart = None
        keys = [store._upload_key(self._upload_id, name) for name, _ in self._new_parts]
        self._new_parts = []
        self._buffer.clear()
        await store._run(store.delete_keys, keys)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def describe(error: Exception) -> str:
    """One line for the operator: what the object store said, never a credential."""
    if isinstance(error, botocore.exceptions.ClientError):
        code, message = _code(error), error.response.get("Error", {}).get("Message", "")
        hints = {
            "NoSuchBucket": "the bucket does not exist: create it, or fix storage_url",
            "AccessDenied": "access denied: the credentials lack permissions on the bucket (see docs/storage.md)",
            "InvalidAccessKeyId": "the access key is not known to the object store: check AWS_ACCESS_KEY_ID",
            "SignatureDoesNotMatch": "the secret key is wrong: check AWS_SECRET_ACCESS_KEY",
            "403": "access denied (403): check the credentials and the bucket's permissions",
            "404": "the bucket does not exist (404): create it, or fix storage_url",
        }
        return hints.get(code, f"{code}: {message}".strip(": "))
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use a credentials file or role"
    if isinstance(error, botocore.exceptions.EndpointConnectionError):
        return f"cannot connect to {error.kwargs.get('endpoint_url', 'the endpoint')}"
    return f"{error.__class__.__name__}: {error}".splitlines()[0]
