"""The retention decision as a table of cases: what a run deletes and keeps, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portside.packages.retention import InvalidPolicy, Policy, Version, decide, parse

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def v(n: int, *tags: str, days: float = 60, **extra: object) -> Version:
    return Version(id=n, digest=f"sha256:{n:064d}", tags=list(tags), created_at=ago(days), tagged_at=ago(days), **extra)  # type: ignore[arg-type]


def digest(n: int) -> str:
    return f"sha256:{n:064d}"


def outcome(policy: Policy, versions: list[Version]) -> dict[int, tuple[bool, str]]:
    return {d.id: (d.delete, d.reason) for d in decide(policy, versions, NOW)}


def test_keep_the_last_tagged_and_the_rest_goes() -> None:
    got = outcome(Policy(keep_last_tagged=2), [v(1, "a", days=30), v(2, "b", days=20), v(3, "c", days=10)])
    assert got[1] == (True, "tagged a, older than the 2 most recently tagged matching *")
    assert got[2] == (False, "among the 2 most recently tagged matching *")
    assert not got[3][0]


def test_a_protected_tag_keeps_a_digest_whatever_else_it_carries() -> None:
    # Harbor #8717: a digest tagged both `latest` and an old build number.
    got = outcome(
        Policy(keep_last_tagged=1, protected_tags=("latest", "v*")),
        [v(1, "build-7", "latest", days=90), v(2, "v1.0", days=80), v(3, "build-9", days=1)],
    )
    assert got[1] == (False, "tag latest is protected")
    assert got[2] == (False, "tag v1.0 is protected")
    assert got[3][0] is False


def test_a_version_pulled_within_the_window_is_kept() -> None:
    got = outcome(
        Policy(keep_last_tagged=1, keep_pulled_within_days=30),
        [
            v(1, "old", days=100, last_pulled_at=ago(2)),
            v(2, "older", days=120, last_pulled_at=ago(40)),
            v(3, "new", days=1),
        ],
    )
    assert got[1] == (False, "pulled within the last 30 days")
    assert got[2][0] is True
    assert got[3][0] is False


def test_the_tag_pattern_chooses_what_keep_last_tagged_counts() -> None:
    got = outcome(
        Policy(keep_last_tagged=1, tag_pattern="release-*"),
        [v(1, "release-1", days=30), v(2, "release-2", days=5), v(3, "dev-1", days=300)],
    )
    assert got[1][0] is True
    assert got[2] == (False, "among the 1 most recently tagged matching release-*")
    assert got[3] == (False, "its tags do not match release-*")


def test_untagged_versions_go_after_their_days_and_only_if_asked() -> None:
    versions = [v(1, days=10), v(2, days=3)]
    got = outcome(Policy(delete_untagged_after_days=7), versions)
    assert got[1] == (True, "untagged, pushed more than 7 days ago")
    assert got[2] == (False, "untagged, pushed within the last 7 days")
    assert outcome(Policy(), versions)[1] == (False, "untagged (delete_untagged_after_days is not set)")


def test_the_platform_images_of_a_kept_index_are_never_untagged_victims() -> None:
    kept_index = v(10, "v2", days=5, children=[digest(1), digest(2)])
    gone_index = v(20, "v1", days=50, children=[digest(3), digest(2)])  # 2 is shared by both indexes
    versions = [v(1, days=90), v(2, days=90), v(3, days=90), kept_index, gone_index]
    got = outcome(Policy(keep_last_tagged=1, delete_untagged_after_days=7), versions)
    assert got[10][0] is False and got[20][0] is True
    assert got[1] == (False, f"part of {digest(10)}, which is kept")
    assert got[2] == (False, f"part of {digest(10)}, which is kept")
    assert got[3][0] is True


def test_referrers_stay_with_a_kept_version_and_go_with_a_deleted_one() -> None:
    versions = [
        v(1, "new", days=1),
        v(2, "old", days=40),
        v(3, days=1, subject=digest(1)),  # a signature of the kept version, pushed today
        v(4, days=1, subject=digest(2)),  # an SBOM of the version that goes
    ]
    got = outcome(Policy(keep_last_tagged=1, delete_untagged_after_days=7), versions)
    assert got[3] == (False, f"a referrer of {digest(1)}, which is kept")
    assert got[2][0] is True
    assert got[4] == (True, f"goes with {digest(2)}")


def test_a_young_platform_image_of_a_deleted_index_goes_with_it() -> None:
    versions = [v(1, days=1), v(5, "v1", days=40, children=[digest(1)]), v(6, "v2", days=1)]
    got = outcome(Policy(keep_last_tagged=1, delete_untagged_after_days=7), versions)
    assert got[5][0] is True
    assert got[1] == (True, f"goes with {digest(5)}")


def test_an_immutable_tag_keeps_its_version() -> None:
    got = outcome(Policy(keep_last_tagged=0), [v(1, "v1.0", days=400, immutable="v1.0"), v(2, "x", days=1)])
    assert got[1] == (False, "tag v1.0 is immutable")
    assert got[2][0] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        ({"keep": 3}, "unknown field 'keep'"),
        ({"enabled": "yes"}, "enabled must be true or false"),
        ({"keep_last_tagged": -1}, "keep_last_tagged must be a whole number"),
        ({"keep_last_tagged": True}, "keep_last_tagged must be a whole number"),
        ({"delete_untagged_after_days": 1.5}, "delete_untagged_after_days must be a whole number"),
        ({"protected_tags": ["ok", "no spaces"]}, "tag patterns"),
        ({"tag_pattern": ""}, "tag patterns"),
    ],
)
def test_bad_policies_say_what_is_wrong(body: object, message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message):
        parse(body)


def test_a_policy_round_trips() -> None:
    policy = parse(
        {
            "enabled": True,
            "keep_last_tagged": 10,
            "tag_pattern": "*",
            "protected_tags": ["latest", "v*"],
            "delete_untagged_after_days": 7,
            "keep_pulled_within_days": 30,
        }
    )
    assert Policy.load(policy.dump()) == policy
    assert policy.as_json()["protected_tags"] == ["latest", "v*"]
