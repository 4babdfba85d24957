"""Password hashing with argon2id (argon2-cffi), off the event loop with bounded concurrency."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from users_service.denials import Throttled
from users_service.validation import FieldViolation, InvalidArgument

_T = TypeVar("_T")
MIN_PASSWORD = 12
MAX_PASSWORD_BYTES = 1024
# Hashes waiting for a thread, at most: past that a sign-in flood is refused at once rather than
# queued behind itself (each hash takes tens of ms and 64 MiB).
MAX_WAITING = 64


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD:
        return f"must be at least {MIN_PASSWORD} characters"
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return f"must be at most {MAX_PASSWORD_BYTES} bytes"
    return None


def check_new_password(password: str, field: str) -> None:
    """InvalidArgument naming `field` unless the password may be set."""
    problem = password_problem(password)
    if problem is not None:
        raise InvalidArgument([FieldViolation(field, problem)])


@dataclass(frozen=True)
class Checked:
    """The outcome of a password check; `rehash` is set when the stored hash is outdated."""

    ok: bool
    rehash: str | None = None


class Passwords:
    """argon2id hashes, computed on a few threads of their own (argon2 releases the GIL), never
    on the event loop.

    Example:
        >>> passwords = Passwords(concurrency=2)
        >>> stored = await passwords.hash("correct horse battery")  # doctest: +SKIP
        >>> (await passwords.check(stored, "correct horse battery")).ok
        True
    """

    def __init__(self, concurrency: int = 2, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="users-argon2")
        self._slots = asyncio.Semaphore(concurrency + MAX_WAITING)
        # Checked when there is no account (or no password): the same work, the same time.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        """The argon2id hash of the password (a PHC string with its salt and parameters)."""
        return await self._run(self._hasher.hash, password)

    async def check(self, stored: str, password: str) -> Checked:
        """Whether the password matches the stored hash ("" for none: never, in the same time)."""
        ok = await self._run(self._verify, stored or self._decoy, password)
        if not ok or not stored:
            return Checked(ok=bool(stored) and ok)
        if self._hasher.check_needs_rehash(stored):
            return Checked(ok=True, rehash=await self.hash(password))
        return Checked(ok=True)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, work: Callable[..., _T], *args: str) -> _T:
        if self._slots.locked():
            raise Throttled("too many sign-ins at once: try again shortly", retry_after=1.0)
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, work, *args)

    def close(self) -> None:
        """Lets the hashing threads go once their work is done."""
        self._executor.shutdown(wait=False)
