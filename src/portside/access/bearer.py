"""Registry bearer tokens (Docker token authentication): short-lived ES256 JWTs with an `access` claim.

The signing key is generated on first start and kept in the data directory (mode 0600). Verified
tokens are cached in process until they expire, so the hot paths pay for a signature check once.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from portside.access.keyfiles import ensure_key_file

ISSUER = "portside"
ALGORITHM = "ES256"
KEY_FILE = "token-signing-key.pem"
_CACHE_LIMIT = 10_000


def ensure_signing_key(data_dir: Path) -> Path:
    def make() -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    return ensure_key_file(data_dir / KEY_FILE, make)


@dataclass(frozen=True, slots=True)
class Grant:
    """One entry of the `access` claim: actions on a resource."""

    type: str
    name: str
    actions: tuple[str, ...]

    def claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str  # user name; "" when anonymous
    user_id: int | None
    token_id: int | None  # the personal access token the bearer token was issued for
    audience: str
    expires_at: float
    access: tuple[Grant, ...]
    refresh: bool = False

    def actions_on(self, resource_type: str, name: str) -> frozenset[str]:
        actions: set[str] = set()
        for grant in self.access:
            if grant.type == resource_type and grant.name == name:
                actions.update(grant.actions)
        return frozenset(actions)


class InvalidToken(Exception):
    pass


class TokenSigner:
    def __init__(self, key_path: Path, *, lifetime: int) -> None:
        self._key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(self._key, ec.EllipticCurvePrivateKey)
        self._public = self._key.public_key()
        self.lifetime = lifetime
        self.key_id = _key_id(self._public)
        self._cache: dict[str, Claims] = {}

    def issue(
        self,
        claims_subject: str,
        *,
        user_id: int | None,
        token_id: int | None,
        audience: str,
        access: list[Grant],
        lifetime: int | None = None,
        refresh: bool = False,
    ) -> tuple[str, int, int]:
        """Return (jwt, issued_at, expires_in)."""
        issued = int(time.time())
        expires_in = lifetime or self.lifetime
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "sub": claims_subject,
            "aud": audience,
            "iat": issued,
            "nbf": issued - 1,
            "exp": issued + expires_in,
            "jti": secrets.token_urlsafe(12),
            "access": [grant.claim() for grant in access],
        }
        if user_id is not None:
            payload["uid"] = user_id
        if token_id is not None:
            payload["pat"] = token_id
        if refresh:
            payload["typ"] = "refresh"
        encoded = jwt.encode(payload, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})
        return encoded, issued, expires_in

    def verify(self, token: str, audience: str) -> Claims:
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at > time.time():
                return cached
            del self._cache[token]
        try:
            payload = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "aud", "iss", "sub"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the bearer token has expired; fetch a new one from the token endpoint") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the bearer token was issued for another service, not {audience}") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(
                f"the bearer token is invalid ({exc}); fetch a new one from the token endpoint"
            ) from None
        claims = _claims(payload)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = claims
        return claims


def _claims(payload: dict[str, Any]) -> Claims:
    try:
        access = tuple(
            Grant(str(item["type"]), str(item["name"]), tuple(str(a) for a in item["actions"]))
            for item in payload.get("access", [])
        )
        return Claims(
            subject=str(payload["sub"]),
            user_id=payload.get("uid"),
            token_id=payload.get("pat"),
            audience=str(payload["aud"]),
            expires_at=float(payload["exp"]),
            access=access,
            refresh=payload.get("typ") == "refresh",
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidToken("the bearer token's claims are malformed") from None


def _key_id(public: ec.EllipticCurvePublicKey) -> str:
    """A short fingerprint of the public key, so a verifier can tell which key signed a token."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize()[:12].hex()
