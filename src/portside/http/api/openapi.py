"""The OpenAPI document for /api/v3, and a browsable page of it at /api/docs.

tests/unit/test_openapi.py checks that every route under /api/v3 is documented here and nothing else is.
"""

from __future__ import annotations

import html
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_STRING = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "BasicError": {
        "type": "object",
        "required": ["message", "documentation_url"],
        "properties": {"message": STRING, "documentation_url": STRING},
    },
    "SimpleUser": {
        "type": "object",
        "required": [
            "login",
            "id",
            "node_id",
            "avatar_url",
            "gravatar_id",
            "url",
            "html_url",
            "followers_url",
            "following_url",
            "gists_url",
            "starred_url",
            "subscriptions_url",
            "organizations_url",
            "repos_url",
            "events_url",
            "received_events_url",
            "type",
            "site_admin",
        ],
        "properties": {
            **{
                key: STRING
                for key in (
                    "login",
                    "node_id",
                    "avatar_url",
                    "gravatar_id",
                    "url",
                    "html_url",
                    "followers_url",
                    "following_url",
                    "gists_url",
                    "starred_url",
                    "subscriptions_url",
                    "organizations_url",
                    "repos_url",
                    "events_url",
                    "received_events_url",
                    "user_view_type",
                )
            },
            "id": INTEGER,
            "type": {"type": "string", "enum": ["User", "Organization"]},
            "site_admin": BOOLEAN,
        },
    },
    "Package": {
        "type": "object",
        "required": [
            "id",
            "name",
            "package_type",
            "visibility",
            "url",
            "html_url",
            "version_count",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": INTEGER,
            "name": {**STRING, "description": "The name without the owner, e.g. hello or tools/hello."},
            "package_type": {"type": "string", "enum": ["container"]},
            "owner": _ref("SimpleUser"),
            "version_count": INTEGER,
            "visibility": {"type": "string", "enum": ["private", "public"], "description": "internal shows as private"},
            "url": STRING,
            "html_url": STRING,
            "created_at": DATE_TIME,
            "updated_at": DATE_TIME,
            "repository": {"type": "null"},
            "portside": {
                "type": "object",
                "description": "What ghcr.io has no field for.",
                "properties": {
                    "visibility": {"type": "string", "enum": ["private", "internal", "public"]},
                    "description": NULLABLE_STRING,
                    "source_url": NULLABLE_STRING,
                    "licenses": NULLABLE_STRING,
                    "download_count": INTEGER,
                    "deleted_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        },
    },
    "PackageVersion": {
        "type": "object",
        "required": ["id", "name", "url", "package_html_url", "created_at", "updated_at"],
        "properties": {
            "id": INTEGER,
            "name": {**STRING, "description": "The manifest digest."},
            "url": STRING,
            "package_html_url": STRING,
            "html_url": STRING,
            "created_at": DATE_TIME,
            "updated_at": DATE_TIME,
            "deleted_at": DATE_TIME,
            "description": STRING,
            "license": STRING,
            "metadata": {
                "type": "object",
                "required": ["package_type"],
                "properties": {
                    "package_type": {"type": "string", "enum": ["container"]},
                    "container": {
                        "type": "object",
                        "required": ["tags"],
                        "properties": {"tags": {"type": "array", "items": STRING}},
                    },
                },
            },
            "portside": {
                "type": "object",
                "properties": {
                    "media_type": STRING,
                    "size": INTEGER,
                    "platform": {**NULLABLE_STRING, "description": "os/architecture[/variant] of an image"},
                    "indexes": {
                        "type": "array",
                        "items": STRING,
                        "description": "Digests of the live multi-platform indexes that list this version.",
                    },
                    "download_count": INTEGER,
                    "source_url": NULLABLE_STRING,
                },
            },
        },
    },
}

_ERRORS = {
    "400": "Invalid request (a parameter is malformed, or page x per_page > 10000)",
    "401": "Requires authentication, or bad credentials",
    "403": "Forbidden: the token lacks a scope or the user a role",
    "404": "Not found (also what a package you may not see looks like)",
}


def _response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = {"application/json": {"schema": schema}}
    return answer


def _operation(
    summary: str, scope: str, ok: dict[str, Any], params: list[dict[str, Any]], *extra: str
) -> dict[str, Any]:
    responses = {code: _response(text, _ref("BasicError")) for code, text in _ERRORS.items()}
    for code in extra:
        responses[code] = _response(
            "Conflict: the name was reused, or the version is part of a multi-platform image", _ref("BasicError")
        )
    return {
        "summary": summary,
        "description": f"Needs the {scope} scope.",
        "parameters": params,
        "responses": {**ok, **responses},
        "security": [{"token": []}],
    }


def _param(
    name: str, where: str, schema: dict[str, Any], description: str = "", required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path" or required,
        "schema": schema,
        "description": description,
    }


def document() -> dict[str, Any]:
    paging = [
        _param("page", "query", {"type": "integer", "minimum": 1, "default": 1}),
        _param("per_page", "query", {"type": "integer", "minimum": 1, "maximum": 100, "default": 30}),
    ]
    package_type = _param("package_type", "path", {"type": "string", "enum": ["container"]})
    package_name = _param("package_name", "path", STRING, "URL-encoded when nested, e.g. tools%2Fhello")
    version_id = _param("version_id", "path", INTEGER)
    owners = {
        "/user": ([], "the authenticated user's"),
        "/users/{username}": ([_param("username", "path", STRING)], "a user's"),
        "/orgs/{org}": ([_param("org", "path", STRING)], "an organization's"),
    }
    paths: dict[str, Any] = {}
    for prefix, (owner, whose) in owners.items():
        one = [*owner, package_type, package_name]
        base = f"{prefix}/packages/{{package_type}}/{{package_name}}"
        listing = [
            *owner,
            _param("package_type", "query", {"type": "string"}, "container (other types list nothing)", True),
            _param("visibility", "query", {"type": "string", "enum": ["public", "private", "internal"]}),
            _param("state", "query", {"type": "string", "enum": ["active", "deleted"], "default": "active"}),
            *paging,
        ]
        packages = {"type": "array", "items": _ref("Package")}
        versions = {"type": "array", "items": _ref("PackageVersion")}
        state = _param("state", "query", {"type": "string", "enum": ["active", "deleted"], "default": "active"})
        force = _param("force", "query", BOOLEAN, "delete even if a live multi-platform index lists it")
        paths[f"{prefix}/packages"] = {
            "get": _operation(f"List {whose} packages", "read:packages", {"200": _response("OK", packages)}, listing)
        }
        paths[base] = {
            "get": _operation("Get a package", "read:packages", {"200": _response("OK", _ref("Package"))}, one),
            "delete": _operation("Delete a package", "delete:packages", {"204": _response("Deleted")}, one),
        }
        paths[f"{base}/restore"] = {
            "post": _operation("Restore a package", "write:packages", {"204": _response("Restored")}, one, "409")
        }
        paths[f"{base}/versions"] = {
            "get": _operation(
                "List package versions", "read:packages", {"200": _response("OK", versions)}, [*one, state, *paging]
            )
        }
        paths[f"{base}/versions/{{version_id}}"] = {
            "get": _operation(
                "Get a package version",
                "read:packages",
                {"200": _response("OK", _ref("PackageVersion"))},
                [*one, version_id],
            ),
            "delete": _operation(
                "Delete a package version",
                "delete:packages",
                {"204": _response("Deleted")},
                [*one, version_id, force],
                "409",
            ),
        }
        paths[f"{base}/versions/{{version_id}}/restore"] = {
            "post": _operation(
                "Restore a package version",
                "write:packages",
                {"204": _response("Restored; header Portside-Tags-Not-Restored names tags that moved meanwhile")},
                [*one, version_id],
            )
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Portside packages API",
            "version": "1",
            "description": "GitHub's REST API for container packages, as ghcr.io serves it, under /api/v3.",
        },
        "servers": [{"url": "/api/v3"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "description": "a personal access token"}
            },
        },
    }


async def openapi_json(_request: Request) -> JSONResponse:
    return JSONResponse(document())


async def docs_page(_request: Request) -> HTMLResponse:
    """The document as a plain page: every operation, its parameters and answers; no scripts."""
    spec = document()
    rows = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            params = ", ".join(f"{p['name']} ({p['in']})" for p in op["parameters"]) or "none"
            codes = ", ".join(op["responses"])
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>/api/v3{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}. {html.escape(op['description'])}</td>"
                f"<td>{html.escape(params)}</td><td>{codes}</td></tr>"
            )
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'><title>Portside API</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328}table{border-collapse:collapse}"
        "td,th{border:1px solid #d0d7de;padding:.4rem;text-align:left;vertical-align:top}</style></head><body>"
        "<h1>Portside packages API</h1><p>GitHub's REST API for container packages. Machine-readable: "
        "<a href='/api/v3/openapi.json'>/api/v3/openapi.json</a>. Authenticate with "
        "<code>Authorization: Bearer &lt;personal access token&gt;</code>.</p>"
        "<table><thead><tr><th>Method</th><th>Path</th><th>What</th><th>Parameters</th><th>Answers</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></body></html>"
    )
    return HTMLResponse(body)
