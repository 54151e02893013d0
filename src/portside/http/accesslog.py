"""One structured access-log line per request, and the headers every response carries."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("portside.access")

API_VERSION_HEADER = (b"docker-distribution-api-version", b"registry/2.0")


_CLOSE = (b"connection", b"close")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A body the app refused without reading is read and dropped up to this size before the answer.
# A proxy that streams request bodies (nginx with proxy_request_buffering off, as
# deploy/nginx/ ships) answers 502 of its own instead of ours when the connection closes while it is
# still sending. Past this size or time, closing costs the client less than sending the rest.
_DISCARD_LIMIT = 64 * 1024 * 1024
_DISCARD_SECONDS = 10.0
_DISCARD_IDLE_SECONDS = 1.0


def _has_body(scope: Scope) -> bool:
    if scope["method"] not in _BODY_METHODS:
        return False
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return b"chunked" in value.lower()
    return False


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _discard_body(scope: Scope, receive: Receive) -> bool:
    """Read and drop the rest of the request body; False if it is too large or the client left."""
    declared = _declared_length(scope)
    if declared is not None and declared > _DISCARD_LIMIT:
        return False
    left = _DISCARD_LIMIT
    try:
        async with asyncio.timeout(_DISCARD_SECONDS):
            while left >= 0:
                # A client that stops sending (it waits for the answer first) is answered at once.
                async with asyncio.timeout(_DISCARD_IDLE_SECONDS):
                    message = await receive()
                if message["type"] != "http.request":
                    return False
                left -= len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        pass
    return False


class AccessLog:
    """Pure ASGI middleware (no per-request Request objects): cheap on the hot paths."""

    def __init__(self, app: ASGIApp, *, json_format: bool) -> None:
        self.app = app
        self.json_format = json_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        sent = 0
        unread = _has_body(scope)  # the request still has body bytes the app has not read

        async def receive_wrapper() -> Message:
            nonlocal unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread = False
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), API_VERSION_HEADER]
                if unread and not await _discard_body(scope, receive):
                    # An answer before the body was read (a refused push): the server must close the
                    # connection, and Granian did not always say so (seen: 6 of 30), so a client that
                    # reused it lost its next request. Saying it here makes every client reconnect.
                    headers.append(_CLOSE)
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_wrapper if unread else receive, send_wrapper)
        finally:
            if log.isEnabledFor(logging.INFO):
                self._log(scope, status or 500, sent, time.perf_counter() - started)

    def _log(self, scope: Scope, status: int, sent: int, duration: float) -> None:
        client = scope.get("client")
        fields = {
            "client": client[0] if client else "-",
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "bytes": sent,
            "duration_ms": round(duration * 1000, 2),
        }
        if self.json_format:
            log.info(json.dumps(fields))
        else:
            log.info(
                '%s "%s %s" %s %s %.2fms',
                fields["client"],
                fields["method"],
                fields["path"],
                status,
                sent,
                fields["duration_ms"],
            )
