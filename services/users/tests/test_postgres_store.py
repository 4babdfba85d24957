"""What only the PostgreSQL store does: changes across replicas, the feed's reconnection,
migrations under a lock, failing to open without leaking the password, creates in id order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
from users_service.store import (
    ChangeKind,
    CreateStatus,
    NewUser,
    StoreUnavailable,
    UserChange,
    UserChanges,
)
from users_service.store.postgres import PostgresUserStore, conninfo
from users_service.store.postgres_migrations import SCHEMA_VERSION

from .listening import Heard, eventually
from .pg_server import PASSWORD, PostgresServer

# A PostgreSQL server for the session (initdb and start: seconds) and a database per test.
pytestmark = pytest.mark.slow

Conn = psycopg.AsyncConnection[Any]
OpenStore = Callable[..., Awaitable[PostgresUserStore]]


@pytest.fixture
async def two_replicas(postgres_url: str) -> AsyncIterator[tuple[PostgresUserStore, Heard]]:
    """Store `a` (which nobody listens to) and the listener of store `b`, on one database."""
    heard = Heard()
    a, b = PostgresUserStore(postgres_url), PostgresUserStore(postgres_url, heard.record)
    await a.open()
    await b.open()
    yield a, heard
    await a.close()
    await b.close()


async def test_a_change_made_through_one_store_is_heard_by_another(
    two_replicas: tuple[PostgresUserStore, Heard],
) -> None:
    a, heard = two_replicas
    [outcome] = await a.create_users([NewUser("ada")])
    assert outcome.user is not None
    updated = await a.update_user(outcome.user.id, UserChanges(display_name="Ada"), "")
    await a.delete_user(updated.id, updated.etag)
    kinds = [(await heard.next()).kind for _ in range(3)]
    assert kinds == [ChangeKind.CREATED, ChangeKind.UPDATED, ChangeKind.DELETED]


async def test_the_change_feed_reconnects_after_its_connection_is_killed(
    two_replicas: tuple[PostgresUserStore, Heard],
    postgres_server: PostgresServer,
    postgres_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, heard = two_replicas
    database = postgres_url.rsplit("/", 1)[1]
    with caplog.at_level(logging.WARNING), postgres_server.admin() as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (database,),
        ).fetchone()
        assert killed == (1,)
        await eventually(lambda: "change feed reconnected" in caplog.text)
    assert "change feed lost" in caplog.text
    await a.create_users([NewUser("after")])
    assert (await heard.next()).user.username == "after"


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    stores = [PostgresUserStore(postgres_url) for _ in range(3)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
    finally:
        for store in stores:
            await store.close()
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cursor = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert await cursor.fetchall() == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


async def test_a_schema_newer_than_the_code_is_refused(postgres_url: str) -> None:
    store = PostgresUserStore(postgres_url)
    await store.open()
    await store.close()
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO schema_migrations (version) VALUES (999)")
    with pytest.raises(RuntimeError, match="v999 is newer than this code"):
        await PostgresUserStore(postgres_url).open()


async def test_an_unreachable_database_fails_to_open_without_showing_the_password(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.url("postgres").replace(f":{postgres_server.port}/", ":1/")
    with pytest.raises(StoreUnavailable) as caught:
        await PostgresUserStore(url).open()
    assert "cannot open database postgresql://userstack:***@127.0.0.1:1/postgres" in str(
        caught.value
    )
    assert PASSWORD not in str(caught.value)


async def test_pg_environment_variables_win_over_the_services_connection_defaults(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGAPPNAME", "users-replica-7")
    store = PostgresUserStore(postgres_url)
    await store.open()
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            cursor = await conn.execute(
                "SELECT DISTINCT application_name FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert await cursor.fetchall() == [("users-replica-7",)]
    finally:
        await store.close()
    monkeypatch.delenv("PGAPPNAME")
    assert "application_name=users-service" in conninfo(postgres_url)
    assert "application_name=mine" in conninfo(postgres_url + "?application_name=mine")


async def test_the_probe_fails_while_the_database_is_gone_and_passes_once_back(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = PostgresUserStore(postgres_url)  # no change feed: the pool's connections alone
    await store.open()
    database = postgres_url.rsplit("/", 1)[1]
    try:
        await store.probe()
        postgres_server.cut_off(database)
        try:
            with pytest.raises(StoreUnavailable):
                await store.probe()
        finally:
            postgres_server.restore(database)
        for _ in range(60):  # the pool reconnects with backoff: a few seconds at most
            try:
                await store.probe()
                break
            except StoreUnavailable:
                await asyncio.sleep(0.25)
        await store.probe()
    finally:
        await store.close()


@pytest.fixture
async def open_store(
    postgres_url: str,
) -> AsyncIterator[Callable[..., Awaitable[PostgresUserStore]]]:
    """Opens stores (replicas) on the test's database, closed at teardown: open_store(**kw)."""
    opened: list[PostgresUserStore] = []

    async def open_(**kwargs: Any) -> PostgresUserStore:
        store = PostgresUserStore(postgres_url, **kwargs)
        await store.open()
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
async def locks(postgres_url: str) -> AsyncIterator[tuple[Conn, Conn]]:
    """A `blocker` whose open transaction holds locks, and an autocommit `observer` of waiters."""
    connect = psycopg.AsyncConnection.connect
    async with (
        await connect(postgres_url) as blocker,
        await connect(postgres_url, autocommit=True) as observer,
    ):
        yield blocker, observer


async def _hold_username(blocker: Conn, username: str = "pause") -> None:
    """Inserts `username` in the blocker's transaction: creates of it wait for its rollback."""
    await blocker.execute(
        "INSERT INTO users (username, create_time, update_time, etag)"
        " VALUES (%s, now(), now(), '-')",
        (username,),
    )


