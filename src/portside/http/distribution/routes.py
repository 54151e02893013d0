"""The OCI Distribution API (`/v2/...`): what docker, podman, skopeo, containerd and oras speak."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from portside.access.policy import Action, Actor
from portside.blobs.store import LocalFile, Redirect
from portside.http.auth import RegistryAuth, Rider, scope_of
from portside.http.base_url import BaseUrl, client_address
from portside.registry.errors import (
    BlobUploadInvalid,
    DigestInvalid,
    RangeNotSatisfiable,
    SizeInvalid,
    Unsupported,
)
from portside.registry.manifests import OCI_INDEX
from portside.registry.quotas import WARNING_HEADER
from portside.registry.references import NAME_RE, Digest, validate_name
from portside.registry.service import OnCreate, Page, Registry
from portside.registry.uploads import Uploads

_MANIFEST_ACTIONS = {"GET": Action.PULL, "HEAD": Action.PULL, "PUT": Action.PUSH, "DELETE": Action.DELETE}
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)")
_EMPTY_DIGEST = str(Digest.of(b""))
_OCTETS = "application/octet-stream"


@dataclass(frozen=True)
class Distribution:
    registry: Registry
    uploads: Uploads
    base_url: BaseUrl
    auth: RegistryAuth

    async def _allow(self, request: Request, action: Action, also: str | None = None) -> tuple[str, Actor]:
        """Validate the repository name, then authorise the request (`also`: see RegistryAuth.require)."""
        name = validate_name(request.path_params["name"])
        return name, await self.auth.require(request, name, action, also=also)

    def routes(self) -> list[Route]:
        return [
            Route("/v2/", self.root, methods=["GET"]),
            Route("/v2/_catalog", self.catalog, methods=["GET"]),
            Route("/v2/{name:path}/tags/list", self.tags_list, methods=["GET"]),
            Route("/v2/{name:path}/manifests/{reference}", self.manifest, methods=["GET", "PUT", "DELETE"]),
            Route("/v2/{name:path}/blobs/uploads/", self.upload_start, methods=["POST"]),
            Route("/v2/{name:path}/blobs/uploads", self.upload_start, methods=["POST"]),
            Route("/v2/{name:path}/blobs/uploads/{upload_id}", self.upload, methods=["GET", "PATCH", "PUT", "DELETE"]),
            Route("/v2/{name:path}/blobs/{digest}", self.blob, methods=["GET", "DELETE"]),
            Route("/v2/{name:path}/referrers/{digest}", self.referrers, methods=["GET"]),
        ]

    def _creator(self, actor: Actor) -> OnCreate:
        """What makes a repository a package when a push first writes to it."""
        return self.auth.access.package_creator(actor)

    # -- base and discovery --------------------------------------------------------------------

    async def root(self, request: Request) -> Response:
        await self.auth.require_signed_in(request)
        return JSONResponse({})

    async def catalog(self, request: Request) -> Response:
        actor, _ = await self.auth.credentials(request, "registry:catalog:*")
        n, last = _pagination(request)
        page = await self.registry.catalog(n, last, self.auth.access.readable(actor))
        return _paged(JSONResponse({"repositories": page.items}), "/v2/_catalog", page, n)

    async def tags_list(self, request: Request) -> Response:
        name, _ = await self._allow(request, Action.PULL)
        n, last = _pagination(request)
        page = await self.registry.tags(name, n, last)
        return _paged(JSONResponse({"name": name, "tags": page.items}), f"/v2/{name}/tags/list", page, n)

    async def referrers(self, request: Request) -> Response:
        name, _ = await self._allow(request, Action.PULL)
        digest = Digest.parse(request.path_params["digest"])
        artifact_type = request.query_params.get("artifactType") or None
        descriptors = await self.registry.referrers(name, digest, artifact_type)
        headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else None
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        return JSONResponse(body, media_type=OCI_INDEX, headers=headers)

    # -- manifests -----------------------------------------------------------------------------

    async def manifest(self, request: Request) -> Response:
        reference = request.path_params["reference"]
        if request.method in ("GET", "HEAD"):
            name = validate_name(request.path_params["name"])
            _, found = await self.auth.require_reading(
                request, name, Action.PULL, lambda rider: self.registry.get_manifest(name, reference, rider)
            )
            headers = {"Docker-Content-Digest": found.digest, "Content-Length": str(len(found.payload))}
            if request.method == "HEAD":
                return Response(media_type=found.media_type, headers=headers)
            self.registry.count_download(name, found.digest)
            body = found.payload
            return Response(body, media_type=found.media_type, headers=headers)
        name, actor = await self._allow(request, _MANIFEST_ACTIONS[request.method])
        if request.method == "DELETE":
            await self.registry.delete_manifest(name, reference)
            await self.auth.access.audit(
                actor, "package.delete_manifest", name, client_address(request), reference=reference
            )
            return Response(status_code=202)
        try:
            payload = await self._read_manifest_body(request)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read an answer
        put = await self.registry.put_manifest(
            name, reference, payload, request.headers.get("content-type", ""), self._creator(actor)
        )
        parsed = put.parsed
        headers = {
            "Location": f"{self.base_url(request)}/v2/{name}/manifests/{parsed.digest}",
            "Docker-Content-Digest": str(parsed.digest),
        }
        if parsed.subject:
            headers["OCI-Subject"] = parsed.subject
        if put.quota_warning:
            headers[WARNING_HEADER] = put.quota_warning
        return Response(status_code=201, headers=headers)

    async def _read_manifest_body(self, request: Request) -> bytes:
        limit = self.registry.max_manifest_bytes
        declared = _content_length(request)
        too_big = SizeInvalid(f"manifest is larger than the {limit} bytes this registry accepts", status=413)
        if declared is not None and declared > limit:
            raise too_big
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_big
        return bytes(body)

    # -- blobs ---------------------------------------------------------------------------------

    async def blob(self, request: Request) -> Response:
        if request.method != "DELETE":
            return await self._blob_read(request)
        name, actor = await self._allow(request, Action.DELETE)
        digest = Digest.parse(request.path_params["digest"])
        await self.registry.delete_blob(name, digest)
        await self.auth.access.audit(actor, "package.delete_blob", name, client_address(request), digest=str(digest))
        return Response(status_code=202)

    async def _blob_read(self, request: Request) -> Response:
        """A blob's HEAD or GET: one read of the database (with the bearer token's check riding along)."""
        name = validate_name(request.path_params["name"])
        digest: Digest | None = None

        def parsed() -> Digest:
            nonlocal digest
            digest = Digest.parse(request.path_params["digest"])  # inside the read: credentials are judged first
            return digest

        if request.method == "HEAD":  # the database knows the size: the blob store is not asked
            _, blob_size = await self.auth.require_reading(
                request, name, Action.PULL, lambda rider: self.registry.blob_size(name, parsed(), rider)
            )
            headers = _blob_headers(str(digest))
            headers["Content-Length"] = str(blob_size)
            return Response(media_type="application/octet-stream", headers=headers)
        asked = request.headers.get("range")
        _, (size, read) = await self.auth.require_reading(
            request,
            name,
            Action.PULL,
            lambda rider: self.registry.read_blob(name, parsed(), lambda size: _check_range(asked, size), rider),
        )
        headers = _blob_headers(str(digest))
        if isinstance(read, LocalFile):
            # Zero-copy (sendfile, or the ASGI server's path send); FileResponse answers Range itself.
            return FileResponse(
                read.path, stat_result=read.stat, media_type="application/octet-stream", headers=headers
            )
        if isinstance(read, Redirect):
            return RedirectResponse(read.url, status_code=307, headers={"Docker-Content-Digest": str(digest)})
        headers["Content-Length"] = str(read.length)
        if asked is None:
            return StreamingResponse(read.chunks, media_type="application/octet-stream", headers=headers)
        headers["Content-Range"] = f"bytes {read.start}-{read.start + read.length - 1}/{size}"
        return StreamingResponse(read.chunks, status_code=206, media_type="application/octet-stream", headers=headers)

    # -- uploads -------------------------------------------------------------------------------

    def _upload_location(self, request: Request, name: str, upload_id: str) -> str:
        return f"{self.base_url(request)}/v2/{name}/blobs/uploads/{upload_id}"

    def _blob_created(self, request: Request, name: str, digest: Digest) -> Response:
        headers = {
            "Location": f"{self.base_url(request)}/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
        }
        return Response(status_code=201, headers=headers)

    def _upload_accepted(self, request: Request, name: str, upload_id: str, size: int, status: int = 202) -> Response:
        headers = {
            "Location": self._upload_location(request, name, upload_id),
            "Range": f"0-{max(size - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
        }
        return Response(status_code=status, headers=headers)

    async def upload_start(self, request: Request) -> Response:
        params = request.query_params
        mount = params.get("mount")
        # Clients send `from` for repositories they merely saw before, so a bad `from` is not an
        # error: an invalid name is ignored.
        source = params.get("from") if mount else None
        source = source if source is not None and NAME_RE.fullmatch(source) else None
        if mount and source is not None:
            # The bearer token's check rides along with the read of the source's blob, and is
            # judged before the mount writes anything (RegistryAuth.require_reading).
            name = validate_name(request.path_params["name"])
            digest: Digest | None = None

            def source_size(rider: Rider | None) -> Awaitable[int | None]:
                nonlocal digest
                digest = Digest.parse(mount)  # inside the read: credentials are judged first
                return self._source_size(request, name, digest, source, rider)

            actor, size = await self.auth.require_reading(request, name, Action.PUSH, source_size, also=source)
        else:
            name, actor = await self._allow(request, Action.PUSH, also=source)
            if mount:
                digest = Digest.parse(mount)
                size = await self.registry.find_blob(digest, self.auth.access.readable(actor))
        if mount:
            assert digest is not None
            # Not mountable, or collected as garbage since: an upload session instead, as the spec says.
            if size is not None and await self.registry.mount(name, digest, self._creator(actor)):
                return self._blob_created(request, name, digest)
        elif (digest_param := params.get("digest")) is not None:
            digest = Digest.parse(digest_param)
            if _has_body(request) or str(digest) == _EMPTY_DIGEST:
                try:
                    await self.uploads.monolithic(
                        name, digest, _stream(request), _content_length(request), self._creator(actor)
                    )
                except ClientDisconnect:
                    return Response(status_code=400)
                return self._blob_created(request, name, digest)
        upload_id = await self.uploads.start(name)
        return self._upload_accepted(request, name, upload_id, 0)

    async def _source_size(
        self, request: Request, name: str, digest: Digest, source: str, rider: Rider | None
    ) -> int | None:
        """The size of the blob to mount from `source`, if the caller may pull it; None means
        "upload it instead" (an unreadable source is not an error: the client uploads the blob).
        With `rider`, the caller's bearer token grants pull on `source` already."""
        if rider is None and not await self.auth.permits(
            request, source, Action.PULL, scope=scope_of(name, Action.PUSH, source)
        ):
            return None
        return await self.registry.stored_size(source, digest, rider)

    async def upload(self, request: Request) -> Response:
        if request.method == "PUT":
            return await self._upload_finish(request)
        name, _ = await self._allow(request, Action.PUSH)
        upload_id = request.path_params["upload_id"]
        try:
            if request.method in ("GET", "HEAD"):
                size = await self.uploads.status(name, upload_id)
                return self._upload_accepted(request, name, upload_id, size, status=204)
            if request.method == "DELETE":
                await self.uploads.cancel(name, upload_id)
                return Response(status_code=204)
            content_range = _content_range(request.headers.get("content-range"))  # PATCH: the route's last method
            size = await self.uploads.append(name, upload_id, _stream(request), content_range, _content_length(request))
            return self._upload_accepted(request, name, upload_id, size)
        except ClientDisconnect:
            # Nobody is left to read an answer; what this request sent has been discarded.
            return Response(status_code=400)

    async def _upload_finish(self, request: Request) -> Response:
        """The PUT that ends an upload. Its first step is a read (is the session empty and free?),
        which the bearer token's check rides along with; the token is judged before anything is
        written (RegistryAuth.require_reading)."""
        name = validate_name(request.path_params["name"])
        upload_id = request.path_params["upload_id"]
        actor, peeked = await self.auth.require_reading(
            request, name, Action.PUSH, lambda rider: self.uploads.peek(name, upload_id, rider)
        )
        digest_param = request.query_params.get("digest")
        if not digest_param:
            raise DigestInvalid("the digest query parameter is required to complete an upload")
        digest = Digest.parse(digest_param)
        try:
            leased = await self.uploads.claim(name, upload_id, peeked)
            await self.uploads.finish(
                name, upload_id, digest, _stream(request), _content_length(request), self._creator(actor), leased=leased
            )
        except ClientDisconnect:
            return Response(status_code=400)  # as in `upload`
        return self._blob_created(request, name, digest)


