"""Secrets: personal access tokens and passwords, hashed at rest and compared in constant time.

A token looks like `psp_` + 30 base62 characters of randomness (178 bits) + a 6-character base62
CRC32 checksum, in the manner of GitHub's `ghp_` tokens: the prefix lets secret scanners find leaked
tokens, and the checksum lets them tell real ones from look-alikes without asking the server.
Tokens carry enough entropy that one sha256 is a safe hash; passwords, chosen by people, get argon2id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "psp_"
_ALPHABET = string.digits + string.ascii_letters
_RANDOM_CHARS = 30
_CHECKSUM_CHARS = 6
TOKEN_LENGTH = len(TOKEN_PREFIX) + _RANDOM_CHARS + _CHECKSUM_CHARS
_passwords = PasswordHasher()


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_CHARS)


def new_token() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))
    return f"{TOKEN_PREFIX}{body}{_checksum(body)}"


def looks_like_token(value: str) -> bool:
    """Prefix, length, alphabet and checksum: rejects typos and look-alikes before any lookup."""
    if len(value) != TOKEN_LENGTH or not value.startswith(TOKEN_PREFIX):
        return False
    body, checksum = value[len(TOKEN_PREFIX) : -_CHECKSUM_CHARS], value[-_CHECKSUM_CHARS:]
    if any(ch not in _ALPHABET for ch in body):
        return False
    return hmac.compare_digest(checksum, _checksum(body))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_prefix(token: str) -> str:
    """The part of a token that may be shown again (in listings and the audit log)."""
    return token[: len(TOKEN_PREFIX) + 4]


def hashes_match(stored: str, candidate: str) -> bool:
    return hmac.compare_digest(stored.encode(), candidate.encode())


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        # Spend the same time as a real check, so timing does not tell which users have passwords.
        _passwords.hash(password)
        return False
    try:
        return _passwords.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
