"""The management API ghcr.io lacks, under /api/v3/portside: what the `portside` command line does.

Package settings and collaborators, untagging, batch deletion, personal access tokens, users,
organizations, teams and the audit log. Authentication and the error shape are the packages API's
(`PackagesApi._actor`, `_answer`, `render.error`); the rules live in `portside.packages.manage`.
These handlers only turn JSON into arguments and results into JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portside.access import accounts as acc
from portside.access.audit import AuditEvent
from portside.access.policy import VISIBILITIES, Actor
from portside.clock import now
from portside.http.api import render
from portside.http.api.routes import ApiError, PackagesApi, _answer
from portside.packages import retention
from portside.packages.manage import MAX_BATCH, Collaborator, Management
from portside.registry import immutable
from portside.registry.quotas import Usage

PREFIX = "/api/v3/portside"
ROLES = ("read", "write", "admin")
ORG_ROLES = ("member", "owner")


class ManageApi:
    def __init__(self, api: PackagesApi, manage: Management) -> None:
        self.api = api  # authentication, the package service and the base URL, shared with the packages API
        self.manage = manage

    def routes(self) -> list[Route]:
        package = PREFIX + "/packages/{owner}/{name:path}"
        org = PREFIX + "/orgs/{org}"

        def route(path: str, handler: Any, *methods: str) -> Route:
            return Route(path, _answer(handler), methods=list(methods))

        return [
            # The package's name is a path: the longer patterns go first.
            route(package + "/collaborators/users/{username}", self.user_collaborator, "PUT", "DELETE"),
            route(package + "/collaborators/teams/{team}", self.team_collaborator, "PUT", "DELETE"),
            route(package + "/collaborators", self.collaborators, "GET"),
            route(package + "/immutable-tags", self.package_immutable_tags, "GET", "PUT"),
            route(package + "/retention/preview", self.retention_run, "POST"),
            route(package + "/retention/run", self.retention_run, "POST"),
            route(package + "/retention", self.package_retention, "GET", "PUT", "DELETE"),
            route(package + "/tags/{tag}", self.untag, "DELETE"),
            route(package + "/versions/delete", self.delete_versions, "POST"),
            route(package + "/versions/purge", self.purge_versions, "POST"),
            route(package, self.package_settings, "PATCH", "DELETE"),
            route(PREFIX + "/user/tokens", self.tokens, "GET", "POST"),
            route(PREFIX + "/user/tokens/{token_id:int}", self.revoke_token, "DELETE"),
            route(PREFIX + "/users", self.users, "GET", "POST"),
            route(PREFIX + "/users/{username}", self.user, "PATCH", "DELETE"),
            route(PREFIX + "/users/{username}/usage", self.user_usage, "GET"),
            route(PREFIX + "/users/{username}/tokens", self.user_tokens, "GET"),
            route(PREFIX + "/users/{username}/immutable-tags", self.owner_immutable_tags, "GET", "PUT"),
            route(PREFIX + "/users/{username}/retention", self.owner_retention, "GET", "PUT", "DELETE"),
            route(PREFIX + "/users/{username}/tokens/{token_id:int}", self.revoke_token, "DELETE"),
            route(PREFIX + "/orgs", self.orgs, "GET", "POST"),
            route(org, self.org_settings, "PATCH"),
            route(org + "/usage", self.org_usage, "GET"),
            route(org + "/immutable-tags", self.owner_immutable_tags, "GET", "PUT"),
            route(org + "/retention", self.owner_retention, "GET", "PUT", "DELETE"),
            route(org + "/members", self.members, "GET"),
            route(org + "/members/{username}", self.member, "PUT", "DELETE"),
            route(org + "/teams", self.teams, "GET", "POST"),
            route(org + "/teams/{team}/members/{username}", self.team_member, "PUT"),
            route(PREFIX + "/audit", self.audit, "GET"),
        ]

    async def _actor(self, request: Request) -> Actor:
        return await self.api.authenticate(request)

    async def _package(self, request: Request) -> tuple[Actor, str]:
        actor = await self._actor(request)
        return actor, f"{request.path_params['owner']}/{request.path_params['name']}"

    # -- packages ------------------------------------------------------------------------------

    async def package_settings(self, request: Request) -> Response:
        actor, name = await self._package(request)
        if request.method == "DELETE":
            return await self._delete_package(request, actor, name)
        body = await _object(request, '{"visibility": "private|internal|public"}', "visibility")
        visibility = _choice(body, "visibility", VISIBILITIES, required=True)
        await self.manage.set_visibility(actor, name, visibility)
        info = await self.api.packages.get(actor, name)
        return JSONResponse(render.package(self.api.base_url(request), info))

    async def collaborators(self, request: Request) -> Response:
        actor, name = await self._package(request)
        return JSONResponse([_collaborator(c) for c in await self.manage.collaborators(actor, name)])

    async def user_collaborator(self, request: Request) -> Response:
        return await self._collaborator(request, "user", request.path_params["username"])

    async def team_collaborator(self, request: Request) -> Response:
        return await self._collaborator(request, "team", request.path_params["team"])

    async def _collaborator(self, request: Request, kind: str, subject: str) -> Response:
        actor, name = await self._package(request)
        if request.method == "DELETE":
            await self.manage.remove_collaborator(actor, name, kind, subject)
            return Response(status_code=204)
        body = await _object(request, '{"role": "read|write|admin"}', "role")
        role = _choice(body, "role", ROLES, required=True)
        created = await self.manage.set_collaborator(actor, name, kind, subject, role)
        return JSONResponse(_collaborator(Collaborator(kind, subject, role)), status_code=201 if created else 200)

    async def untag(self, request: Request) -> Response:
        actor, name = await self._package(request)
        await self.manage.untag(actor, name, request.path_params["tag"])
        return Response(status_code=204)

    async def delete_versions(self, request: Request) -> Response:
        actor, name = await self._package(request)
        expected = '{"ids": [VERSION_ID, ...], "force": false}'
        body = await _object(request, expected, "ids", "force")
        ids = _version_ids(body, expected)
        force = _boolean(body, "force", expected) or False
        result = await self.manage.delete_versions(actor, name, ids, force=force)
        return JSONResponse(
            {"deleted": result.deleted, "failed": [{"id": i, "message": message} for i, message in result.failed]}
        )

    async def _delete_package(self, request: Request, actor: Actor, name: str) -> Response:
        permanent = request.query_params.get("permanent", "false")
        if permanent not in ("true", "false"):
            raise ApiError(400, f"Invalid request: permanent must be true or false, not {permanent!r}")
        if permanent == "false":  # as the packages API: restorable for the restore window
            await self.api.packages.delete(actor, name)
            return Response(status_code=204)
        versions = await self.manage.purge_package(actor, name)
        return JSONResponse({"purged": name, "versions": versions})

    async def purge_versions(self, request: Request) -> Response:
        actor, name = await self._package(request)
        expected = '{"ids": [VERSION_ID, ...]}'
        body = await _object(request, expected, "ids")
        ids = _version_ids(body, expected)
        purged = await self.manage.purge_versions(actor, name, list(dict.fromkeys(ids)))
        return JSONResponse({"purged": purged})

    # -- retention -----------------------------------------------------------------------------

    async def package_retention(self, request: Request) -> Response:
        actor, name = await self._package(request)
        if request.method == "GET":
            return JSONResponse((await self.manage.retention(actor, name)).as_json())
        policy = None if request.method == "DELETE" else await _policy(request)
        return JSONResponse((await self.manage.set_retention(actor, name, policy)).as_json())

    async def owner_retention(self, request: Request) -> Response:
        actor = await self._actor(request)
        params = request.path_params
        owner, kind = (params["org"], "org") if "org" in params else (params["username"], "user")
        if request.method == "GET":
            found = await self.manage.owner_retention(actor, owner, kind)
        else:
            policy = None if request.method == "DELETE" else await _policy(request)
            found = await self.manage.set_owner_retention(actor, owner, kind, policy)
        return JSONResponse({"owner": owner, "type": kind, "policy": found.as_json() if found else None})

    async def retention_run(self, request: Request) -> Response:
        actor, name = await self._package(request)
        dry_run = request.url.path.endswith("/preview")
        decisions = await self.manage.run_retention(actor, name, dry_run=dry_run)
        body: dict[str, Any] = {
            "package": name,
            "dry_run": dry_run,
            "delete": [d.as_json() for d in decisions if d.delete],
            "keep": [d.as_json() for d in decisions if not d.delete],
        }
        if not dry_run:
            body["deleted"] = len(body["delete"])
        return JSONResponse(body)

    # -- immutable tags ------------------------------------------------------------------------

    async def package_immutable_tags(self, request: Request) -> Response:
        actor, name = await self._package(request)
        if request.method == "GET":
            return JSONResponse(_package_rules(await self.manage.immutable_tags(actor, name)))
        patterns = await _patterns(request)
        return JSONResponse(_package_rules(await self.manage.set_immutable_tags(actor, name, patterns)))

    async def owner_immutable_tags(self, request: Request) -> Response:
        actor = await self._actor(request)
        params = request.path_params
        owner, kind = (params["org"], "org") if "org" in params else (params["username"], "user")
        if request.method == "GET":
            found = await self.manage.owner_immutable_tags(actor, owner, kind)
        else:
            patterns = await _patterns(request)
            found = await self.manage.set_owner_immutable_tags(actor, owner, kind, patterns)
        return JSONResponse({"owner": found.owner, "type": found.kind, "patterns": list(found.patterns)})

    # -- tokens --------------------------------------------------------------------------------

    async def tokens(self, request: Request) -> Response:
        actor = await self._actor(request)
        if request.method == "GET":
            return JSONResponse([_token(t) for t in await self.manage.tokens(actor)])
        expected = '{"note": "ci", "scopes": ["read:packages"], "expires": "30d", "only": ["OWNER/NAME", "OWNER/*"]}'
        body = await _object(request, expected, "note", "scopes", "expires", "only")
        note = body.get("note", "")
        if not isinstance(note, str) or len(note) > 255:
            raise ApiError(400, "Invalid request: note must be a string of at most 255 characters")
        scopes = _strings(body, "scopes", expected, required=True)
        expires = body.get("expires")
        if expires is not None and not isinstance(expires, str):
            raise ApiError(400, 'Invalid request: expires must be a duration such as "30d", "12h", or null')
        only = _strings(body, "only", expected)
        try:
            parsed_scopes = acc.parse_scopes(",".join(scopes or ()))
            lifetime = acc.parse_duration(expires) if expires is not None else None
            patterns = acc.parse_only(",".join(only)) if only is not None else None
        except acc.AccessError as exc:
            raise ApiError(400, f"Invalid request: {exc}") from None
        secret, info = await self.manage.create_token(
            actor, scopes=parsed_scopes, expires_in=lifetime, note=note, only=patterns
        )
        # The one place a secret is ever shown: this answer, once.
        return JSONResponse({**_token(info), "token": secret}, status_code=201)

    async def user_tokens(self, request: Request) -> Response:
        actor = await self._actor(request)
        found = await self.manage.tokens(actor, request.path_params["username"])
        return JSONResponse([_token(t) for t in found])

    async def revoke_token(self, request: Request) -> Response:
        actor = await self._actor(request)
        await self.manage.revoke_token(actor, request.path_params["token_id"], request.path_params.get("username"))
        return Response(status_code=204)

    # -- users ---------------------------------------------------------------------------------

    async def users(self, request: Request) -> Response:
        actor = await self._actor(request)
        if request.method == "GET":
            return JSONResponse([_user(u) for u in await self.manage.users(actor)])
        expected = '{"name": "alice", "site_admin": false}'
        body = await _object(request, expected, "name", "site_admin")
        name = _string(body, "name", expected)
        site_admin = _boolean(body, "site_admin", expected) or False
        return JSONResponse(_user(await self.manage.create_user(actor, name, site_admin=site_admin)), status_code=201)

    async def user(self, request: Request) -> Response:
        actor = await self._actor(request)
        name = request.path_params["username"]
        if request.method == "DELETE":
            await self.manage.delete_user(actor, name)
            return Response(status_code=204)
        expected = '{"storage_quota_bytes": 10737418240}'
        body = await _object(request, expected, "storage_quota_bytes")
        if "storage_quota_bytes" not in body:
            raise ApiError(400, f"Invalid request: nothing to change; send {expected}")
        quota = _quota(body)
        return JSONResponse(_user(await self.manage.set_storage_quota(actor, "user", name, quota)))

    async def user_usage(self, request: Request) -> Response:
        actor = await self._actor(request)
        return JSONResponse(_usage(await self.manage.usage(actor, "user", request.path_params["username"])))

    # -- organizations and teams ---------------------------------------------------------------

    async def orgs(self, request: Request) -> Response:
        actor = await self._actor(request)
        if request.method == "GET":
            return JSONResponse([_org(o.account, o.role) for o in await self.manage.orgs(actor)])
        expected = '{"name": "acme"}'
        name = _string(await _object(request, expected, "name"), "name", expected)
        return JSONResponse(_org(await self.manage.create_org(actor, name), "owner"), status_code=201)

    async def org_settings(self, request: Request) -> Response:
        actor = await self._actor(request)
        expected = (
            '{"container_registry": true, "allowed_visibilities": ["private", "internal", "public"], '
            '"storage_quota_bytes": 10737418240}'
        )
        body = await _object(request, expected, "container_registry", "allowed_visibilities", "storage_quota_bytes")
        enabled = _boolean(body, "container_registry", expected)
        allowed = _strings(body, "allowed_visibilities", expected)
        quota_given = "storage_quota_bytes" in body
        quota = _quota(body)
        if enabled is None and allowed is None and not quota_given:
            raise ApiError(400, f"Invalid request: nothing to change; send {expected}")
        org = request.path_params["org"]
        if quota_given:  # site admins only: refused before anything else changes
            await self.manage.allow_storage_quota(actor, "org", org)
        account = None
        if enabled is not None or allowed is not None:
            account = await self.manage.set_org(actor, org, registry_enabled=enabled, allowed_visibilities=allowed)
        if quota_given:
            account = await self.manage.set_storage_quota(actor, "org", org, quota)
        assert account is not None
        return JSONResponse(_org(account, None))

    async def org_usage(self, request: Request) -> Response:
        actor = await self._actor(request)
        return JSONResponse(_usage(await self.manage.usage(actor, "org", request.path_params["org"])))

    async def members(self, request: Request) -> Response:
        actor = await self._actor(request)
        found = await self.manage.members(actor, request.path_params["org"])
        return JSONResponse([{"name": name, "role": role} for name, role in found])

    async def member(self, request: Request) -> Response:
        actor = await self._actor(request)
        org, user = request.path_params["org"], request.path_params["username"]
        if request.method == "DELETE":
            await self.manage.remove_member(actor, org, user)
            return Response(status_code=204)
        body = await _object(request, '{"role": "member|owner"}', "role")
        role = _choice(body, "role", ORG_ROLES, required=False) or "member"
        created = await self.manage.set_member(actor, org, user, role)
        return JSONResponse({"org": org, "name": user, "role": role}, status_code=201 if created else 200)

    async def teams(self, request: Request) -> Response:
        actor = await self._actor(request)
        org = request.path_params["org"]
        if request.method == "GET":
            found = await self.manage.teams(actor, org)
            return JSONResponse([{"org": org, "name": team, "members": members} for team, members in found])
        expected = '{"name": "devs"}'
        team = _string(await _object(request, expected, "name"), "name", expected)
        await self.manage.create_team(actor, org, team)
        return JSONResponse({"org": org, "name": team, "members": []}, status_code=201)

    async def team_member(self, request: Request) -> Response:
        actor = await self._actor(request)
        params = request.path_params
        await _object(request, "no body (or {})")
        created = await self.manage.add_team_member(actor, params["org"], params["team"], params["username"])
        body = {"org": params["org"], "team": params["team"], "name": params["username"]}
        return JSONResponse(body, status_code=201 if created else 200)

    # -- audit ---------------------------------------------------------------------------------

    async def audit(self, request: Request) -> Response:
        actor = await self._actor(request)
        since = _since(request.query_params.get("since"))
        return JSONResponse([_event(e) for e in await self.manage.audit(actor, since)])


# -- JSON in ---------------------------------------------------------------------------------------


async def _object(request: Request, expected: str, *fields: str) -> dict[str, Any]:
    """The request's JSON object (an empty body is an empty object); anything else is a 400 that
    shows what is expected. Fields other than `fields` are refused, so that a misspelt one is not
    silently ignored."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, f"Problems parsing JSON: send a JSON object, {expected}")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(400, f"Invalid request: unknown field {', '.join(unknown)}; send {expected}")
    return body