def _stream(request: Request) -> AsyncIterator[bytes]:
    return request.stream()


def _has_body(request: Request) -> bool:
    length = _content_length(request)
    return (length is not None and length > 0) or "chunked" in request.headers.get("transfer-encoding", "")


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not _is_decimal(value):
        raise SizeInvalid(f"Content-Length {value!r} is not a non-negative integer")
    return int(value)


def _is_decimal(value: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts characters such as '²' that int() refuses."""
    return value.isascii() and value.isdigit()


def _content_range(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if not match:
        raise BlobUploadInvalid(f"Content-Range {value!r} is malformed; expected <start>-<end>, e.g. 0-1023")
    start, end = int(match[1]), int(match[2])
    if end < start:
        raise RangeNotSatisfiable(f"Content-Range {value!r} ends before it starts")
    return start, end


def _blob_headers(digest: str) -> dict[str, str]:
    return {"Docker-Content-Digest": digest, "Accept-Ranges": "bytes", "ETag": f'"{digest}"'}


def _check_range(value: str | None, size: int) -> tuple[int, int] | None:
    """Validate a Range header up front, so a bad one gets a spec error rather than plain text; the
    inclusive byte range it selects (None: the whole blob)."""
    if value is None:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", value.strip())
    if not match or match[1] == match[2] == "":
        raise Unsupported(
            f"Range {value!r} is not supported; send a single range such as bytes=0-1023",
            status=416,
            headers={"Content-Range": f"bytes */{size}"},
        )
    start = int(match[1]) if match[1] else None
    end = int(match[2]) if match[2] else None
    if start is None:
        if end == 0 or size == 0:
            raise RangeNotSatisfiable(f"Range {value!r} selects no bytes", headers={"Content-Range": f"bytes */{size}"})
        assert end is not None
        return max(size - end, 0), size - 1  # the last `end` bytes
    if start >= size or (end is not None and end < start):
        raise RangeNotSatisfiable(
            f"Range {value!r} is outside the blob's {size} bytes", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, min(end if end is not None else size - 1, size - 1)


def _pagination(request: Request) -> tuple[int | None, str | None]:
    raw_n = request.query_params.get("n")
    n = None
    if raw_n is not None:
        if not _is_decimal(raw_n):
            raise Unsupported(f"n={raw_n!r} is not a valid page size; use a non-negative integer")
        n = int(raw_n)
    return n, request.query_params.get("last") or None


def _paged(response: Response, path: str, page: Page, n: int | None) -> Response:
    if page.more and page.items:
        query = urlencode({"n": n, "last": page.items[-1]}, quote_via=quote)
        response.headers["Link"] = f'<{path}?{query}>; rel="next"'
    return response
