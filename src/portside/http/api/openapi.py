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


# The URL fields of GitHub's simple-user, all required strings.
_USER_URLS = (
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
)

SCHEMAS: dict[str, Any] = {
    "BasicError": {
        "type": "object",
        "required": ["message", "documentation_url"],
        "properties": {"message": STRING, "documentation_url": STRING},
    },
    "SimpleUser": {
        "type": "object",
        "required": [*_USER_URLS, "login", "id", "node_id", "avatar_url", "gravatar_id", "type", "site_admin"],
        "properties": {
            **{key: STRING for key in (*_USER_URLS, "login", "node_id", "avatar_url", "gravatar_id", "user_view_type")},
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
                    "size": {**INTEGER, "description": "The manifest's bytes."},
                    "stored_size": {
                        **INTEGER,
                        "description": "What pulling it stores: manifests, configs and layers (every platform "
                        "of an index), each blob once.",
                    },
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

_TIME = {"type": ["string", "null"], "format": "date-time"}
_STRINGS = {"type": "array", "items": STRING}

_QUOTA = {"type": ["integer", "null"], "minimum": 0, "description": "bytes; null: the site's default"}
MANAGE_SCHEMAS: dict[str, Any] = {
    "RetentionPolicy": {
        "type": ["object", "null"],
        "properties": {
            "enabled": {"type": "boolean"},
            "keep_last_tagged": {"type": ["integer", "null"], "minimum": 0},
            "tag_pattern": STRING,
            "protected_tags": _STRINGS,
            "delete_untagged_after_days": {"type": ["integer", "null"], "minimum": 0},
            "keep_pulled_within_days": {"type": ["integer", "null"], "minimum": 0},
        },
    },
    "Retention": {
        "type": "object",
        "required": ["package", "policy", "owner_default", "effective", "effective_from"],
        "properties": {
            "package": STRING,
            "policy": _ref("RetentionPolicy"),
            "owner_default": _ref("RetentionPolicy"),
            "effective": _ref("RetentionPolicy"),
            "effective_from": {"type": "string", "enum": ["package", "owner", "none"]},
        },
    },
    "OwnerRetention": {
        "type": "object",
        "required": ["owner", "type", "policy"],
        "properties": {"owner": STRING, "type": STRING, "policy": _ref("RetentionPolicy")},
    },
    "RetentionRun": {
        "type": "object",
        "required": ["package", "dry_run", "delete", "keep"],
        "properties": {
            "package": STRING,
            "dry_run": {"type": "boolean"},
            "deleted": INTEGER,
            "delete": {"type": "array", "items": _ref("RetentionDecision")},
            "keep": {"type": "array", "items": _ref("RetentionDecision")},
        },
    },
    "RetentionDecision": {
        "type": "object",
        "required": ["id", "digest", "tags", "reason"],
        "properties": {"id": INTEGER, "digest": STRING, "tags": _STRINGS, "reason": STRING},
    },
    "ImmutableTags": {
        "type": "object",
        "required": ["package", "patterns", "owner_default", "effective", "effective_from"],
        "properties": {
            "package": {**STRING, "description": "OWNER/NAME"},
            "patterns": {**_STRINGS, "description": "The package's own patterns ([]: none, the owner's apply)"},
            "owner_default": {**_STRINGS, "description": "The owner's default patterns"},
            "effective": {**_STRINGS, "description": "What pushes and deletions are checked against"},
            "effective_from": {"type": ["string", "null"], "enum": ["package", "owner", None]},
        },
    },
    "OwnerImmutableTags": {
        "type": "object",
        "required": ["owner", "type", "patterns"],
        "properties": {
            "owner": STRING,
            "type": {"type": "string", "enum": ["user", "org"]},
            "patterns": {**_STRINGS, "description": "The default for every package of the owner"},
        },
    },
    "Collaborator": {
        "type": "object",
        "required": ["type", "name", "role"],
        "properties": {
            "type": {"type": "string", "enum": ["user", "team"]},
            "name": {**STRING, "description": "A user, or a team of the package's organization"},
            "role": {"type": "string", "enum": ["read", "write", "admin"]},
        },
    },
    "VersionPurge": {
        "type": "object",
        "required": ["purged"],
        "properties": {"purged": {"type": "array", "items": INTEGER}},
    },
    "PackagePurge": {
        "type": "object",
        "required": ["purged", "versions"],
        "properties": {"purged": STRING, "versions": INTEGER},
    },
    "VersionDeletion": {
        "type": "object",
        "required": ["deleted", "failed"],
        "properties": {
            "deleted": {"type": "array", "items": INTEGER},
            "failed": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "message"],
                    "properties": {"id": INTEGER, "message": STRING},
                },
            },
        },
    },
    "Token": {
        "type": "object",
        "required": ["id", "user", "note", "prefix", "scopes", "only", "expires_at", "created_at"],
        "properties": {
            "id": INTEGER,
            "user": STRING,
            "note": STRING,
            "prefix": {**STRING, "description": "The token's first characters, to tell tokens apart"},
            "scopes": _STRINGS,
            "only": {"type": ["array", "null"], "items": STRING},
            "expires_at": _TIME,
            "last_used_at": _TIME,
            "revoked_at": _TIME,
            "created_at": DATE_TIME,
        },
    },
    "NewToken": {
        "allOf": [
            _ref("Token"),
            {
                "type": "object",
                "required": ["token"],
                "properties": {"token": {**STRING, "description": "The secret: shown in this answer only"}},
            },
        ]
    },
    "User": {
        "type": "object",
        "required": ["name", "site_admin", "has_password", "disabled", "created_at"],
        "properties": {
            "name": STRING,
            "site_admin": BOOLEAN,
            "has_password": BOOLEAN,
            "disabled": BOOLEAN,
            "created_at": DATE_TIME,
            "storage_quota_bytes": _QUOTA,
        },
    },
    "Organization": {
        "type": "object",
        "required": ["name", "container_registry", "allowed_visibilities", "created_at", "role"],
        "properties": {
            "name": STRING,
            "container_registry": {**BOOLEAN, "description": "Whether the organization's registry is enabled"},
            "allowed_visibilities": {
                "type": "array",
                "items": {"type": "string", "enum": ["private", "internal", "public"]},
            },
            "storage_quota_bytes": _QUOTA,
            "created_at": DATE_TIME,
            "role": {"type": ["string", "null"], "enum": ["member", "owner", None], "description": "the caller's"},
        },
    },
    "Usage": {
        "type": "object",
        "required": ["owner", "type", "used_bytes", "quota_bytes", "quota_source", "warning", "packages"],
        "properties": {
            "owner": STRING,
            "type": {"type": "string", "enum": ["user", "org"]},
            "used_bytes": {
                "type": "integer",
                "description": "distinct blobs of the owner's live and restorable versions, each once",
            },
            "quota_bytes": {"type": ["integer", "null"], "description": "null: unlimited"},
            "quota_source": {"type": "string", "enum": ["owner", "site", "none"]},
            "warning": {**BOOLEAN, "description": "used_bytes is at or above the warning share of the quota"},
            "packages": {
                "type": "array",
                "description": "each package's blobs once; shared blobs count in each package, so the sum "
                "can exceed used_bytes",
                "items": {
                    "type": "object",
                    "required": ["name", "bytes", "versions", "deleted_versions", "deleted"],
                    "properties": {
                        "name": STRING,
                        "bytes": {"type": "integer"},
                        "versions": {"type": "integer", "description": "live versions"},
                        "deleted_versions": {"type": "integer", "description": "deleted, restorable versions"},
                        "deleted": {**BOOLEAN, "description": "a deleted, restorable package"},
                    },
                },
            },
        },
    },
    "Member": {
        "type": "object",
        "required": ["name", "role"],
        "properties": {"org": STRING, "name": STRING, "role": {"type": "string", "enum": ["member", "owner"]}},
    },
    "Team": {
        "type": "object",
        "required": ["org", "name", "members"],
        "properties": {"org": STRING, "name": STRING, "members": _STRINGS},
    },
    "TeamMember": {
        "type": "object",
        "required": ["org", "team", "name"],
        "properties": {"org": STRING, "team": STRING, "name": STRING},
    },
    "AuditEvent": {
        "type": "object",
        "required": ["at", "actor", "action", "target", "client", "detail"],
        "properties": {
            "at": DATE_TIME,
            "actor": STRING,
            "action": {**STRING, "description": "e.g. token.create, package.visibility, org.member"},
            "target": STRING,
            "client": STRING,
            "detail": {"type": ["object", "null"]},
        },
    },
}
SCHEMAS.update(MANAGE_SCHEMAS)

