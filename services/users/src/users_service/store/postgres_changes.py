"""Changes over LISTEN/NOTIFY: the payload, and the connection that hears every replica's."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import psycopg

from users_service.store.base import (
    ChangeKind,
    ChangeListener,
    FeedStateListener,
    UserChange,
    UserRecord,
)

logger = logging.getLogger(__name__)

CHANNEL = "users_changes"
MIN_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0


def _us(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


def _moment(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


def encode(change: UserChange) -> str:
    """The NOTIFY payload of a change: compact JSON, far below PostgreSQL's 8000-byte limit."""
    user = change.user
    return json.dumps(
        {
            "kind": change.kind.value,
            "time_us": _us(change.time),
            "user": [
                user.id,
                user.username,
                user.email,
                user.display_name,
                _us(user.create_time),
                _us(user.update_time),
                user.etag,
                user.role,
                user.disabled,
                user.token_version,
            ],
        },
        separators=(",", ":"),
    )


def decode(payload: str) -> UserChange:
    """The change a payload of `encode` carries; ValueError/KeyError/TypeError if malformed."""
    data = json.loads(payload)
    # The account's fields came later: a replica still on the older code sends seven.
    uid, username, email, display_name, created_us, updated_us, etag, *account = data["user"]
    role, disabled, token_version = account or ("member", False, 0)
    user = UserRecord(
        id=int(uid),
        username=str(username),
        email=str(email),
        display_name=str(display_name),
        create_time=_moment(int(created_us)),
        update_time=_moment(int(updated_us)),
        etag=str(etag),
        role=str(role),
        disabled=bool(disabled),
        token_version=int(token_version),
    )
    return UserChange(ChangeKind(data["kind"]), user, _moment(int(data["time_us"])))


class ChangeFeed:
    """One dedicated connection that LISTENs and hands every change, from any replica, on.

    A lost connection is reopened with backoff; changes committed meanwhile are not heard
    (NOTIFY is not stored): `on_state` hears why the moment it is lost (so that open watches
    end instead of silently missing changes) and None once the feed listens again. The store's
    probe fails while `connected` is False, so that health sends new watches elsewhere.

    Example:
        >>> feed = ChangeFeed("postgresql://db/users", print)
        >>> await feed.start()  # doctest: +SKIP
        >>> await feed.close()
    """

    def __init__(
        self,
        conninfo: str,
        on_change: ChangeListener,
        label: str,
        on_state: FeedStateListener | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._on_change = on_change
        self._on_state = on_state or _ignore
        self._label = label  # the redacted URL, for the log
        self._task: asyncio.Task[None] | None = None
        self._listening = False  # False from a lost connection until the next one listens

    async def start(self) -> None:
        """Listens from now on; raises psycopg.Error if the first connection fails."""
        conn = await self._listen()
        self._listening = True
        self._task = asyncio.create_task(self._run(conn), name="store-change-feed")
        self._task.add_done_callback(self._crashed)

    @property
    def connected(self) -> bool:
        """Whether changes are being heard: listening now, and the feed has not crashed."""
        return self._listening and self._task is not None and not self._task.done()

    async def close(self) -> None:
        """Stops listening and closes the connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _listen(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _run(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            try:
                async for notify in conn.notifies():
                    self._deliver(notify.payload)
            except psycopg.Error as error:
                self._listening = False
                logger.warning(
                    "change feed lost: open watches end; new ones fail until it reconnects: %s",
                    error,
                    extra={"database": self._label},
                )
                self._on_state(f"the change feed from the database was lost: {error}")
            finally:
                await conn.close()
            conn = await self._reconnect()
            self._listening = True
            self._on_state(None)

    async def _reconnect(self) -> psycopg.AsyncConnection[Any]:
        backoff = MIN_BACKOFF_SECONDS
        while True:
            await asyncio.sleep(backoff)
            try:
                conn = await self._listen()
            except psycopg.Error:
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            logger.warning(
                "change feed reconnected: changes made while it was down were not delivered",
                extra={"database": self._label},
            )
            return conn

    def _deliver(self, payload: str) -> None:
        try:
            change = decode(payload)
        except (ValueError, KeyError, TypeError):
            logger.exception("ignored a malformed %s notification", CHANNEL)
            return
        self._on_change(change)

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("change feed stopped: WatchUsers hears no more changes", exc_info=error)
            self._on_state(f"the change feed stopped: {error}")


def _ignore(_: str | None) -> None:
    """The FeedStateListener of a store nobody watches through."""
