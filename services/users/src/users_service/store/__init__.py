"""Persistence: the UserStore interface, its records and errors, and the SQLite implementation."""

from users_service.store.base import (
    CreateOutcome,
    CreateStatus,
    NewUser,
    UserChanges,
    UserRecord,
    UserStore,
)
from users_service.store.errors import (
    AlreadyExists,
    IdempotencyKeyReused,
    NotFound,
    StaleEtag,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "AlreadyExists",
    "CreateOutcome",
    "CreateStatus",
    "IdempotencyKeyReused",
    "NewUser",
    "NotFound",
    "StaleEtag",
    "StoreError",
    "StoreUnavailable",
    "UserChanges",
    "UserRecord",
    "UserStore",
]
