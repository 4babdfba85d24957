"""The PostgreSQL UserStore: a psycopg async pool, NOTIFY for changes, group commit for creates."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from users_service.database_url import redact
from users_service.store import postgres_sql as sql
from users_service.store.base import (
    AccountChange,
    ChangeListener,
    CreateOutcome,
    ExportRow,
    FeedStateListener,
    NewUser,
    UserChanges,
    UserRecord,
    in_given_order,
)
from users_service.store.errors import NotFound, StoreUnavailable
from users_service.store.group_commit import GroupCommit
from users_service.store.postgres_changes import ChangeFeed
from users_service.store.postgres_migrations import SCHEMA_VERSION, apply_migrations

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

POOL_MIN_SIZE = 1
DEFAULT_POOL_SIZE = 8
# How long a call waits for a pooled connection before it fails UNAVAILABLE.
POOL_TIMEOUT_SECONDS = 5.0
# A dead database must turn health NOT_SERVING within a probe interval or two, not hang it. The
# probe has a connection of its own: calls that keep every pooled connection busy make a replica
# busy, not down (NOT_SERVING would move its load onto the others, and on).
PROBE_TIMEOUT_SECONDS = 2.0
# The service's connection defaults: fail fast on an unreachable server, notice a silent peer.
# Each applies only where neither the URL nor its libpq environment variable (the name beside it,
# where libpq has one) sets the parameter.
_CONNECTION_DEFAULTS: dict[str, tuple[str | None, str]] = {
    "application_name": ("PGAPPNAME", "users-service"),
    "connect_timeout": ("PGCONNECT_TIMEOUT", "5"),
    "keepalives_idle": (None, "10"),
    "keepalives_interval": (None, "5"),
    "keepalives_count": (None, "3"),
    "tcp_user_timeout": (None, "15000"),
    # Enforced by the server on each session (docs/security.md): a frozen replica's transaction
    # is ended after 2 s idle, releasing its locks (the create lock included), before another
    # replica's lock wait (5 s) gives up; no statement runs past 10 s.
    "options": (
        "PGOPTIONS",
        "-c statement_timeout=10s -c lock_timeout=5s -c idle_in_transaction_session_timeout=2s",
    ),
}


def conninfo(url: str, env: Mapping[str, str] | None = None) -> str:
    """The URL's connection string, with the service's defaults for what neither the URL nor
    the PG* environment variables (default: os.environ) set."""
    env = os.environ if env is None else env
    given = conninfo_to_dict(url)
    defaults = {
        name: value
        for name, (variable, value) in _CONNECTION_DEFAULTS.items()
        if name not in given and not (variable and env.get(variable))
    }
    return make_conninfo(url, **defaults)


class PostgresUserStore:
    """A UserStore in a PostgreSQL database that several replicas may share.

    Example:
        >>> store = PostgresUserStore("postgresql://users:secret@db/users", on_change=print)
        >>> await store.open()  # doctest: +SKIP
        >>> [outcome] = await store.create_users([NewUser("ada")])
    """

    def __init__(
        self,
        url: str,
        on_change: ChangeListener | None = None,
        on_feed_state: FeedStateListener | None = None,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        on_commit_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._label = redact(url)
        self._conninfo = conninfo(url)
        self._pool = AsyncConnectionPool(
            self._conninfo,
            min_size=min(POOL_MIN_SIZE, pool_size),
            max_size=pool_size,
            timeout=POOL_TIMEOUT_SECONDS,
            reconnect_timeout=30.0,
            kwargs={"autocommit": True},  # transactions are explicit: conn.transaction()
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="users-store",
        )
        self._feed = (
            ChangeFeed(self._conninfo, on_change, self._label, on_feed_state) if on_change else None
        )
        self._creates = GroupCommit(self._insert, on_commit_batch)
        self._probe_conn: sql.Conn | None = None
        self._probing = asyncio.Lock()

    async def open(self) -> None:
        try:
            async with await psycopg.AsyncConnection.connect(self._conninfo) as conn:
                await apply_migrations(conn)
            await self._pool.open(wait=True, timeout=POOL_TIMEOUT_SECONDS)
            if self._feed is not None:
                await self._feed.start()
        except psycopg.Error as error:
            await self.close()
            raise StoreUnavailable(f"cannot open database {self._label}: {error}") from error
        logger.info("store open", extra={"database": self._label, "schema": SCHEMA_VERSION})

    async def close(self) -> None:
        if self._feed is not None:
            await self._feed.close()
        await self._drop_probe_connection()
        await self._pool.close()

    async def _run(self, work: Callable[[sql.Conn], Awaitable[_T]]) -> _T:
        try:
            async with self._pool.connection() as conn:
                return await work(conn)
        except psycopg.Error as error:  # constraint violations are outcomes, handled in sql
            raise StoreUnavailable(f"database {self._label} cannot serve: {error}") from error

    async def probe(self, *, write: bool = True) -> None:
        if self._feed is not None and not self._feed.connected:
            raise StoreUnavailable(f"the change feed from {self._label} is disconnected")
        async with self._probing:
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                    conn = await self._probe_connection()
                    await (sql.write_probe(conn) if write else conn.execute("SELECT 1"))
            except TimeoutError:
                await self._drop_probe_connection()
                raise StoreUnavailable(f"database {self._label} did not answer in time") from None
            except psycopg.Error as error:
                await self._drop_probe_connection()
                raise StoreUnavailable(f"database {self._label} cannot serve: {error}") from error

    async def _probe_connection(self) -> sql.Conn:
        if self._probe_conn is None or self._probe_conn.closed:
            self._probe_conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True
            )
        return self._probe_conn

    async def _drop_probe_connection(self) -> None:
        # After a failure or a timeout its state is unknown: the next probe connects afresh.
        if self._probe_conn is not None:
            conn, self._probe_conn = self._probe_conn, None
            await conn.close()

    async def create_users(self, users: Sequence[NewUser]) -> list[CreateOutcome]:
        return await self._creates.submit(users)

    async def _insert(self, users: Sequence[NewUser]) -> list[CreateOutcome]:
        # One create transaction at a time across replicas (see sql.CREATE_LOCK): creates cannot
        # deadlock each other, and an update or delete touches one row and one name, so none can
        # hold what a create waits for while waiting for it.
        return await self._run(partial(sql.insert_users, users=users))

    async def get_user(self, user_id: int) -> UserRecord:
        user = await self._run(partial(sql.select_user, user_id=user_id))
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    async def get_user_by_username(self, username: str) -> UserRecord:
        user = await self._run(partial(sql.select_user_by_username, username=username))
        if user is None:
            raise NotFound(f"user {username!r} not found")
        return user

    async def get_users(self, ids: Sequence[int]) -> list[UserRecord]:
        return in_given_order(ids, await self._run(partial(sql.select_users, ids=ids)))

    async def update_user(self, user_id: int, changes: UserChanges, etag: str) -> UserRecord:
        return await self._run(
            partial(sql.update_user, user_id=user_id, changes=changes, etag=etag)
        )

    async def purge_idempotency_keys(self, older_than_seconds: float) -> int:
        return await self._run(
            partial(sql.purge_idempotency_keys, older_than_seconds=older_than_seconds)
        )

    async def delete_user(self, user_id: int, etag: str) -> UserRecord:
        return await self._run(partial(sql.delete_user, user_id=user_id, etag=etag))

    async def list_users(self, after_id: int, limit: int, username_prefix: str) -> list[UserRecord]:
        return await self._run(
            partial(sql.select_page, after_id=after_id, limit=limit, prefix=username_prefix)
        )

    async def export_page(self, after_id: int, limit: int, username_prefix: str) -> list[ExportRow]:
        return await self._run(
            partial(sql.select_export_page, after_id=after_id, limit=limit, prefix=username_prefix)
        )

    async def get_credentials(self, username: str) -> tuple[UserRecord, str]:
        found = await self._run(partial(sql.select_credentials, username=username))
        if found is None:
            raise NotFound(f"user {username!r} not found")
        return found

    async def update_account(self, user_id: int, change: AccountChange) -> UserRecord:
        return await self._run(partial(sql.update_account, user_id=user_id, change=change))

    async def list_users_before(
        self, before_id: int, limit: int, username_prefix: str
    ) -> list[UserRecord]:
        return await self._run(
            partial(
                sql.select_page_before, before_id=before_id, limit=limit, prefix=username_prefix
            ),
        )
