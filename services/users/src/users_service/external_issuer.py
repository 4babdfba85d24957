"""An external OpenID Connect issuer: its JWKS (a file or an https URL), its tokens' role claim."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from plumbing.tokens import Audience, InvalidToken, JwksKeys, UnknownKey, Verifier

from users_service.auth_config import OidcSettings
from users_service.caller import Caller

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 5.0
# An unknown key id makes the JWKS be read again (the issuer rotated), at most this often.
MIN_REFRESH_SECONDS = 30.0
MAX_JWKS_BYTES = 1024 * 1024


class ExternalIssuer:
    """Verifies an external issuer's tokens and maps their role claim to a role.

    Example:
        >>> issuer = ExternalIssuer(OidcSettings("https://id.example", "userstack", "jwks.json"))
        >>> await issuer.load()  # doctest: +SKIP
        >>> caller = await issuer.caller(token)
    """

    def __init__(self, settings: OidcSettings) -> None:
        self.issuer = settings.issuer
        self._settings = settings
        self._keys = JwksKeys({})
        self._verifier = Verifier(
            Audience(settings.issuer, settings.audience, settings.algorithms), self._key
        )
        self._next_refresh = 0.0

    def _key(self, kid: str) -> Any:
        return self._keys.public_key(kid)

    async def load(self) -> None:
        """Reads the JWKS; ValueError (or OSError) when it cannot be read or holds no key."""
        source = self._settings.jwks
        document = await asyncio.to_thread(_read, source)
        keys = JwksKeys.parse(document)
        if not len(keys):
            raise ValueError(f"the JWKS at {source} holds no key with a key id")
        self._keys = keys
        self._next_refresh = time.monotonic() + MIN_REFRESH_SECONDS

    async def caller(self, token: str) -> Caller:
        """The token's Caller; InvalidToken when it does not verify."""
        try:
            claims = self._verifier.verify(token)
        except UnknownKey:
            if time.monotonic() < self._next_refresh:
                raise
            try:
                await self.load()
            except (OSError, ValueError) as error:
                logger.warning("cannot refresh the external issuer's keys: %s", error)
                raise InvalidToken("unknown key id") from None
            claims = self._verifier.verify(token)
        return self._caller(claims)

    def _caller(self, claims: dict[str, Any]) -> Caller:
        return Caller(
            subject=str(claims["sub"]),
            issuer=self.issuer,
            role=self._role(claims.get(self._settings.role_claim)),
            expires_at=float(claims["exp"]),
        )

    def _role(self, claim: object) -> str | None:
        values = (
            {claim} if isinstance(claim, str) else set(claim) if isinstance(claim, list) else set()
        )
        if values & set(self._settings.admin_values):
            return "admin"
        if values & set(self._settings.member_values):
            return "member"
        return None


def _read(source: str) -> bytes:
    if source.startswith("http://") and not _loopback(source):
        # Keys fetched in the clear could be anyone's: https, or a file, or loopback.
        raise ValueError(f"USERS_OIDC_JWKS={source!r}: use https:// (http only on loopback)")
    if source.startswith(("https://", "http://")):
        request = urllib.request.Request(source, headers={"accept": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
            return bytes(response.read(MAX_JWKS_BYTES))
    return Path(source).read_bytes()


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
