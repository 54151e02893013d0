"""The reference grammar: repository names, tags and digests."""

from __future__ import annotations

import hashlib

import pytest

from portside.registry.errors import DigestInvalid, ManifestInvalid, ManifestUnknown, NameInvalid
from portside.registry.references import (
    MAX_NAME_LENGTH,
    Digest,
    is_tag,
    lookup_reference,
    parse_reference,
    validate_name,
)

HEX64 = "0123456789abcdef" * 4
HEX128 = HEX64 * 2


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "0",
        "hello",
        "octo/hello",
        "octo/tools/hello",
        "a/b/c/d/e/f/g",
        "my.image",
        "my_image",
        "my__image",
        "my-image",
        "my---image",
        "a1.b2_c3__d4-e5",
        "library/ubuntu",
        "x" * MAX_NAME_LENGTH,
    ],
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "mentions"),
    [
        ("", ["empty path component"]),
        ("Hello", ["'Hello'", "uppercase", "lowercase"]),
        ("octo/Hello", ["'Hello'", "uppercase"]),
        ("octo/hello/World/x", ["'World'"]),
        ("octo/he!lo", ["'he!lo'", "[a-z0-9]+"]),
        ("octo/he llo", ["'he llo'"]),
        ("octo/-hello", ["'-hello'"]),
        ("octo/hello-", ["'hello-'"]),
        ("octo/.hello", ["'.hello'"]),
        ("octo/hello.", ["'hello.'"]),
        ("octo/a..b", ["'a..b'"]),
        ("octo/a._b", ["'a._b'"]),
        ("octo/a___b", ["'a___b'"]),
        ("octo/_a", ["'_a'"]),
        ("octo/hellø", ["'hellø'"]),
        ("octo/hello:tag", ["'hello:tag'"]),
        ("octo/hello@sha256", ["'hello@sha256'"]),
        ("octo//hello", ["empty path component"]),
        ("/octo", ["empty path component"]),
        ("octo/", ["empty path component"]),
        ("x" * (MAX_NAME_LENGTH + 1), [f"{MAX_NAME_LENGTH + 1} characters", str(MAX_NAME_LENGTH)]),
    ],
)
def test_invalid_names_say_what_is_wrong(name: str, mentions: list[str]) -> None:
    with pytest.raises(NameInvalid) as caught:
        validate_name(name)
    assert caught.value.code == "NAME_INVALID"
    assert caught.value.status == 400
    for mention in mentions:
        assert mention in caught.value.message


def test_invalid_name_message_quotes_the_whole_name() -> None:
    with pytest.raises(NameInvalid) as caught:
        validate_name("octo/Bad")
    assert "'octo/Bad'" in caught.value.message
    assert caught.value.detail == {"name": "octo/Bad"}


@pytest.mark.parametrize("tag", ["latest", "v1", "1.0.0", "_x", "A", "a-b_c.d", "X" * 128, "0"])
def test_valid_tags(tag: str) -> None:
    assert is_tag(tag)
    assert parse_reference(tag) == tag


@pytest.mark.parametrize("tag", ["", "-a", ".a", "X" * 129, "a+b", "a/b", "a b", "tåg", "a@b"])
def test_invalid_tags(tag: str) -> None:
    assert not is_tag(tag)
    with pytest.raises(ManifestInvalid) as caught:
        parse_reference(tag)
    assert caught.value.status == 400
    assert repr(tag) in caught.value.message
    assert "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}" in caught.value.message
    # To read or delete, a reference that cannot be a tag names nothing.
    with pytest.raises(ManifestUnknown) as unknown:
        lookup_reference(tag)
    assert unknown.value.status == 404
    assert repr(tag) in unknown.value.message


def test_lookup_keeps_tags_and_digests() -> None:
    assert lookup_reference("v1") == "v1"
    assert lookup_reference(f"sha256:{HEX64}") == Digest("sha256", HEX64)
    with pytest.raises(DigestInvalid):
        lookup_reference("sha256:short")


def test_a_reference_with_a_colon_is_a_digest() -> None:
    assert parse_reference(f"sha256:{HEX64}") == Digest("sha256", HEX64)
    with pytest.raises(DigestInvalid):
        parse_reference("v1:2")


@pytest.mark.parametrize(("value", "algorithm"), [(f"sha256:{HEX64}", "sha256"), (f"sha512:{HEX128}", "sha512")])
def test_valid_digests(value: str, algorithm: str) -> None:
    digest = Digest.parse(value)
    assert digest.algorithm == algorithm
    assert str(digest) == value


@pytest.mark.parametrize(
    ("value", "mention"),
    [
        ("", "expected algorithm:hex"),
        ("sha256", "expected algorithm:hex"),
        (HEX64, "expected algorithm:hex"),
        (":" + HEX64, "expected algorithm:hex"),
        ("sha256:", "expected algorithm:hex"),
        ("sha256:" + HEX64[:-1], "64 lowercase hex digits"),
        ("sha256:" + HEX64 + "0", "64 lowercase hex digits"),
        ("sha256:" + HEX64.upper(), "64 lowercase hex digits"),
        ("sha256:" + "g" * 64, "64 lowercase hex digits"),
        ("sha512:" + HEX64, "128 lowercase hex digits"),
        ("SHA256:" + HEX64, "expected algorithm:hex"),
        ("md5:" + HEX64[:32], "unsupported digest algorithm 'md5'"),
        ("sha384:" + "0" * 96, "unsupported digest algorithm 'sha384'"),
        ("sha256:" + HEX64 + "\n", "expected algorithm:hex"),
        ("sha256 :" + HEX64, "expected algorithm:hex"),
    ],
)
def test_invalid_digests(value: str, mention: str) -> None:
    with pytest.raises(DigestInvalid) as caught:
        Digest.parse(value)
    assert caught.value.code == "DIGEST_INVALID"
    assert caught.value.status == 400
    assert mention in caught.value.message
    assert caught.value.detail == {"digest": value}


def test_digest_of() -> None:
    assert str(Digest.of(b"")) == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert str(Digest.of(b"{}")) == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert str(Digest.of(b"abc", "sha512")) == "sha512:" + hashlib.sha512(b"abc").hexdigest()


def test_digest_hasher_matches_its_algorithm() -> None:
    hasher = Digest.parse(f"sha512:{HEX128}").hasher()
    hasher.update(b"abc")
    assert hasher.hexdigest() == hashlib.sha512(b"abc").hexdigest()


def test_digests_compare_by_value() -> None:
    assert Digest.parse(f"sha256:{HEX64}") == Digest("sha256", HEX64)
    assert Digest.parse(f"sha256:{HEX64}") != Digest.parse(f"sha512:{HEX128}")