async def _waiting(observer: Conn) -> int:
    """How many transactions on this database wait for a lock now."""
    cursor = await observer.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def _lock_waits(observer: Conn, count: int) -> None:
    for _ in range(200):
        if await _waiting(observer) == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {count} transactions waiting for a lock")


async def _blocked_or_done(observer: Conn, task: asyncio.Task[Any]) -> None:
    """Returns once `task` is done or a second transaction waits for a lock."""
    for _ in range(200):
        if task.done() or await _waiting(observer) == 2:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the second create neither finished nor waited")


async def test_a_reader_paging_while_two_replicas_create_skips_no_user(
    open_store: OpenStore, locks: tuple[Conn, Conn]
) -> None:
    """Ids are drawn when a row is inserted, so without order an earlier id could commit after a
    later one, behind a reader that has already paged past it. `a` takes an id and then waits
    (on a username a third transaction holds) while `b` creates through another replica."""
    a, b = await open_store(), await open_store()
    blocker, observer = locks
    await _hold_username(blocker)
    first = asyncio.create_task(a.create_users([NewUser("first"), NewUser("pause")]))
    await _lock_waits(observer, 1)
    second = asyncio.create_task(b.create_users([NewUser("second")]))
    await _blocked_or_done(observer, second)
    seen = await b.list_users(0, 100, "")
    await blocker.rollback()
    await asyncio.gather(first, second)
    after = seen[-1].id if seen else 0
    seen += await b.list_users(after, 100, "")
    assert sorted(u.username for u in seen) == ["first", "pause", "second"]


async def test_creates_of_the_same_usernames_in_opposite_orders_do_not_deadlock(
    open_store: OpenStore, locks: tuple[Conn, Conn]
) -> None:
    """Two replicas' batches take the same usernames in opposite orders. Run at once, each would
    hold a name the other waits for and PostgreSQL would abort one (DeadlockDetected); creates
    run one at a time, so the second waits for the first and finds its names taken.

    A third transaction holds `pause` so that b, holding `yyy`, is still running as a starts.
    """
    a, b = await open_store(), await open_store()
    blocker, observer = locks
    await _hold_username(blocker)
    second = asyncio.create_task(b.create_users([NewUser(n) for n in ("yyy", "pause", "xxx")]))
    await _lock_waits(observer, 1)
    first = asyncio.create_task(a.create_users([NewUser("xxx"), NewUser("yyy")]))
    await _lock_waits(observer, 2)
    await blocker.rollback()
    by_a, by_b = await asyncio.gather(first, second)
    assert [o.status for o in by_a] == [CreateStatus.TAKEN] * 2
    assert [o.status for o in by_b] == [CreateStatus.CREATED] * 3


async def test_the_probe_passes_while_every_pooled_connection_is_busy(
    open_store: OpenStore, locks: tuple[Conn, Conn]
) -> None:
    """A replica whose calls keep its pool busy is busy, not down: were it NOT_SERVING, the
    webapp would move its load onto the other replicas, and saturate them in turn."""
    store = await open_store(pool_size=2)
    blocker, observer = locks
    [outcome] = await store.create_users([NewUser("ada")])
    assert outcome.user is not None
    await blocker.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (outcome.user.id,))
    updates = [
        asyncio.create_task(
            store.update_user(outcome.user.id, UserChanges(email=f"{i}@example.com"), "")
        )
        for i in range(2)
    ]
    await _lock_waits(observer, 2)  # both pooled connections wait for the row
    await store.probe()
    await blocker.rollback()
    await asyncio.gather(*updates)


async def test_an_update_that_waited_for_a_lock_is_timed_when_it_happened(
    open_store: OpenStore, locks: tuple[Conn, Conn]
) -> None:
    """now() is when the transaction began: an update that waited for another transaction would
    carry a time before that one's, and watchers would see time go backwards."""
    store = await open_store()
    blocker, observer = locks
    [outcome] = await store.create_users([NewUser("ada")])
    assert outcome.user is not None
    await blocker.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (outcome.user.id,))
    update = asyncio.create_task(
        store.update_user(outcome.user.id, UserChanges(email="a@example.com"), "")
    )
    await _lock_waits(observer, 1)
    await asyncio.sleep(0.05)
    cursor = await blocker.execute("SELECT clock_timestamp()")
    released = await cursor.fetchone()
    assert released is not None
    await blocker.rollback()
    updated = await update
    assert updated.update_time >= released[0]


async def test_a_constraint_the_store_does_not_expect_is_a_store_error_for_each_caller(
    postgres_url: str,
) -> None:
    """The store raises only store errors: a raw psycopg.IntegrityError out of a shared commit
    would fail every caller of the batch with INTERNAL."""
    store = PostgresUserStore(postgres_url)
    await store.open()
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            await conn.execute(
                "ALTER TABLE users ADD CONSTRAINT not_root CHECK (username <> 'root')"
            )
        outcomes = await asyncio.gather(
            store.create_users([NewUser("root")]),
            store.create_users([NewUser("ada")]),
            return_exceptions=True,
        )
        assert [type(outcome) for outcome in outcomes] == [StoreUnavailable] * 2
        [ada] = await store.create_users([NewUser("ada")])
        assert ada.status is CreateStatus.CREATED
    finally:
        await store.close()


async def test_a_listener_that_fails_stops_the_feed_and_the_probe_says_so(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(change: UserChange) -> None:
        raise RuntimeError(f"cannot handle {change.kind}")

    store = PostgresUserStore(postgres_url, broken)
    await store.open()
    try:
        await store.probe()
        await store.create_users([NewUser("ada")])
        await eventually(lambda: "change feed stopped" in caplog.text)
        with pytest.raises(StoreUnavailable, match="change feed"):
            await store.probe()
    finally:
        await store.close()
