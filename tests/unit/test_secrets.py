"""Personal access tokens (format, checksum, hash) and password hashing."""

from __future__ import annotations

import hashlib
import math
import re
import string
import zlib

from portside.access import secrets

BASE62 = string.digits + string.ascii_letters
TOKEN_RE = re.compile(r"psp_[0-9A-Za-z]{36}")


def test_tokens_have_the_prefix_the_length_and_the_alphabet() -> None:
    for _ in range(200):
        token = secrets.new_token()
        assert TOKEN_RE.fullmatch(token), token
        assert len(token) == secrets.TOKEN_LENGTH == 40


def test_tokens_carry_at_least_160_bits_of_randomness() -> None:
    random_chars = secrets.TOKEN_LENGTH - len(secrets.TOKEN_PREFIX) - 6
    assert random_chars * math.log2(62) >= 160
    tokens = {secrets.new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    # Every base62 character turns up in the random part: the generator uses the whole alphabet.
    assert set("".join(t[4:-6] for t in tokens)) == set(BASE62)


def test_the_checksum_is_the_crc32_of_the_random_part_in_base62() -> None:
    token = secrets.new_token()
    body, checksum = token[4:-6], token[-6:]
    number = 0
    for char in checksum:
        number = number * 62 + BASE62.index(char)
    assert number == zlib.crc32(body.encode())


def test_looks_like_token_accepts_real_tokens_and_rejects_look_alikes() -> None:
    token = secrets.new_token()
    assert secrets.looks_like_token(token)
    body, checksum = token[4:-6], token[-6:]
    wrong_checksum = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert not secrets.looks_like_token(wrong_checksum)
    typo = token[:10] + ("x" if token[10] != "x" else "y") + token[11:]
    assert not secrets.looks_like_token(typo)
    assert not secrets.looks_like_token("ghp_" + body + checksum)  # another prefix
    assert not secrets.looks_like_token(token + "a")
    assert not secrets.looks_like_token(token[:-1])
    assert not secrets.looks_like_token("")
    assert not secrets.looks_like_token("psp_" + "-" * 30 + checksum)  # outside the alphabet
    assert not secrets.looks_like_token("correct horse battery staple")
    assert not secrets.looks_like_token("psp_" + "é" * 30 + checksum)


def test_only_a_sha256_is_stored_and_compared_in_constant_time() -> None:
    token = secrets.new_token()
    stored = secrets.token_hash(token)
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert token not in stored
    assert secrets.hashes_match(stored, secrets.token_hash(token))
    assert not secrets.hashes_match(stored, secrets.token_hash(secrets.new_token()))


def test_the_prefix_shown_in_listings_reveals_only_four_random_characters() -> None:
    token = secrets.new_token()
    prefix = secrets.token_prefix(token)
    assert prefix == token[:8]
    assert prefix.startswith("psp_")
    assert len(prefix) - len(secrets.TOKEN_PREFIX) == 4


def test_passwords_are_hashed_with_argon2id_and_verified() -> None:
    stored = secrets.hash_password("s3cret pass")
    assert stored.startswith("$argon2id$")
    assert "s3cret pass" not in stored
    assert secrets.hash_password("s3cret pass") != stored  # salted
    assert secrets.verify_password(stored, "s3cret pass")
    assert not secrets.verify_password(stored, "s3cret pasS")
    assert not secrets.verify_password(stored, "")


def test_verify_password_without_a_stored_hash_or_with_garbage_is_false() -> None:
    assert not secrets.verify_password(None, "anything")
    assert not secrets.verify_password("", "anything")
    assert not secrets.verify_password("not-an-argon2-hash", "anything")
