"""The one small interface every user store implements, and the records it trades in."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class UserRecord:
    """A stored user, as the store returns it."""

    id: int
    username: str
    email: str
    display_name: str
    create_time: datetime
    update_time: datetime
    etag: str
    # The account (docs/access.md): "member" or "admin"; a disabled account cannot sign in; the
    # token version goes up whenever the account's older tokens must stop verifying.
    role: str = "member"
    disabled: bool = False
    token_version: int = 0


ROLES = ("member", "admin")

# One user as export_page reads it, ready to become a message without a UserRecord (and its two
# datetimes) in between: id, username, email, display_name, create_time and update_time each as
# whole seconds since the epoch and nanoseconds, etag, role, disabled (0 or 1).
ExportRow = tuple[int, str, str, str, int, int, int, int, str, str, int]


def in_given_order(ids: Sequence[int], users: Sequence[UserRecord]) -> list[UserRecord]:
    """`users` (read by id in any order) arranged as get_users answers: in the order of `ids`,
    each once, missing ids left out."""
    by_id = {user.id: user for user in users}
    return [by_id[user_id] for user_id in dict.fromkeys(ids) if user_id in by_id]


@dataclass(frozen=True)
class NewUser:
    """A validated create: username already lowercased; request_id empty when none."""

    username: str
    email: str = ""
    display_name: str = ""
    request_id: str = ""
    # An account's: the argon2 hash of its password ("" for none: it cannot sign in), its role.
    password_hash: str = field(default="", repr=False)
    role: str = "member"

    @property
    def fingerprint(self) -> str:
        """What a request_id is bound to: a replay with other fields is a reused key."""
        return json.dumps([self.username, self.email, self.display_name])


@dataclass(frozen=True)
class UserChanges:
    """A validated update: None means "leave as is"."""

    username: str | None = None
    email: str | None = None
    display_name: str | None = None

    def given(self) -> dict[str, str]:
        """The fields to change, by column name (always from this fixed list)."""
        fields = (
            ("username", self.username),
            ("email", self.email),
            ("display_name", self.display_name),
        )
        return {name: value for name, value in fields if value is not None}


@dataclass(frozen=True)
class AccountChange:
    """A change to an account: None means "leave as is". With `revoke` (all but a rehash) it
    bumps the token version, so that the account's older tokens stop verifying (every replica
    hears the change)."""

    password_hash: str | None = field(default=None, repr=False)
    role: str | None = None
    disabled: bool | None = None
    revoke: bool = True

    def given(self) -> dict[str, object]:
        """The columns to change, by name (always from this fixed list)."""
        fields = (
            ("password_hash", self.password_hash),
            ("role", self.role),
            ("disabled", self.disabled),
        )
        return {name: value for name, value in fields if value is not None}


class CreateStatus(enum.Enum):
    """What one create did."""

    CREATED = "created"
    REPLAYED = "replayed"  # the request_id had already created `user`
    TAKEN = "taken"  # the username already exists
    KEY_REUSED = "key_reused"  # the request_id had created a different user
    REPLAYED_GONE = "replayed_gone"  # the request_id's user has since been deleted


@dataclass(frozen=True)
class CreateOutcome:
    """The result of one create in a batch; `user` is set for CREATED and REPLAYED."""

    status: CreateStatus
    user: UserRecord | None = None


class ChangeKind(enum.Enum):
    """What a committed write did to a user."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True)
class UserChange:
    """One committed change, as the store reports it to its listener (the WatchUsers feed).

    `user` is the user after the change (as it was, for DELETED); `time` is when it happened.
    """

    kind: ChangeKind
    user: UserRecord
    time: datetime


# Called on the event loop, in commit order, once per committed change; it must not block.
ChangeListener = Callable[[UserChange], None]
# Called on the event loop with why, when the store stops hearing changes (PostgreSQL: its LISTEN
# connection is lost), and with None once it hears them again. Changes committed in between are
# never reported: whoever relied on hearing every change must start over (re-list, re-watch).
FeedStateListener = Callable[[str | None], None]


class UserStore(Protocol):
    """Durable user storage. Raises only store errors (users_service.store.errors).

    Every committed change is reported to the ChangeListener the store was built with: the
    SQLite store after its commit, the PostgreSQL store from LISTEN/NOTIFY, so that a replica
    also hears the changes made through the others.

    Example:
        >>> store = SqliteUserStore(Path("users.db"))  # doctest: +SKIP
        >>> await store.open()
        >>> [outcome] = await store.create_users([NewUser("ada")])
    """

    async def open(self) -> None:
        """Connects and applies pending migrations."""

    async def close(self) -> None:
        """Releases every connection and thread."""

    async def probe(self, *, write: bool = True) -> None:
        """Proves the store can serve: a real write and read (a read alone with write=False, while
        the disk is down to its reserve); raises StoreUnavailable if not."""

    async def purge_idempotency_keys(self, older_than_seconds: float) -> int:
        """Forgets the request_ids of creates older than that; returns how many."""

    async def create_users(self, users: Sequence[NewUser]) -> list[CreateOutcome]:
        """Creates the users in one transaction, one outcome per user, in order."""

    async def get_user(self, user_id: int) -> UserRecord:
        """Reads a user by id; NotFound when there is none."""

    async def get_user_by_username(self, username: str) -> UserRecord:
        """Reads a user by username, case-insensitively; NotFound when there is none."""

    async def get_users(self, ids: Sequence[int]) -> list[UserRecord]:
        """Reads the users with these ids in one query: in the order of `ids`, each once; ids
        with no user are left out."""

    async def update_user(self, user_id: int, changes: UserChanges, etag: str) -> UserRecord:
        """Applies the changes; NotFound, StaleEtag (etag non-empty and stale), AlreadyExists."""

    async def delete_user(self, user_id: int, etag: str) -> UserRecord:
        """Deletes the user and returns it as it was; NotFound, StaleEtag."""

    async def list_users(self, after_id: int, limit: int, username_prefix: str) -> list[UserRecord]:
        """Users with id > after_id (and the prefix, if any), in id order, at most `limit`."""

    async def export_page(self, after_id: int, limit: int, username_prefix: str) -> list[ExportRow]:
        """The users list_users would return, as bare ExportRows (a bulk read's page)."""

    async def get_credentials(self, username: str) -> tuple[UserRecord, str]:
        """The user with this username and its password hash ("" for none); NotFound."""

    async def update_account(self, user_id: int, change: AccountChange) -> UserRecord:
        """Applies the change and bumps the token version (reported as UPDATED); NotFound."""

    async def list_users_before(
        self, before_id: int, limit: int, username_prefix: str
    ) -> list[UserRecord]:
        """The last `limit` users with id < before_id (and the prefix), in id order."""
