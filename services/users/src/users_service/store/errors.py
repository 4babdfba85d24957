"""Domain errors a store raises; the transport maps them to status codes in one place."""

# The names read as the conditions (and the status codes) they stand for.
# ruff: noqa: N818


class StoreError(Exception):
    """Base of every error a UserStore raises on purpose."""


class NotFound(StoreError):
    """No user matches the key."""


class AlreadyExists(StoreError):
    """The username is taken (case-insensitively)."""


class StaleEtag(StoreError):
    """The caller's etag no longer matches the stored user."""


class IdempotencyKeyReused(StoreError):
    """A create's request_id was already used for a different user."""


class StoreUnavailable(StoreError):
    """The store cannot serve right now (database missing, unreadable, full, locked...)."""
