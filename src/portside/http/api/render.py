"""GitHub's JSON shapes for packages (`Package`, `PackageVersion`, `simple-user`), with Portside's extras.

Field names and types follow GitHub's REST schema closely enough for strict clients (githubkit
validates every required field). What ghcr.io has no field for sits under a "portside" key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from portside.packages.service import Owner, PackageInfo, VersionInfo

DOCS = "https://docs.github.com/rest/packages/packages"


def timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def owner_path(owner: Owner) -> str:
    return f"{'orgs' if owner.kind == 'org' else 'users'}/{owner.login}"


def simple_user(base: str, owner: Owner) -> dict[str, object]:
    api, login = f"{base}/api/v3", owner.login
    user = f"{api}/users/{login}"
    return {
        "login": login,
        "id": owner.id,
        "node_id": f"{'O' if owner.kind == 'org' else 'U'}_{owner.id}",
        "avatar_url": "",
        "gravatar_id": "",
        "url": user,
        "html_url": f"{base}/{owner_path(owner)}/packages",
        "followers_url": f"{user}/followers",
        "following_url": f"{user}/following{{/other_user}}",
        "gists_url": f"{user}/gists{{/gist_id}}",
        "starred_url": f"{user}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{user}/subscriptions",
        "organizations_url": f"{user}/orgs",
        "repos_url": f"{user}/repos",
        "events_url": f"{user}/events{{/privacy}}",
        "received_events_url": f"{user}/received_events",
        "type": "Organization" if owner.kind == "org" else "User",
        "site_admin": owner.site_admin,
        "user_view_type": "public",
    }


def package_url(base: str, package: PackageInfo) -> str:
    return f"{base}/api/v3/{owner_path(package.owner)}/packages/container/{quote(package.name, safe='')}"


def package_html_url(base: str, package: PackageInfo) -> str:
    return f"{base}/{owner_path(package.owner)}/packages/container/package/{package.name}"


def package(base: str, info: PackageInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "name": info.name,
        "package_type": "container",
        "owner": simple_user(base, info.owner),
        "version_count": info.version_count,
        # GitHub's schema knows private and public; an internal package is private to outsiders.
        "visibility": "public" if info.visibility == "public" else "private",
        "url": package_url(base, info),
        "created_at": timestamp(info.created_at),
        "updated_at": timestamp(info.updated_at),
        "html_url": package_html_url(base, info),
        "repository": None,
        "portside": {
            "visibility": info.visibility,
            "description": info.description,
            "source_url": info.source_url,
            "licenses": info.licenses,
            "download_count": info.downloads,
            "deleted_at": timestamp(info.deleted_at),
        },
    }


def version(base: str, info: PackageInfo, v: VersionInfo) -> dict[str, object]:
    body: dict[str, object] = {
        "id": v.id,
        "name": v.digest,
        "url": f"{package_url(base, info)}/versions/{v.id}",
        "package_html_url": package_html_url(base, info),
        "html_url": f"{base}/{owner_path(info.owner)}/packages/container/{info.name}/{v.id}",
        "created_at": timestamp(v.created_at),
        "updated_at": timestamp(v.updated_at),
        "metadata": {"package_type": "container", "container": {"tags": v.tags}},
        "portside": {
            "media_type": v.media_type,
            "size": v.size,
            "stored_size": v.stored_size,
            "platform": v.platform,
            "indexes": v.indexes,
            "download_count": v.downloads,
            "source_url": v.source_url,
        },
    }
    # Optional in GitHub's schema, and typed as strings there: present only when known.
    if v.deleted_at is not None:
        body["deleted_at"] = timestamp(v.deleted_at)
    if v.description:
        body["description"] = v.description
    if v.licenses:
        body["license"] = v.licenses
    return body


def error(message: str, reason: str | None = None) -> dict[str, str]:
    body = {"message": message, "documentation_url": DOCS}
    if reason:
        body["portside_reason"] = reason
    return body
