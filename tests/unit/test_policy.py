"""Corner cases of the one decision function, `policy.decide` (the full matrix runs over HTTP)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from portside.access.policy import (
    ANONYMOUS,
    DELETE_SCOPE,
    READ_SCOPE,
    SCOPES,
    WRITE_SCOPE,
    Action,
    Actor,
    Facts,
    Role,
    decide,
    matches_only,
    role_of,
    scope_allows,
)

PULL, PUSH, DELETE = Action.PULL, Action.PUSH, Action.DELETE
BOB = Actor(user_id=2, name="bob")
ADMIN = Actor(user_id=9, name="root", site_admin=True)


def token(actor: Actor, *scopes: str, only: tuple[str, ...] | None = None) -> Actor:
    return Actor(actor.user_id, actor.name, actor.site_admin, frozenset(scopes), only)


ORG_APP = Facts("acme/app", owner_exists=True, owner_kind="org", package_exists=True)
USER_APP = Facts("alice/app", owner_exists=True, owner_kind="user", package_exists=True)


def org_package(**facts: Any) -> Facts:
    return dataclasses.replace(ORG_APP, **facts)


def user_package(**facts: Any) -> Facts:
    return dataclasses.replace(USER_APP, **facts)


def test_a_name_without_owner_is_refused_with_the_naming_rule_and_no_login_prompt() -> None:
    for actor in (ANONYMOUS, BOB, ADMIN):
        decision = decide(actor, Facts(package="hello", owner_exists=False), PUSH)
        assert not decision.allowed
        assert "OWNER/NAME" in decision.reason
        assert decision.final
    assert "bob/hello" in decide(BOB, Facts(package="hello", owner_exists=False), PUSH).reason


def test_unknown_namespace_pull_is_hidden_and_push_says_the_namespace_does_not_exist() -> None:
    facts = Facts(package="ghost/app", owner_exists=False)
    pull = decide(ADMIN, facts, PULL)
    assert (pull.allowed, pull.hidden, pull.final) == (False, True, False)
    assert "not found" in pull.reason
    for action in (PUSH, DELETE):
        decision = decide(ADMIN, facts, action)
        assert (decision.allowed, decision.hidden, decision.final) == (False, False, True)
        assert decision.reason == "namespace ghost does not exist; push to a user or organization that exists"


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("actor", [ANONYMOUS, BOB, ADMIN, token(ADMIN, *SCOPES)])
def test_disabled_registry_denies_everyone_and_says_how_to_enable_it(actor: Actor, action: Action) -> None:
    facts = org_package(registry_enabled=False, visibility="public", org_role="owner")
    decision = decide(actor, facts, action)
    assert not decision.allowed
    assert not decision.hidden
    assert decision.final
    assert "organization acme has not enabled the container registry" in decision.reason
    assert "`portside org set acme --container-registry enabled`" in decision.reason


def test_site_admin_may_do_everything_but_its_token_still_narrows_it() -> None:
    facts = org_package(visibility="private")
    assert all(decide(ADMIN, facts, action).allowed for action in Action)
    read_only = token(ADMIN, READ_SCOPE)
    assert decide(read_only, facts, PULL).allowed
    push = decide(read_only, facts, PUSH)
    assert not push.allowed and not push.hidden
    assert "lacks the write:packages scope" in push.reason
    delete = decide(token(ADMIN, READ_SCOPE, WRITE_SCOPE), facts, DELETE)
    assert "lacks the delete:packages scope needed to delete acme/app" in delete.reason


def test_write_scope_implies_pull_but_delete_scope_alone_does_not() -> None:
    writer = token(BOB, WRITE_SCOPE)
    assert scope_allows(writer, PULL) and scope_allows(writer, PUSH) and not scope_allows(writer, DELETE)
    deleter = token(BOB, DELETE_SCOPE)
    assert not scope_allows(deleter, PULL) and not scope_allows(deleter, PUSH) and scope_allows(deleter, DELETE)
    assert not any(scope_allows(token(BOB), action) for action in Action)  # no scopes at all
    assert not scope_allows(token(BOB, "repo", "admin:org"), PULL)  # scopes that mean nothing here
    assert all(scope_allows(BOB, action) for action in Action)  # not signed in with a token
    assert all(scope_allows(ANONYMOUS, action) for action in Action)


def test_a_token_lacking_read_cannot_pull_even_a_public_package() -> None:
    decision = decide(token(BOB, DELETE_SCOPE), user_package(visibility="public"), PULL)
    assert not decision.allowed
    assert not decision.hidden  # the package is public: no secret to keep
    assert "read:packages" in decision.reason


def test_a_scope_denial_on_an_invisible_package_hides_it() -> None:
    decision = decide(token(BOB, READ_SCOPE), org_package(visibility="private"), PUSH)
    assert not decision.allowed
    assert decision.hidden


def test_delete_needs_admin_and_the_delete_scope() -> None:
    facts = org_package(granted=Role.ADMIN)
    assert decide(token(BOB, DELETE_SCOPE), facts, DELETE).allowed
    assert not decide(token(BOB, READ_SCOPE, WRITE_SCOPE), facts, DELETE).allowed
    writer = decide(token(BOB, *SCOPES), org_package(granted=Role.WRITE), DELETE)
    assert not writer.allowed and not writer.hidden
    assert writer.reason == (
        "bob has write access to acme/app, and delete needs admin; a package admin can grant it in its package "
        "settings or with `portside package grant acme/app --user bob --role admin`"
    )


@pytest.mark.parametrize(
    ("only", "package", "allowed"),
    [
        (("acme/*",), "acme/app", True),
        (("acme/*",), "acme/tools/app", True),
        (("acme/*",), "acmex/app", False),
        (("acme/*",), "other/acme/app", False),
        (("alice/tool",), "alice/tool", True),
        (("alice/tool",), "alice/tool2", False),
        (("alice/tool",), "alice/tool/sub", False),
        (("alice/tool", "acme/*"), "acme/x", True),
        (None, "anything/at-all", True),
    ],
)
def test_only_patterns(only: tuple[str, ...] | None, package: str, allowed: bool) -> None:
    assert matches_only(only, package) is allowed


def test_a_fine_grained_token_is_refused_outside_its_packages_and_says_so() -> None:
    limited = token(ADMIN, *SCOPES, only=("acme/app",))
    assert decide(limited, org_package(), PUSH).allowed
    other = decide(limited, org_package(package="acme/other"), PULL)
    assert not other.allowed
    assert other.reason == "your token is limited to acme/app and cannot be used for acme/other"
    hidden = decide(token(BOB, *SCOPES, only=("bob/*",)), org_package(package="acme/secret"), PULL)
    assert hidden.hidden  # bob cannot see acme/secret at all


def test_organization_members_may_create_packages_outsiders_may_not() -> None:
    new = org_package(package_exists=False)
    assert role_of(BOB, org_package(package_exists=False, org_role="member")) is Role.WRITE
    assert decide(BOB, org_package(package_exists=False, org_role="member"), PUSH).allowed
    outsider = decide(BOB, new, PUSH)
    assert not outsider.allowed and not outsider.hidden
    assert outsider.reason == "bob is not a member of organization acme, so cannot publish packages there"
    # Creating gives members write on a package that does not exist yet; an existing one needs a grant.
    existing = decide(BOB, org_package(org_role="member", visibility="private"), PUSH)
    assert not existing.allowed and existing.hidden


def test_only_the_namespace_owner_may_publish_to_a_user_namespace() -> None:
    new = user_package(package_exists=False)
    assert decide(Actor(1, "alice"), user_package(package_exists=False, actor_owns_namespace=True), PUSH).allowed
    denied = decide(BOB, new, PUSH)
    assert not denied.allowed
    assert denied.reason == "only alice can publish packages to the alice namespace"
    # A grant on a package that does not exist yet means nothing.
    assert not decide(BOB, user_package(package_exists=False, granted=Role.ADMIN), PUSH).allowed


def test_namespace_owner_and_org_owner_are_admin_on_everything_there() -> None:
    assert role_of(Actor(1, "alice"), user_package(actor_owns_namespace=True)) is Role.ADMIN
    assert role_of(BOB, org_package(org_role="owner")) is Role.ADMIN
    assert role_of(BOB, org_package(org_role="member")) is Role.NONE  # private, no grant


def test_internal_packages_are_readable_by_members_only_and_never_writable_by_visibility() -> None:
    internal = org_package(visibility="internal", org_role="member")
    assert decide(BOB, internal, PULL).allowed
    push = decide(BOB, internal, PUSH)
    assert not push.allowed and not push.hidden
    assert "bob has read access to acme/app, and push needs write" in push.reason
    outsider = decide(BOB, org_package(visibility="internal"), PULL)
    assert not outsider.allowed and outsider.hidden
    assert not decide(ANONYMOUS, org_package(visibility="internal"), PULL).allowed
    # "internal" means nothing in a user namespace: nobody is a member of a user.
    assert not decide(BOB, user_package(visibility="internal"), PULL).allowed


def test_public_packages_anyone_may_pull_nobody_may_push_without_a_role() -> None:
    public = user_package(visibility="public")
    assert decide(ANONYMOUS, public, PULL).allowed
    assert decide(BOB, public, PULL).allowed
    anonymous_push = decide(ANONYMOUS, public, PUSH)
    assert not anonymous_push.allowed and not anonymous_push.hidden and not anonymous_push.final
    assert anonymous_push.reason == "authentication required to push alice/app"
    push = decide(BOB, public, PUSH)
    assert "bob has read access to alice/app" in push.reason
    assert "portside package grant alice/app --user bob --role write" in push.reason


def test_private_packages_are_hidden_from_those_without_a_role() -> None:
    private = org_package(visibility="private")
    for actor in (ANONYMOUS, BOB, token(BOB, *SCOPES)):
        for action in Action:
            decision = decide(actor, private, action)
            assert not decision.allowed
            assert decision.hidden, (actor, action)
            assert not decision.final
    pull = decide(BOB, private, PULL)
    assert pull.reason == "repository acme/app not found"


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        (Role.NONE, set()),
        (Role.READ, {PULL}),
        (Role.WRITE, {PULL, PUSH}),
        (Role.ADMIN, {PULL, PUSH, DELETE, Action.RESTORE, Action.MANAGE}),
    ],
)
def test_granted_roles_on_a_private_package(granted: Role, allowed: set[Action]) -> None:
    facts = org_package(granted=granted, org_role="member")
    assert {action for action in Action if decide(token(BOB, *SCOPES), facts, action).allowed} == allowed


def test_role_parse() -> None:
    assert Role.parse(None) is Role.NONE
    assert Role.parse("") is Role.NONE
    assert Role.parse("read") is Role.READ
    assert Role.parse("write") is Role.WRITE
    assert Role.parse("admin") is Role.ADMIN
    assert Role.READ < Role.WRITE < Role.ADMIN


def test_managing_a_package_needs_admin_and_the_write_scope() -> None:
    manage = Action.MANAGE
    assert decide(token(BOB, WRITE_SCOPE), org_package(granted=Role.ADMIN), manage).allowed
    assert decide(BOB, org_package(org_role="owner"), manage).allowed
    assert decide(ADMIN, org_package(), manage).allowed
    no_write = decide(token(BOB, READ_SCOPE, DELETE_SCOPE), org_package(granted=Role.ADMIN), manage)
    assert not no_write.allowed and not no_write.hidden
    assert "lacks the write:packages scope needed to manage acme/app" in no_write.reason
    writer = decide(token(BOB, *SCOPES), org_package(granted=Role.WRITE), manage)
    assert not writer.allowed and not writer.hidden
    assert writer.reason == (
        "bob has write access to acme/app; changing its settings (visibility, collaborators, immutable tags) needs "
        "admin, which a package admin can grant in its package settings or with "
        "`portside package grant acme/app --user bob --role admin`"
    )
    assert decide(BOB, org_package(org_role="member"), manage).hidden  # private, no role: not even seen
    assert not decide(ANONYMOUS, user_package(visibility="public"), manage).allowed
