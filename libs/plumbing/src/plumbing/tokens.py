"""Signed access tokens (JWT): Ed25519 signing keys kept in a directory, their JWKS, and
verification with an explicit algorithm allow-list (PyJWT). Knows neither service."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# What this project signs with. Verifiers name what they accept; "none" and the HMAC family
# (HS*) are never accepted: a verifier holding a public key must not take it for a secret.
OWN_ALGORITHM = "EdDSA"
ASYMMETRIC_ALGORITHMS = ("EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256")
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
KEY_SUFFIX = ".pem"


class InvalidToken(Exception):  # noqa: N818 - reads as the condition it reports
    """The token does not verify; the message says why (never the token)."""


class UnknownKey(InvalidToken):
    """The token names a key id the verifier does not hold (a refresh may find it)."""


class KeyFileError(Exception):
    """A signing key file is unreadable or not an Ed25519 private key."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key's RFC 7638 JWK thumbprint (SHA-256, base64url): the same on every replica."""
    members = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64(_raw(public_key))}, separators=(",", ":")
    )
    return _b64(hashlib.sha256(members.encode()).digest())


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """One Ed25519 private key and its key id."""

    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK (what GetJwks publishes)."""
        raw = _b64(_raw(self.public_key))
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": raw,
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        }


def generate_key_file(directory: Path, name: str | None = None) -> Path:
    """Writes a new Ed25519 private key (PKCS#8 PEM, mode 0600) into `directory`; its name
    sorts after the older ones (a UTC timestamp), so that it becomes the signing key."""
    directory.mkdir(parents=True, exist_ok=True)
    now = time.time_ns()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"
    path = directory / f"{name or 'signing-' + stamp}{KEY_SUFFIX}"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return path


def load_key_file(path: Path) -> SigningKey:
    """The Ed25519 key in a PEM file; KeyFileError if unreadable or of another kind."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise KeyFileError(f"signing key {path}: {error}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"signing key {path}: not an Ed25519 private key")
    return SigningKey(key_id(key.public_key()), key)


class KeyRing:
    """The signing keys of a directory of `*.pem` files, re-read when the directory changes.

    The key whose file name sorts last signs (names are UTC timestamps: the newest); every key
    in the directory verifies. Rotation: add a new file to every replica's directory (a mounted
    Secret or volume), wait a token lifetime, remove the old one.

    Example:
        >>> ring = KeyRing(Path("keys"))  # doctest: +SKIP
        >>> token = sign(ring.signing, {"sub": "1", ...})
        >>> ring.public_key(ring.signing.kid) is not None
        True
    """

    def __init__(self, directory: Path, check_every_seconds: float = 2.0) -> None:
        self._directory = directory
        self._check_every = check_every_seconds
        self._next_check = 0.0
        self._listing: tuple[tuple[str, int], ...] = ()
        self._keys: dict[str, SigningKey] = {}
        self.signing: SigningKey
        self.version = 0  # goes up whenever the set of keys changes
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-reads the directory if it changed (checked at most every few seconds); True when
        the keys changed. KeyFileError when it holds no key or a bad one."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return False
        self._next_check = now + self._check_every
        listing = self._list()
        if listing == self._listing and self._keys:
            return False
        keys = [load_key_file(self._directory / name) for name, _ in listing]
        if not keys:
            raise KeyFileError(f"no signing key (*{KEY_SUFFIX}) in {self._directory}")
        self._listing = listing
        self._keys = {key.kid: key for key in keys}
        self.signing = keys[-1]
        self.version += 1
        return True

    def _list(self) -> tuple[tuple[str, int], ...]:
        try:
            entries = sorted(os.scandir(self._directory), key=lambda entry: entry.name)
        except OSError as error:
            raise KeyFileError(f"signing keys: cannot read {self._directory}: {error}") from error
        return tuple(
            (entry.name, entry.stat().st_mtime_ns)
            for entry in entries
            if entry.name.endswith(KEY_SUFFIX) and entry.is_file()
        )

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key with this id, or None."""
        key = self._keys.get(kid)
        return None if key is None else key.public_key

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every public key, as a JSON Web Key Set."""
        return {"keys": [key.public_jwk() for key in self._keys.values()]}


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
