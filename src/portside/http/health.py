"""Liveness and readiness: `/healthz` answers while the process serves; `/readyz` says whether the
stores can do their work, so a load balancer stops sending traffic to a replica that cannot."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portside.blobs.store import BlobStore
from portside.metadata.database import Database


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@dataclass(frozen=True)
class Health:
    db: Database
    store: BlobStore

    def routes(self) -> list[Route]:
        return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", self.readyz, methods=["GET"])]

    async def readyz(self, _request: Request) -> Response:
        checks = {"database": await self.db.check(), "storage": await self.store.check()}
        ready = all(problem is None for problem in checks.values())
        body = {
            "status": "ready" if ready else "not ready",
            "checks": {name: problem or "ok" for name, problem in checks.items()},
        }
        return JSONResponse(body, status_code=200 if ready else 503)