async def _policy(request: Request) -> retention.Policy:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, f"Problems parsing JSON: send a JSON object, {retention.EXAMPLE}") from None
    try:
        return retention.parse(body)
    except retention.InvalidPolicy as exc:
        raise ApiError(400, f"Invalid request: {exc}") from None


async def _patterns(request: Request) -> tuple[str, ...]:
    expected = '{"patterns": ["v*", "release-*"]} ([] clears)'
    body = await _object(request, expected, "patterns")
    if "patterns" not in body:
        raise ApiError(400, f"Invalid request: patterns is required; send {expected}")
    try:
        return immutable.validate(body["patterns"])
    except immutable.InvalidPatterns as exc:
        raise ApiError(400, f"Invalid request: {exc}") from None


def _string(body: dict[str, Any], key: str, expected: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"Invalid request: {key} is required and must be a string; send {expected}")
    return value


def _boolean(body: dict[str, Any], key: str, expected: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, f"Invalid request: {key} must be true or false; send {expected}")
    return value


def _strings(body: dict[str, Any], key: str, expected: str, *, required: bool = False) -> list[str] | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ApiError(400, f"Invalid request: {key} must be a non-empty list of strings; send {expected}")
    return value


def _quota(body: dict[str, Any]) -> int | None:
    """storage_quota_bytes: a whole number of bytes, 0 or more, or null for the site's default."""
    value = body.get("storage_quota_bytes")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(
            400,
            "Invalid request: storage_quota_bytes must be a whole number of bytes, 0 or more (10 GiB is "
            f"10737418240), or null for the site's default; not {json.dumps(value)}",
        )
    return value


