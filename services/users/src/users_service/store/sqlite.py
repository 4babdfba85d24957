"""The SQLite UserStore: WAL, synchronous=FULL, writes on their own thread, reads on the loop."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from users_service.store import sqlite_sql as sql
from users_service.store.base import (
    AccountChange,
    ChangeKind,
    ChangeListener,
    CreateOutcome,
    CreateStatus,
    ExportRow,
    NewUser,
    UserChange,
    UserChanges,
    UserRecord,
    in_given_order,
)
from users_service.store.errors import NotFound, StoreUnavailable
from users_service.store.group_commit import GroupCommit
from users_service.store.serial_thread import SerialThread
from users_service.store.sqlite_migrations import SCHEMA_VERSION, apply_migrations
from users_service.stretches import STRETCH, gathered

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


# Writers wait on a thread of their own; readers run on the event loop, where waiting for a lock
# would stall every call. In WAL mode readers almost never meet one; when they do, UNAVAILABLE
# (which clients retry) beats a frozen server.
WRITE_BUSY_TIMEOUT_MS = 5000
READ_BUSY_TIMEOUT_MS = 100


def connect(
    path: Path, *, create: bool = False, busy_timeout_ms: int = WRITE_BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """Opens the database file (never silently creating an empty one unless `create`)."""
    uri = f"{path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        # WAL + synchronous=FULL: a commit returns only once its WAL frames are fsynced, so an
        # acknowledged write survives a SIGKILL or power loss.
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")  # first: WAL may wait too
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        if not create:
            _check_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _check_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"schema v{version} found, v{SCHEMA_VERSION} expected")


class _Connection:
    """One connection, opened on first use and reopened after a failure."""

    def __init__(self, path: Path, busy_timeout_ms: int = WRITE_BUSY_TIMEOUT_MS) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self.opened = 0  # connections opened so far: each one's data_version counts afresh

    def call(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            if self._conn is None:
                self._conn = connect(self._path, busy_timeout_ms=self._busy_timeout_ms)
                self.opened += 1
            return work(self._conn)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as error:
            self.drop()
            raise StoreUnavailable(f"database {self._path} cannot serve: {error}") from error

    def drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


class _Worker:
    """One thread owning one connection: the writes, which wait for their fsync."""

    def __init__(self, path: Path, name: str) -> None:
        self._conn = _Connection(path)
        self._thread = SerialThread(name)

    async def run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        return await self._thread.run(partial(self._conn.call, work))

    async def close(self) -> None:
        await self._thread.run(self._conn.drop)
        self._thread.close()


class SqliteUserStore:
    """A UserStore in one SQLite file.

    Example:
        >>> store = SqliteUserStore(Path("data/users.db"))  # doctest: +SKIP
        >>> await store.open()
        >>> user = await store.get_user(1)
    """

    def __init__(
        self,
        path: Path,
        on_change: ChangeListener | None = None,
        *,
        on_commit_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._path = path
        self._on_change = on_change
        self._writer = _Worker(path, "users-store-writer")
        # Reads run on the event loop itself, cheaper than a hop to a reader thread and back
        # (measured: docs/performance.md). In WAL mode a reader never waits for the writer, so
        # the loop does not stall behind a commit and its fsync.
        self._reader = _Connection(path, READ_BUSY_TIMEOUT_MS)
        # Filtered pages may scan most of the table: a thread of their own keeps that off the
        # loop (docs/limits.md, the event loop).
        self._scanner = _Worker(path, "users-store-scanner")
        self._creates = GroupCommit(self._insert, on_commit_batch)

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self._migrate)
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(f"cannot open database {self._path}: {error}") from error
        logger.info("store open", extra={"database": str(self._path), "schema": SCHEMA_VERSION})

    def _migrate(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self._path, create=True)
        try:
            apply_migrations(conn)
        finally:
            conn.close()

    async def close(self) -> None:
        await self._writer.close()
        await self._scanner.close()
        self._reader.drop()

    async def probe(self, *, write: bool = True) -> None:
        await self._writer.run(lambda _conn: self._fresh_probe(write))

    def _fresh_probe(self, write: bool) -> None:
        # A fresh connection notices what a long-lived one hides (a replaced or vanished file).
        conn = connect(self._path)
        try:
            if write:
                sql.write_probe(conn)
            else:
                conn.execute("SELECT count(*) FROM store_probe").fetchone()
        finally:
            conn.close()

    async def purge_idempotency_keys(self, older_than_seconds: float) -> int:
        before_us = sql.now_us() - int(older_than_seconds * 1e6)
        return await self._writer.run(partial(sql.purge_idempotency_keys, before_us=before_us))

    async def create_users(self, users: Sequence[NewUser]) -> list[CreateOutcome]:
        return await self._creates.submit(users)

    async def _insert(self, users: Sequence[NewUser]) -> list[CreateOutcome]:
        outcomes = await self._writer.run(partial(sql.insert_users, users=users))
        for outcome in outcomes:
            if outcome.status is CreateStatus.CREATED and outcome.user is not None:
                self._changed(ChangeKind.CREATED, outcome.user, outcome.user.update_time)
        return outcomes

    def _changed(self, kind: ChangeKind, user: UserRecord, time: datetime) -> None:
        # After the commit, on the event loop: the one writer thread commits in this order.
        if self._on_change is not None:
            self._on_change(UserChange(kind, user, time))

    async def get_user(self, user_id: int) -> UserRecord:
        user = self._reader.call(partial(sql.select_user, user_id=user_id))
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    def data_version(self) -> tuple[int, int]:
        """Changes whenever another connection has committed to the file since the last ask:
        another process's, this store's own writer's, or its probe's (the reply cache's check).
        With the reader's connection count: a reopened connection counts afresh."""
        version = self._reader.call(sql.data_version)
        return self._reader.opened, version

    async def get_user_by_username(self, username: str) -> UserRecord:
        user = self._reader.call(partial(sql.select_user_by_username, username=username))
        if user is None:
            raise NotFound(f"user {username!r} not found")
        return user

    async def get_users(self, ids: Sequence[int]) -> list[UserRecord]:
        # 1,000 hits read in one statement held the loop ~10-20 ms: a query per stretch instead.
        found = await gathered(
            ids, lambda chunk: self._reader.call(partial(sql.select_users, ids=chunk))
        )
        return in_given_order(ids, found)

    async def update_user(self, user_id: int, changes: UserChanges, etag: str) -> UserRecord:
        user = await self._writer.run(
            partial(sql.update_user, user_id=user_id, changes=changes, etag=etag)
        )
        self._changed(ChangeKind.UPDATED, user, user.update_time)
        return user

    async def delete_user(self, user_id: int, etag: str) -> UserRecord:
        user = await self._writer.run(partial(sql.delete_user, user_id=user_id, etag=etag))
        self._changed(ChangeKind.DELETED, user, datetime.now(UTC))
        return user

    async def list_users(self, after_id: int, limit: int, username_prefix: str) -> list[UserRecord]:
        if not username_prefix:
            return await self._by_id(after_id, limit, forwards=True)
        page = partial(sql.select_page, after_id=after_id, limit=limit, prefix=username_prefix)
        return await self._filtered(page, username_prefix)

    async def list_users_before(
        self, before_id: int, limit: int, username_prefix: str
    ) -> list[UserRecord]:
        if not username_prefix:
            return await self._by_id(before_id, limit, forwards=False)
        page = partial(
            sql.select_page_before, before_id=before_id, limit=limit, prefix=username_prefix
        )
        return await self._filtered(page, username_prefix)

    async def export_page(self, after_id: int, limit: int, username_prefix: str) -> list[ExportRow]:
        page = partial(
            sql.select_export_page, after_id=after_id, limit=limit, prefix=username_prefix
        )
        if not username_prefix:
            return self._reader.call(page)  # by id: `limit` rows read, however large the table
        return await self._filtered(page, username_prefix)

    async def _by_id(self, at_id: int, limit: int, *, forwards: bool) -> list[UserRecord]:
        """A page by id (`limit` rows read, however large the table), read a stretch at a time
        on the loop: 1,000 users read and built in one go held it 10-16 ms."""
        chunks: list[list[UserRecord]] = []
        while limit > 0:
            if chunks:
                await asyncio.sleep(0)
            size = min(STRETCH, limit)
            select = sql.select_page if forwards else sql.select_page_before
            chunk = self._reader.call(lambda conn: select(conn, at_id, size, ""))  # noqa: B023
            chunks.append(chunk)
            if len(chunk) < size:
                break
            limit -= size
            at_id = chunk[-1].id if forwards else chunk[0].id
        if not forwards:
            chunks.reverse()
        return [user for chunk in chunks for user in chunk]

    async def _filtered(
        self, page: Callable[[sqlite3.Connection], list[_T]], username_prefix: str
    ) -> list[_T]:
        if not self._reader.call(partial(sql.prefix_matches, prefix=username_prefix)):
            return []
        return await self._scanner.run(page)

    async def get_credentials(self, username: str) -> tuple[UserRecord, str]:
        found = self._reader.call(partial(sql.select_credentials, username=username))
        if found is None:
            raise NotFound(f"user {username!r} not found")
        return found

    async def update_account(self, user_id: int, change: AccountChange) -> UserRecord:
        user = await self._writer.run(partial(sql.update_account, user_id=user_id, change=change))
        self._changed(ChangeKind.UPDATED, user, user.update_time)
        return user
