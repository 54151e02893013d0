"""Registry bearer tokens (Docker token authentication): short-lived ES256 JWTs with an `access` claim.

The signing key is generated on first start and kept in the data directory (mode 0600). Verified
tokens are cached in process until they expire, so the hot paths pay for a signature check once.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ISSUER = "portside"
ALGORITHM = "ES256"
KEY_FILE = "token-signing-key.pem"  # where a single machine kept its key before the database did
_CACHE_LIMIT = 10_000


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


class UnknownKey(InvalidToken):
    """Signed by a key this process has not loaded (perhaps one another replica just rotated in)."""


class TokenSigner:
    """Signs with the newest key and verifies with any key still valid (access/keys.py)."""

    def __init__(self, keys: list[tuple[str, bytes]], *, lifetime: int) -> None:
        self.lifetime = lifetime
        self._cache: dict[str, Claims] = {}
        self.use(keys)

    def use(self, keys: list[tuple[str, bytes]]) -> None:
        """(key id, PEM) pairs, the signing key first."""
        loaded = {}
        for kid, pem in keys:
            private = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(private, ec.EllipticCurvePrivateKey)
            loaded[kid] = private
        if not loaded:
            raise ValueError("no token signing key")
        self.key_id = keys[0][0]
        self._key = loaded[self.key_id]
        self._public = {kid: private.public_key() for kid, private in loaded.items()}

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
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            message = f"the bearer token is invalid ({exc}); fetch a new one from the token endpoint"
            raise InvalidToken(message) from None
        if kid is None:
            candidates = list(self._public.values())  # every token Portside issues names its key
        elif isinstance(kid, str) and kid in self._public:
            candidates = [self._public[kid]]
        else:
            raise UnknownKey(
                "the bearer token is invalid: signed by a key this registry does not know; fetch a new one from "
                "the token endpoint"
            )
        failure: InvalidToken | None = None
        for public in candidates:
            try:
                claims = self._decode(token, public, audience)
            except InvalidToken as error:
                failure = failure or error
                continue
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[token] = claims
            return claims
        assert failure is not None
        raise failure

    def _decode(self, token: str, public: ec.EllipticCurvePublicKey, audience: str) -> Claims:
        try:
            payload = jwt.decode(
                token,
                public,
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
        return _claims(payload)


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
