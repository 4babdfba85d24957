"""Why a call is refused for who makes it: no valid identity, not allowed, or too many tries."""

# The names read as the conditions (and the status codes) they stand for.
# ruff: noqa: N818

from __future__ import annotations


class Unauthenticated(Exception):
    """No valid identity: the token is missing, malformed, expired, revoked... (the message
    says which, never the token), or a sign-in failed."""


class PermissionDenied(Exception):
    """A valid identity without the right to this call."""


class Throttled(Exception):
    """Too many failed attempts: retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