def _choice(body: dict[str, Any], key: str, choices: tuple[str, ...], *, required: bool) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if value not in choices:
        raise ApiError(400, f"Invalid request: {key} must be one of {', '.join(choices)}, not {json.dumps(value)}")
    return str(value)


def _since(value: str | None) -> datetime:
    """An ISO 8601 time (2026-01-01T00:00:00Z; UTC when no offset) or a duration back (24h, 7d)."""
    if value is None or value == "":
        return now() - timedelta(hours=24)
    try:
        return now() - acc.parse_duration(value)
    except acc.AccessError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        example = "a time such as 2026-01-01T00:00:00Z or a duration such as 24h"
        raise ApiError(400, f"Invalid request: since must be {example}, not {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# -- JSON out --------------------------------------------------------------------------------------


def _collaborator(c: Collaborator) -> dict[str, str]:
    return {"type": c.kind, "name": c.name, "role": c.role}


def _package_rules(setting: immutable.Setting) -> dict[str, Any]:
    return {
        "package": setting.package,
        "patterns": list(setting.own or ()),  # the package's own; [] when it has none
        "owner_default": list(setting.default or ()),
        "effective": list(setting.effective),
        "effective_from": setting.source,  # "package", "owner" or null (no tag is immutable)
    }


def _token(t: acc.TokenInfo) -> dict[str, Any]:
    return {
        "id": t.id,
        "user": t.user,
        "note": t.note,
        "prefix": t.prefix,
        "scopes": list(t.scopes),
        "only": list(t.only) if t.only is not None else None,
        "expires_at": render.timestamp(t.expires_at),
        "last_used_at": render.timestamp(t.last_used_at),
        "revoked_at": render.timestamp(t.revoked_at),
        "created_at": render.timestamp(t.created_at),
    }


def _user(u: acc.Account) -> dict[str, Any]:
    return {
        "name": u.name,
        "site_admin": u.is_site_admin,
        "has_password": u.has_password,
        "disabled": u.is_disabled,
        "created_at": render.timestamp(u.created_at),
        "storage_quota_bytes": u.storage_quota_bytes,  # null: the site's default
    }


def _org(o: acc.Account, role: str | None) -> dict[str, Any]:
    return {
        "name": o.name,
        "container_registry": o.registry_enabled,
        "allowed_visibilities": list(o.allowed_visibilities),
        "storage_quota_bytes": o.storage_quota_bytes,  # null: the site's default
        "created_at": render.timestamp(o.created_at),
        "role": role,  # the caller's role in the organization, if a member
    }


def _usage(u: Usage) -> dict[str, Any]:
    # A package's bytes count each of its blobs once; blobs its packages share count in each of them,
    # so the packages' sum can exceed used_bytes, which counts every blob once for the owner.
    return {
        "owner": u.owner,
        "type": u.kind,
        "used_bytes": u.used,
        "quota_bytes": u.quota.bytes,
        "quota_source": u.quota.source,
        "warning": u.warning,
        "packages": [
            {
                "name": p.name,
                "bytes": p.bytes,
                "versions": p.versions,
                "deleted_versions": p.deleted_versions,
                "deleted": p.deleted,
            }
            for p in u.packages
        ],
    }


def _event(e: AuditEvent) -> dict[str, Any]:
    return {
        "at": render.timestamp(e.at),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "client": e.client,
        "detail": e.detail,
    }


def _version_ids(body: dict[str, Any], expected: str) -> list[int]:
    ids = body.get("ids")
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)
    ):
        raise ApiError(400, f"Invalid request: ids must be a list of positive version ids; send {expected}")
    if len(ids) > MAX_BATCH:
        raise ApiError(400, f"Invalid request: at most {MAX_BATCH} ids in one call, not {len(ids)}")
    return ids
