"""GetUser's replies by id, serialized once and kept exact (docs/performance.md, "The reply cache").

A hit answers bytes built on an earlier read: no store read, no record, no message, no
serialization. What keeps it exact:

- This replica's writes to a user forget its reply as they start and again before they are
  acknowledged (`ForgettingStore`), and no read of that user is kept while one is in flight.
- Every other change forgets it when heard: the SQLite store's after its commit, the PostgreSQL
  feed's from any replica (`changed`). A lost feed empties the cache and keeps it off until it
  listens again (`feed_state`): changes made meanwhile are never heard.
- A read is kept only if nothing was forgotten while it ran (the generation, read before it).
- Other processes writing the same SQLite file (a second server, an import) are seen through
  `PRAGMA data_version`, asked before every read of the cache; any commit to the file (this
  process's own writer and store probe included) empties the cache.
- A member sees other users' email blank (access.py): each reply keeps both variants.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from users_service.convert import user_message
from users_service.store import AccountChange, UserChange, UserChanges, UserRecord

DEFAULT_ENTRIES = 10_000


class UserReply:
    """A GetUser answer already serialized: `wire` is the users.v1.User to send, and
    `without_email` the same as a member sees another user (itself when the email is empty)."""

    __slots__ = ("user_id", "wire", "without_email")

    def __init__(self, user_id: int, wire: bytes) -> None:
        self.user_id = user_id
        self.wire = wire
        self.without_email = self


def reply_of(user: UserRecord) -> UserReply:
    """The reply of a stored user, both variants serialized now."""
    message = user_message(user)
    reply = UserReply(user.id, message.SerializeToString())
    if message.email:
        message.email = ""
        reply.without_email = UserReply(user.id, message.SerializeToString())
    return reply


def serializing(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """A handler's response serializer that also sends a UserReply's bytes as they are."""
    if serializer is None:
        return None

    def serialize(response: Any) -> bytes:
        if type(response) is UserReply:
            return response.wire
        return serializer(response)

    return serialize


class ReplyCache:
    """At most `entries` replies by user id, the least recently used dropped first.

    Example:
        >>> cache = ReplyCache(10_000, outside_version=store.data_version)  # doctest: +SKIP
        >>> reply = cache.get(42)
        >>> if reply is None:
        ...     generation = cache.generation
        ...     reply = cache.put(await store.get_user(42), generation)
    """

    def __init__(self, entries: int, outside_version: Callable[[], object] | None = None) -> None:
        self._entries = entries
        self._replies: OrderedDict[int, UserReply] = OrderedDict()
        self.generation = 0  # bumped by every forget: a read that spans one is not kept
        self._writing: dict[int, int] = {}  # user id -> this replica's writes in flight
        self._enabled = True
        self._outside = outside_version
        self._version: object = None

    def __len__(self) -> int:
        return len(self._replies)

    @property
    def enabled(self) -> bool:
        """False while the store's change feed is lost: nothing is kept."""
        return self._enabled

    def get(self, user_id: int) -> UserReply | None:
        """The user's reply, if kept and still current."""
        # Another connection's commit to the SQLite file, asked before every read of the cache:
        # a write acknowledged before the request arrived had committed by then. (Once per turn
        # of the event loop was tried: grpc.aio ran about one call per turn, 19,143 checks for
        # 20,000 calls at 32 in flight, so it saved nothing.)
        outside = self._outside
        if outside is not None and (version := outside()) != self._version:
            self._version = version
            self._clear()
        reply = self._replies.get(user_id)
        if reply is not None:
            self._replies.move_to_end(user_id)
        return reply

    def put(self, user: UserRecord, generation: int) -> UserReply:
        """The reply of `user`, read by a read that began at `generation`; kept unless anything
        was forgotten since, the feed is lost, or a write to the user is in flight."""
        reply = reply_of(user)
        if generation == self.generation and self._enabled and user.id not in self._writing:
            self._replies[user.id] = reply
            if len(self._replies) > self._entries:
                self._replies.popitem(last=False)
        return reply

    def forget(self, user_id: int) -> None:
        """The user changed (or may have): its reply goes, and reads in flight are not kept."""
        self.generation += 1
        self._replies.pop(user_id, None)

    def changed(self, change: UserChange) -> None:
        """The store's ChangeListener: a committed change, this replica's or (PostgreSQL) any."""
        self.forget(change.user.id)

    def feed_state(self, lost: str | None) -> None:
        """The store's FeedStateListener: off (and empty) while changes cannot be heard."""
        self._enabled = lost is None
        self._clear()

    @contextmanager
    def writing(self, user_id: int) -> Iterator[None]:
        """Around this replica's write to a user, acknowledged only after it ends."""
        self.forget(user_id)
        self._writing[user_id] = self._writing.get(user_id, 0) + 1
        try:
            yield
        finally:
            if self._writing[user_id] == 1:
                del self._writing[user_id]
            else:
                self._writing[user_id] -= 1
            self.forget(user_id)

    def _clear(self) -> None:
        self.generation += 1
        self._replies.clear()


class ForgettingStore:
    """A UserStore whose writes to a user forget its cached reply before and after (`writing`);
    everything else goes straight through."""

    def __init__(self, store: Any, cache: ReplyCache) -> None:
        self._store = store
        self._cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def update_user(self, user_id: int, changes: UserChanges, etag: str) -> UserRecord:
        with self._cache.writing(user_id):
            user: UserRecord = await self._store.update_user(user_id, changes, etag)
            return user

    async def delete_user(self, user_id: int, etag: str) -> UserRecord:
        with self._cache.writing(user_id):
            user: UserRecord = await self._store.delete_user(user_id, etag)
            return user

    async def update_account(self, user_id: int, change: AccountChange) -> UserRecord:
        with self._cache.writing(user_id):
            user: UserRecord = await self._store.update_account(user_id, change)
            return user
