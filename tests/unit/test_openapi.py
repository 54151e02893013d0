"""The OpenAPI document lists exactly the operations the API serves."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route

from portside.app import create_app
from portside.bootstrap import bootstrap
from portside.config import Settings
from portside.http.api.openapi import document
from portside.metadata.database import upgrade


def _served(tmp_path: Path) -> set[tuple[str, str]]:
    settings = Settings(data_dir=tmp_path)
    upgrade(settings.effective_database_url)  # what `portside serve` does before its workers start
    bootstrap(settings)
    app = create_app(settings)
    served = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/v3/") and route.path != "/api/v3/openapi.json":
            # Starlette's {name:path} and {name:int} are plain {name} in OpenAPI.
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path.removeprefix("/api/v3"))
            served |= {(method, path) for method in route.methods or () if method != "HEAD"}
    return served


def test_every_served_operation_is_documented_and_nothing_else(tmp_path: Path) -> None:
    documented = {(method.upper(), path) for path, ops in document()["paths"].items() for method in ops}
    assert _served(tmp_path) == documented


def test_every_operation_has_its_answers_and_a_reference_that_resolves() -> None:
    spec = document()
    schemas = spec["components"]["schemas"]
    text = repr(spec)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in schemas
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert {"401", "403", "404"} <= set(op["responses"]), (method, path)
            assert any(code.startswith("2") for code in op["responses"]), (method, path)