_ERRORS = {
    "400": "Invalid request (a parameter is malformed, or page x per_page > 10000)",
    "401": "Requires authentication, or bad credentials",
    "403": "Forbidden: the token lacks a scope or the user a role",
    "404": "Not found (also what a package you may not see looks like)",
    "429": "Too many failed sign-in attempts from this address; retry after Retry-After seconds",
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


_MANAGE_ERRORS = {
    "400": "Invalid request: the body is not the JSON expected (the message shows it), or a name is invalid",
    "401": "Requires authentication, or bad credentials",
    "403": "Forbidden: the message says which role or scope is missing",
    "404": "Not found (also what a package you may not see looks like)",
    "409": "Conflict: the name is taken, or the change would leave an organization without an owner",
    "429": _ERRORS["429"],
}


def _manage(
    summary: str,
    who: str,
    ok: dict[str, Any],
    params: list[dict[str, Any]],
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "description": who,
        "parameters": params,
        "responses": {**ok, **{code: _response(text, _ref("BasicError")) for code, text in _MANAGE_ERRORS.items()}},
        "security": [{"token": []}],
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _body(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def manage_paths() -> dict[str, Any]:
    """/api/v3/portside: what the `portside` command line does (see docs/management-api.md)."""
    one = [
        _param("owner", "path", STRING, "a user or an organization"),
        _param("name", "path", STRING, "the package's name without the owner; nested names as a path (tools/hello)"),
    ]
    package = "/portside/packages/{owner}/{name}"
    org = "/portside/orgs/{org}"
    org_param = _param("org", "path", STRING)
    username = _param("username", "path", STRING)
    token_id = _param("token_id", "path", INTEGER)
    team = _param("team", "path", STRING, "a team of the package's organization")
    admin_write = "Package admin; write:packages."
    retention_body = {**_ref("RetentionPolicy"), "description": "every field optional; unknown fields refused"}
    patterns_body = _body(
        ["patterns"],
        patterns={
            "type": "array",
            "maxItems": 50,
            "items": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_.*?\\[\\]-]+$"},
            "description": "Shell-style globs on tag names (fnmatch, case-sensitive)",
        },
    )
    role_body = _body(["role"], role={"type": "string", "enum": ["read", "write", "admin"]})
    collaborator = {
        "put": _manage(
            "Give a collaborator a role on a package",
            admin_write,
            {
                "200": _response("Role changed", _ref("Collaborator")),
                "201": _response("Role given", _ref("Collaborator")),
            },
            [],
            role_body,
        ),
        "delete": _manage(
            "Take a collaborator's role on a package away", admin_write, {"204": _response("Removed")}, []
        ),
    }
    token_body = _body(
        ["scopes"],
        note={"type": "string", "maxLength": 255},
        scopes={
            "type": "array",
            "items": {"type": "string", "enum": ["read:packages", "write:packages", "delete:packages"]},
        },
        expires={"type": ["string", "null"], "description": "a lifetime such as 30d, 12h, 90m; null never expires"},
        only={"type": ["array", "null"], "items": STRING, "description": "OWNER/NAME or OWNER/* patterns"},
    )
    paths: dict[str, Any] = {
        package: {
            "patch": _manage(
                "Change a package's visibility",
                admin_write + " The organization's allowed visibilities apply (403 otherwise).",
                {"200": _response("OK", _ref("Package"))},
                one,
                _body(["visibility"], visibility={"type": "string", "enum": ["private", "internal", "public"]}),
            ),
            "delete": _manage(
                "Delete a package: restorably, or for good with ?permanent=true",
                "Package admin; read:packages and delete:packages. Permanently: every version goes now, with no "
                "restore window, and its blobs with the next garbage collection pass (docs/lifecycle.md).",
                {
                    "200": _response("Deleted for good", _ref("PackagePurge")),
                    "204": _response("Deleted; restorable for the restore window"),
                },
                [*one, _param("permanent", "query", {"type": "boolean", "default": False})],
            ),
        },
        f"{package}/collaborators": {
            "get": _manage(
                "List a package's collaborators (explicit grants)",
                admin_write,
                {"200": _response("OK", _array("Collaborator"))},
                one,
            )
        },
        f"{package}/collaborators/users/{{username}}": {
            method: {**op, "parameters": [*one, username]} for method, op in collaborator.items()
        },
        f"{package}/collaborators/teams/{{team}}": {
            method: {**op, "parameters": [*one, team]} for method, op in collaborator.items()
        },
        f"{package}/immutable-tags": {
            "get": _manage(
                "A package's immutable-tag patterns: its own, its owner's default, the effective ones",
                "Anyone who may pull the package; read:packages.",
                {"200": _response("OK", _ref("ImmutableTags"))},
                one,
            ),
            "put": _manage(
                "Set a package's immutable-tag patterns (they replace the owner's default; [] clears)",
                admin_write,
                {"200": _response("OK", _ref("ImmutableTags"))},
                one,
                patterns_body,
            ),
        },
        f"{package}/retention": {
            "get": _manage(
                "A package's retention policy: its own, its owner's default, the one that applies",
                "Anyone who may pull the package; read:packages.",
                {"200": _response("OK", _ref("Retention"))},
                one,
            ),
            "put": _manage(
                "Set a package's retention policy (it replaces the owner's default)",
                admin_write,
                {"200": _response("OK", _ref("Retention"))},
                one,
                retention_body,
            ),
            "delete": _manage(
                "Remove a package's own retention policy (the owner's default applies again)",
                admin_write,
                {"200": _response("OK", _ref("Retention"))},
                one,
            ),
        },
        f"{package}/retention/preview": {
            "post": _manage(
                "What the retention policy would delete and keep now, each with the reason",
                "Anyone who may pull the package; read:packages.",
                {"200": _response("OK", _ref("RetentionRun"))},
                one,
            )
        },
        f"{package}/retention/run": {
            "post": _manage(
                "Run the retention policy now (deletions are restorable for the restore window)",
                "Package admin; read:packages and delete:packages.",
                {"200": _response("OK", _ref("RetentionRun"))},
                one,
            )
        },
        f"{package}/tags/{{tag}}": {
            "delete": _manage(
                "Remove a tag (the version stays)",
                "Package admin; read:packages and delete:packages.",
                {"204": _response("Untagged")},
                [*one, _param("tag", "path", STRING)],
            )
        },
        f"{package}/versions/delete": {
            "post": _manage(
                "Delete many versions in one call",
                "Package admin; read:packages and delete:packages. Each id as DELETE .../versions/{id}.",
                {"200": _response("Per-id results", _ref("VersionDeletion"))},
                one,
                _body(
                    ["ids"],
                    ids={"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 100},
                    force={"type": "boolean", "default": False},
                ),
            )
        },
        f"{package}/versions/purge": {
            "post": _manage(
                "Delete versions for good (no restore window)",
                "Package admin; read:packages and delete:packages. With a multi-platform index go its platform "
                "images that nothing else lists or tags, and every version's referrers; blobs go with the next "
                "garbage collection pass.",
                {"200": _response("The ids deleted", _ref("VersionPurge"))},
                one,
                _body(
                    ["ids"],
                    ids={"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 100},
                ),
            )
        },
        "/portside/user/tokens": {
            "get": _manage(
                "List your tokens (never their secrets)", "Any token.", {"200": _response("OK", _array("Token"))}, []
            ),
            "post": _manage(
                "Create a token",
                "A token creates only tokens within its own scopes and `only` packages.",
                {"201": _response("Created; the secret is in `token`, shown once", _ref("NewToken"))},
                [],
                token_body,
            ),
        },
        "/portside/user/tokens/{token_id}": {
            "delete": _manage(
                "Revoke one of your tokens",
                "The token itself, or a token within the caller's scopes and packages.",
                {"204": _response("Revoked")},
                [token_id],
            )
        },
        "/portside/users": {
            "get": _manage("List users", "Site admin; read:packages.", {"200": _response("OK", _array("User"))}, []),
            "post": _manage(
                "Create a user",
                "Site admin; write:packages.",
                {"201": _response("Created", _ref("User"))},
                [],
                _body(["name"], name=STRING, site_admin={"type": "boolean", "default": False}),
            ),
        },
        "/portside/users/{username}": {
            "patch": _manage(
                "Set a user's storage quota",
                "Site admin; write:packages.",
                {"200": _response("OK", _ref("User"))},
                [username],
                _body(["storage_quota_bytes"], storage_quota_bytes=_QUOTA),
            ),
            "delete": _manage(
                "Delete a user, its tokens and its packages",
                "Site admin; write:packages. Not yourself.",
                {"204": _response("Deleted")},
                [username],
            ),
        },
        "/portside/users/{username}/usage": {
            "get": _manage(
                "A user's storage usage and quota, and each package's share",
                "The user themself or a site admin; read:packages.",
                {"200": _response("OK", _ref("Usage"))},
                [username],
            )
        },
        "/portside/users/{username}/retention": {
            method: _manage(
                summary,
                "The user themself or a site admin.",
                {"200": _response("OK", _ref("OwnerRetention"))},
                [username],
                *([retention_body] if method == "put" else []),
            )
            for method, summary in (
                ("get", "The retention default of every package of a user"),
                ("put", "Set the retention default of every package of a user"),
                ("delete", "Remove the retention default of a user"),
            )
        },
        "/portside/users/{username}/immutable-tags": {
            "get": _manage(
                "The immutable-tag default of every package of a user",
                "The user themself or a site admin; read:packages.",
                {"200": _response("OK", _ref("OwnerImmutableTags"))},
                [username],
            ),
            "put": _manage(
                "Set the immutable-tag default of every package of a user ([] clears)",
                "The user themself or a site admin; write:packages.",
                {"200": _response("OK", _ref("OwnerImmutableTags"))},
                [username],
                patterns_body,
            ),
        },
        "/portside/users/{username}/tokens": {
            "get": _manage(
                "List a user's tokens",
                "Site admin; read:packages.",
                {"200": _response("OK", _array("Token"))},
                [username],
            )
        },
        "/portside/users/{username}/tokens/{token_id}": {
            "delete": _manage(
                "Revoke a user's token",
                "Site admin; write:packages.",
                {"204": _response("Revoked")},
                [username, token_id],
            )
        },
        "/portside/orgs": {
            "get": _manage(
                "List organizations",
                "Site admins see all, others their own; read:packages.",
                {"200": _response("OK", _array("Organization"))},
                [],
            ),
            "post": _manage(
                "Create an organization (you become its owner)",
                "Anyone signed in; write:packages.",
                {"201": _response("Created", _ref("Organization"))},
                [],
                _body(["name"], name=STRING),
            ),
        },
        org: {
            "patch": _manage(
                "Change an organization's settings",
                "Organization owner or site admin; write:packages.",
                {"200": _response("OK", _ref("Organization"))},
                [org_param],
                _body(
                    [],
                    container_registry=BOOLEAN,
                    allowed_visibilities={
                        "type": "array",
                        "items": {"type": "string", "enum": ["private", "internal", "public"]},
                    },
                    storage_quota_bytes={**_QUOTA, "description": "site admins only; bytes, null: the site's default"},
                ),
            )
        },
        f"{org}/retention": {
            method: _manage(
                summary,
                who,
                {"200": _response("OK", _ref("OwnerRetention"))},
                [org_param],
                *([retention_body] if method == "put" else []),
            )
            for method, summary, who in (
                ("get", "The retention default of every package of an organization", "Organization member."),
                ("put", "Set the retention default of every package of an organization", "Organization owner."),
                ("delete", "Remove the retention default of an organization", "Organization owner."),
            )
        },
        f"{org}/usage": {
            "get": _manage(
                "An organization's storage usage and quota, and each package's share",
                "Organization member or site admin; read:packages.",
                {"200": _response("OK", _ref("Usage"))},
                [org_param],
            )
        },
        f"{org}/immutable-tags": {
            "get": _manage(
                "The immutable-tag default of every package of an organization",
                "Organization member or site admin; read:packages.",
                {"200": _response("OK", _ref("OwnerImmutableTags"))},
                [org_param],
            ),
            "put": _manage(
                "Set the immutable-tag default of every package of an organization ([] clears)",
                "Organization owner or site admin; write:packages.",
                {"200": _response("OK", _ref("OwnerImmutableTags"))},
                [org_param],
                patterns_body,
            ),
        },
        f"{org}/members": {
            "get": _manage(
                "List an organization's members",
                "Organization member or site admin; read:packages.",
                {"200": _response("OK", _array("Member"))},
                [org_param],
            )
        },
        f"{org}/members/{{username}}": {
            "put": _manage(
                "Add a member or change a member's role",
                "Organization owner or site admin; write:packages.",
                {"200": _response("Role changed", _ref("Member")), "201": _response("Added", _ref("Member"))},
                [org_param, username],
                _body([], role={"type": "string", "enum": ["member", "owner"], "default": "member"}),
            ),
            "delete": _manage(
                "Remove a member (and from the organization's teams)",
                "Organization owner or site admin; write:packages.",
                {"204": _response("Removed")},
                [org_param, username],
            ),
        },
        f"{org}/teams": {
            "get": _manage(
                "List an organization's teams and their members",
                "Organization member or site admin; read:packages.",
                {"200": _response("OK", _array("Team"))},
                [org_param],
            ),
            "post": _manage(
                "Create a team",
                "Organization owner or site admin; write:packages.",
                {"201": _response("Created", _ref("Team"))},
                [org_param],
                _body(["name"], name=STRING),
            ),
        },
        f"{org}/teams/{{team}}/members/{{username}}": {
            "put": _manage(
                "Add an organization member to a team",
                "Organization owner or site admin; write:packages.",
                {
                    "200": _response("Already a member", _ref("TeamMember")),
                    "201": _response("Added", _ref("TeamMember")),
                },
                [org_param, _param("team", "path", STRING), username],
            )
        },
        "/portside/audit": {
            "get": _manage(
                "Read the audit log",
                "Site admin; read:packages.",
                {"200": _response("OK", _array("AuditEvent"))},
                [
                    _param(
                        "since",
                        "query",
                        STRING,
                        "2026-01-01T00:00:00Z (UTC when no offset) or a duration back such as 24h, 7d; default 24h",
                    )
                ],
            )
        },
    }
    return paths


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
    paths.update(manage_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Portside packages API",
            "version": "1",
            "description": (
                "GitHub's REST API for container packages, as ghcr.io serves it, under /api/v3; and under "
                "/api/v3/portside the management API ghcr.io lacks (tokens, users, organizations, teams, "
                "package settings, audit log)."
            ),
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
