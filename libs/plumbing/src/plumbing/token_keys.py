"""Token signing keys: Ed25519 private keys kept as files in a directory that every replica
shares, their key ids (RFC 7638 thumbprints) and JWKs. Knows neither service."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

logger = logging.getLogger(__name__)

KEY_SUFFIX = ".pem"


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
        try:
            listing = self._list()
            if listing == self._listing and self._keys:
                return False
            keys = self._load(listing)
        except KeyFileError as error:
            if not self._keys:
                raise
            # A serving process keeps the keys it has (a key half copied in, a directory
            # emptied by mistake) and tries again at the next check.
            logger.warning("signing keys unchanged: %s", error)
            return False
        self._listing = listing
        self._keys = {key.kid: key for key in keys}
        self.signing = keys[-1]
        self.version += 1
        return True

    def _load(self, listing: tuple[tuple[str, int], ...]) -> list[SigningKey]:
        keys = [load_key_file(self._directory / name) for name, _ in listing]
        if not keys:
            raise KeyFileError(f"no signing key (*{KEY_SUFFIX}) in {self._directory}")
        return keys

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
