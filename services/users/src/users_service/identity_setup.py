"""Identity and access assembled from the settings: keys, tokens, passwords, the access check,
the AuthService; started after the store opens (the external issuer's keys, the first admin)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from argon2 import PasswordHasher
from plumbing.tokens import Audience, KeyRing, generate_key_file
from users.v1 import users_pb2

from users_service.access import Access
from users_service.accounts import AuthService, ensure_admin
from users_service.auth_config import AuthSettings
from users_service.external_issuer import ExternalIssuer
from users_service.identity import Authenticator, TokenIssuer
from users_service.passwords import Passwords
from users_service.store import UserChange, UserStore

logger = logging.getLogger(__name__)

AUTH_SERVICE_NAME: str = users_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


class Identity:
    """Everything identity and access of one server.

    Example:
        >>> identity = Identity(settings.auth, store)
        >>> wrapping = CallWrapping(gate, "/users.v1.", identity.access)
        >>> await identity.start()  # doctest: +SKIP
    """

    def __init__(self, settings: AuthSettings, store: UserStore) -> None:
        self._settings = settings
        self._store = store
        self._ephemeral: Path | None = None
        self.keys = KeyRing(self._keys_dir())
        audience = Audience(settings.issuer, settings.audience)
        hasher = PasswordHasher(
            time_cost=settings.hash_time_cost,
            memory_cost=settings.hash_memory_kib,
            parallelism=settings.hash_parallelism,
        )
        self.passwords = Passwords(settings.hash_concurrency, hasher)
        self.issuer = TokenIssuer(self.keys, audience, settings.token_ttl_seconds)
        oidc = settings.oidc
        self._external = ExternalIssuer(oidc) if oidc.issuer else None
        self.authenticator = Authenticator(store, self.keys, audience, self._external)
        self.access = (
            Access(self.authenticator, anonymous_reflection=settings.anonymous_reflection)
            if settings.enforced
            else None
        )
        self.service = AuthService(store, self.passwords, self.issuer, self.keys, settings)

    def _keys_dir(self) -> Path:
        if self._settings.signing_keys_dir is not None:
            return self._settings.signing_keys_dir
        self._ephemeral = Path(tempfile.mkdtemp(prefix="users-keys-"))
        generate_key_file(self._ephemeral)
        logger.warning(
            "no USERS_SIGNING_KEYS_DIR: signing with an ephemeral key; its tokens verify on"
            " this process only, until it stops"
        )
        return self._ephemeral

    async def start(self) -> None:
        """Reads the external issuer's keys and makes the first admin (the store is open)."""
        if self._external is not None:
            await self._external.load()
        if self._settings.admin_username:
            await ensure_admin(
                self._store,
                self.passwords,
                self._settings.admin_username,
                self._settings.admin_password,
            )

    def changed(self, change: UserChange) -> None:
        """Every committed change (any replica's): revocation follows it."""
        self.authenticator.changed(change)

    def feed_state(self, lost: str | None) -> None:
        self.authenticator.feed_state(lost)

    def close(self) -> None:
        self.passwords.close()
        if self._ephemeral is not None:
            shutil.rmtree(self._ephemeral, ignore_errors=True)
