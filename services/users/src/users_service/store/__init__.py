"""Persistence: the UserStore interface, its records and errors; SQLite and PostgreSQL stores."""

from users_service.store.base import (
    ROLES,
    AccountChange,
    ChangeKind,
    ChangeListener,
    CreateOutcome,
    CreateStatus,
    ExportRow,
    FeedStateListener,
    NewUser,
    UserChange,
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
    "ROLES",
    "AccountChange",
    "AlreadyExists",
    "ChangeKind",
    "ChangeListener",
    "CreateOutcome",
    "CreateStatus",
    "ExportRow",
    "FeedStateListener",
    "IdempotencyKeyReused",
    "NewUser",
    "NotFound",
    "StaleEtag",
    "StoreError",
    "StoreUnavailable",
    "UserChange",
    "UserChanges",
    "UserRecord",
    "UserStore",
]
