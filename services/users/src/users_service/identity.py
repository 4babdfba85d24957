"""Who calls: the bearer token of a call verified (once per token, then cached until it expires)
and checked against the account's current state, which every replica keeps from the change feed."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from plumbing.tokens import (
    Audience,
    InvalidToken,
    KeyRing,
    UnknownKey,
    Verifier,
    sign,
    unverified_issuer,
)

from users_service.caller import Caller
from users_service.denials import Unauthenticated
from users_service.external_issuer import ExternalIssuer
from users_service.store import ChangeKind, NotFound, UserChange, UserRecord, UserStore

logger = logging.getLogger(__name__)

BEARER = "bearer "
# Verified tokens and account states kept, at most: past that the oldest are dropped (and
# verified, or read, again on their next use).
MAX_CACHED = 50_000


@dataclass(frozen=True)
class _Account:
    token_version: int
    disabled: bool
    role: str


_GONE = _Account(-1, disabled=True, role="")


class TokenIssuer:
    """Signs this service's access tokens with the key ring's newest key.

    Example:
        >>> token, expires_at = issuer.issue(user)  # doctest: +SKIP
    """

    def __init__(self, keys: KeyRing, audience: Audience, ttl_seconds: float) -> None:
        self._keys = keys
        self._audience = audience
        self._ttl = ttl_seconds

    def issue(self, user: UserRecord) -> tuple[str, float]:
        """A token for the user as it is now, and when it expires (epoch seconds)."""
        self._keys.refresh()
        now = int(time.time())
        expires_at = now + int(self._ttl)
        claims = {
            "iss": self._audience.issuer,
            "aud": self._audience.audience,
            "sub": str(user.id),
            "role": user.role,
            "ver": user.token_version,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "jti": secrets.token_urlsafe(12),
        }
        return sign(self._keys.signing, claims), float(expires_at)


class Authenticator:
    """The Caller of a call's `authorization` metadata (None when there is none).

    Per call, for a token seen before: one dict look-up, its expiry, and the account's state
    (kept current by `changed`, which hears every replica's changes). Verification (PyJWT,
    Ed25519) runs once per token per replica. Revocation bumps the account's token version,
    which every replica hears from the change feed (docs/access.md, Revocation).

    Example:
        >>> caller = await authenticator.caller("Bearer eyJ...")  # doctest: +SKIP
    """

    def __init__(
        self,
        store: UserStore,
        keys: KeyRing,
        audience: Audience,
        external: ExternalIssuer | None = None,
    ) -> None:
        self._store = store
        self._keys = keys
        self._own = Verifier(audience, keys.public_key)
        self._external = external
        self._verified: dict[str, Caller] = {}
        self._accounts: dict[int, _Account] = {}
        self._changes = 0  # counts every change heard: a store read that raced one is not cached
        self._feed_ok = True

    def cached(self, authorization: str) -> Caller | None:
        """The caller, when this replica already verified the token and holds its account's
        state (the per-call path: no await); None when `caller` must be asked."""
        if self._keys.refresh():
            self._verified.clear()
        caller = self._verified.get(authorization)
        if caller is None or caller.expires_at <= time.time():
            return None
        if caller.user_id is not None:
            account = self._accounts.get(caller.user_id) if self._feed_ok else None
            if account is None:
                return None
            _check(account, caller)
        return caller

    async def caller(self, authorization: str | None) -> Caller | None:
        """The verified caller, None when anonymous; Unauthenticated when the token fails."""
        if authorization is None:
            return None
        if self._keys.refresh():
            self._verified.clear()  # a removed key: its tokens must not verify from the cache
        caller = self._verified.get(authorization)
        if caller is None or caller.expires_at <= time.time():
            caller = await self._verify(authorization)
        if caller.user_id is not None:
            await self._check_account(caller)
        return caller

    async def _verify(self, authorization: str) -> Caller:
        if authorization[:7].lower() != BEARER or len(authorization) < 8:
            raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
        token = authorization[7:].strip()
        try:
            caller = await self._claims_caller(token)
        except InvalidToken as error:
            raise Unauthenticated(str(error)) from None
        if len(self._verified) >= MAX_CACHED:
            del self._verified[next(iter(self._verified))]
        self._verified[authorization] = caller
        return caller

    async def _claims_caller(self, token: str) -> Caller:
        issuer = unverified_issuer(token)
        if self._external is not None and issuer == self._external.issuer:
            return await self._external.caller(token)
        try:
            claims = self._own.verify(token)
        except UnknownKey:
            if self._keys.refresh(force=True):
                self._verified.clear()
            claims = self._own.verify(token)
        return _own_caller(claims)

    async def _check_account(self, caller: Caller) -> None:
        user_id = caller.user_id
        assert user_id is not None  # noqa: S101 - the caller's guard
        account = self._accounts.get(user_id) if self._feed_ok else None
        if account is None:
            account = await self._read_account(user_id)
        _check(account, caller)

    async def _read_account(self, user_id: int) -> _Account:
        heard = self._changes
        try:
            account = _state(await self._store.get_user(user_id))
        except NotFound:
            account = _GONE
        if heard == self._changes and self._feed_ok:
            if len(self._accounts) >= MAX_CACHED:
                del self._accounts[next(iter(self._accounts))]
            self._accounts[user_id] = account
        return account

    def changed(self, change: UserChange) -> None:
        """Hears a committed change (any replica's): the account's state here follows it."""
        self._changes += 1
        user = change.user
        if user.id in self._accounts:
            deleted = change.kind is ChangeKind.DELETED
            self._accounts[user.id] = _GONE if deleted else _state(user)

    def feed_state(self, lost: str | None) -> None:
        """While the change feed is lost, every call reads its account from the store."""
        self._feed_ok = lost is None
        self._accounts.clear()


def _check(account: _Account, caller: Caller) -> None:
    """Unauthenticated unless the account still stands behind the caller's token."""
    if account is _GONE:
        raise Unauthenticated("the token's account no longer exists")
    if account.disabled:
        raise Unauthenticated("the token's account is disabled")
    if account.token_version != caller.token_version or account.role != caller.role:
        raise Unauthenticated("the token was revoked")


def _state(user: UserRecord) -> _Account:
    return _Account(user.token_version, user.disabled, user.role)


def _own_caller(claims: dict[str, Any]) -> Caller:
    subject, role, version = claims["sub"], claims.get("role"), claims.get("ver")
    if not (isinstance(subject, str) and subject.isdigit() and isinstance(version, int)):
        raise InvalidToken("the token's subject or version is malformed")
    if role not in ("member", "admin"):
        raise InvalidToken("the token's role is malformed")
    return Caller(
        subject=subject,
        issuer=str(claims["iss"]),
        role=role,
        expires_at=float(claims["exp"]),
        user_id=int(subject),
        token_version=version,
    )
