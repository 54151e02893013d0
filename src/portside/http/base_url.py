"""The externally visible base URL, honouring X-Forwarded-* only from trusted proxies."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


class BaseUrl:
    def __init__(self, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self.trusted = trusted

    def _is_trusted(self, request: Request) -> bool:
        if not self.trusted or request.client is None:
            return False
        try:
            address = ipaddress.ip_address(request.client.host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def __call__(self, request: Request) -> str:
        scheme = request.url.scheme
        host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
        if self._is_trusted(request):
            scheme = request.headers.get("x-forwarded-proto", scheme).split(",")[0].strip() or scheme
            host = request.headers.get("x-forwarded-host", host).split(",")[0].strip() or host
        return f"{scheme}://{host}"
