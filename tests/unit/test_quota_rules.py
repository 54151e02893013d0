"""Storage quotas' pure parts: sizes in and out, the refusal and warning texts, who may."""

from __future__ import annotations

import pytest

from portside.access.policy import Actor, quota_decision, usage_decision
from portside.registry.quotas import at_warning, percent, refusal, warning_text
from portside.sizes import human, parse_size

GiB, MiB = 1024**3, 1024**2


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10GiB", 10 * GiB),
        ("10 gib", 10 * GiB),
        ("500MB", 500_000_000),
        ("1.5TiB", int(1.5 * 1024**4)),
        ("0", 0),
        ("1048576", MiB),
        ("2k", 2000),
    ],
)
def test_sizes_people_write(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "ten gigs", "-1GiB", "10 GiBs", "1e9", "GiB"])
def test_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match=r"write it like 10GiB, 500MB, 1\.5TiB"):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "shown", "up"),
    [
        (0, "0 B", "0 B"),
        (1023, "1023 B", "1023 B"),
        (1536, "1.5 KiB", "1.5 KiB"),
        (10 * GiB, "10 GiB", "10 GiB"),
        (int(10.2 * GiB), "10.2 GiB", "10.2 GiB"),
        (10 * GiB + 1, "10 GiB", "10.1 GiB"),  # just over the limit never reads as the limit
        (999 * MiB, "999 MiB", "999 MiB"),
    ],
)
def test_sizes_shown_with_one_decimal(size: int, shown: str, up: str) -> None:
    assert (human(size), human(size, up=True)) == (shown, up)


def test_the_refusal_and_the_warning() -> None:
    assert refusal("acme", int(10.2 * GiB), 10 * GiB) == (
        "quota exceeded for acme: 10.2 GiB used of 10 GiB; delete versions or ask an administrator"
    )
    assert warning_text("acme", int(9.32 * GiB), 10 * GiB) == "acme uses 9.3 GiB of 10 GiB (93%)"
    assert not at_warning(9 * GiB - 1, 10 * GiB, 0.9)
    assert at_warning(9 * GiB, 10 * GiB, 0.9)
    assert not at_warning(10**18, None, 0.9)  # no quota, no warning
    assert percent(0, 0) == 100


def test_only_site_admins_set_quotas() -> None:
    assert quota_decision(Actor(1, "root", site_admin=True), "org", "acme").allowed
    owner = quota_decision(Actor(2, "olga"), "org", "acme")
    assert not owner.allowed and "portside org set acme --storage-quota SIZE" in owner.reason
    assert "portside user set bob" in quota_decision(Actor(2, "bob"), "user", "bob").reason  # not even their own


def test_who_may_read_usage() -> None:
    admin, olga, oscar = Actor(1, "root", site_admin=True), Actor(2, "olga"), Actor(3, "oscar")
    assert usage_decision(admin, "org", "acme", None).allowed
    assert usage_decision(olga, "org", "acme", "owner").allowed
    assert usage_decision(olga, "org", "acme", "member").allowed
    assert "only members of acme" in usage_decision(oscar, "org", "acme", None).reason
    assert usage_decision(olga, "user", "olga", None).allowed
    assert "only olga and site admins" in usage_decision(oscar, "user", "olga", None).reason
    assert not usage_decision(Actor(), "user", "olga", None).allowed
