"""Signed access tokens (JWT): signing with the key ring's newest key (token_keys.py), and
verification with an explicit algorithm allow-list (PyJWT). Knows neither service."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from plumbing.token_keys import (
    KeyFileError,
    KeyRing,
    SigningKey,
    generate_key_file,
    key_id,
    load_key_file,
)

# The key handling is token_keys.py's; named here too, so that users of tokens need one import.
__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "OWN_ALGORITHM",
    "Audience",
    "InvalidToken",
    "JwksKeys",
    "KeyFileError",
    "KeyRing",
    "SigningKey",
    "UnknownKey",
    "Verifier",
    "generate_key_file",
    "key_id",
    "load_key_file",
    "sign",
    "unverified_header",
    "unverified_issuer",
]

# What this project signs with. Verifiers name what they accept; "none" and the HMAC family
# (HS*) are never accepted: a verifier holding a public key must not take it for a secret.
OWN_ALGORITHM = "EdDSA"
ASYMMETRIC_ALGORITHMS = ("EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256")
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")


class InvalidToken(Exception):  # noqa: N818 - reads as the condition it reports
    """The token does not verify; the message says why (never the token)."""


class UnknownKey(InvalidToken):
    """The token names a key id the verifier does not hold (a refresh may find it)."""


def sign(key: SigningKey, claims: Mapping[str, Any]) -> str:
    """A compact JWS of the claims, signed with EdDSA, its key id in the header."""
    return jwt.encode(
        dict(claims), key.private_key, algorithm=OWN_ALGORITHM, headers={"kid": key.kid}
    )


class JwksKeys:
    """Public keys from a JWKS document (an external issuer's), by key id.

    Example:
        >>> keys = JwksKeys.parse('{"keys": [...]}')  # doctest: +SKIP
        >>> keys.public_key("kid-1")
    """

    def __init__(self, keys: Mapping[str, jwt.PyJWK]) -> None:
        self._keys = dict(keys)

    @classmethod
    def parse(cls, document: str | bytes) -> JwksKeys:
        """The keys of a JWKS; InvalidToken-free: ValueError when the document is not one."""
        try:
            data = json.loads(document)
            found = jwt.PyJWKSet.from_dict(data).keys
        except (ValueError, TypeError, jwt.PyJWTError) as error:
            raise ValueError(f"not a usable JWKS: {error}") from error
        return cls({key.key_id: key for key in found if key.key_id})

    def public_key(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True)
class Audience:
    """Who tokens must be issued by and for."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = (OWN_ALGORITHM,)


class Verifier:
    """Verifies a JWT: allowed algorithm, known key, signature, exp/nbf/iat, iss and aud.

    `keys(kid)` returns the public key (a cryptography key or a jwt.PyJWK) or None.

    Example:
        >>> verifier = Verifier(Audience("https://id.example", "userstack"), ring.public_key)
        >>> claims = verifier.verify(token)  # doctest: +SKIP
    """

    def __init__(
        self, audience: Audience, keys: Callable[[str], Any], leeway_seconds: float = 5.0
    ) -> None:
        unsafe = set(audience.algorithms) - set(ASYMMETRIC_ALGORITHMS)
        if unsafe:
            raise ValueError(f"algorithms not allowed for verification: {sorted(unsafe)}")
        self.audience = audience
        self._keys = keys
        self._leeway = leeway_seconds

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; InvalidToken (UnknownKey for an unknown key id) if it fails."""
        header = unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in self.audience.algorithms:
            raise InvalidToken(f"algorithm {str(algorithm)[:16]!r} is not accepted")
        kid = header.get("kid")
        key = self._keys(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnknownKey(f"unknown key id {str(kid)[:64]!r}")
        if isinstance(key, jwt.PyJWK) and key.algorithm_name not in (algorithm, None):
            raise InvalidToken(f"key {kid!r} is not for {algorithm}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience.audience,
                issuer=self.audience.issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(_reason(error)) from None
        return claims


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, before any check; InvalidToken when the token is not a JWS."""
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise InvalidToken(f"malformed token: {_reason(error)}") from None


def unverified_issuer(token: str) -> str | None:
    """The `iss` claim before any check (to pick the verifier), or None."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise InvalidToken(f"malformed token: {_reason(error)}") from None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


def _reason(error: jwt.PyJWTError) -> str:
    reasons: dict[type[jwt.PyJWTError], str] = {
        jwt.ExpiredSignatureError: "token expired",
        jwt.ImmatureSignatureError: "token not yet valid",
        jwt.InvalidAudienceError: "wrong audience",
        jwt.InvalidIssuerError: "wrong issuer",
        jwt.InvalidSignatureError: "bad signature",
        jwt.MissingRequiredClaimError: "a required claim is missing",
    }
    for kind, reason in reasons.items():
        if isinstance(error, kind):
            return reason
    return f"invalid token ({type(error).__name__})"
