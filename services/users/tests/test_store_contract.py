"""The UserStore contract: one suite, run against SQLite and against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from users.v1 import users_pb2
from users_service.convert import user_message
from users_service.export import user_batch
from users_service.store import (
    AccountChange,
    AlreadyExists,
    ChangeKind,
    CreateStatus,
    NewUser,
    NotFound,
    StaleEtag,
    UserChanges,
    UserRecord,
    UserStore,
)
from users_service.store.factory import build_store

from .listening import Heard


@dataclass(frozen=True)
class Opened:
    """An opened store and what it has heard."""

    store: UserStore
    heard: Heard


OpenStore = Callable[[], Awaitable[Opened]]


# The PostgreSQL side is slow: a server for the session, a database per test (test-quick: SQLite).
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same contract for both stores: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'users.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def open_store(database_url: str) -> AsyncIterator[OpenStore]:
    """Opens stores on the one database (several = several replicas); closes them all."""
    opened: list[Opened] = []

    async def open_() -> Opened:
        heard = Heard()
        store = build_store(database_url, heard.record)
        await store.open()
        opened.append(Opened(store, heard))
        return opened[-1]

    yield open_
    for each in opened:
        await each.store.close()


@pytest.fixture
async def one(open_store: OpenStore) -> Opened:
    """One opened store."""
    return await open_store()


async def create(store: UserStore, *users: NewUser) -> list[UserRecord]:
    outcomes = await store.create_users(users)
    assert [o.status for o in outcomes] == [CreateStatus.CREATED] * len(users)
    return [o.user for o in outcomes if o.user is not None]


async def test_a_created_user_reads_back_by_id_and_by_username_in_any_case(one: Opened) -> None:
    [ada] = await create(one.store, NewUser("ada", email="ada@example.com", display_name="Ada"))
    assert (ada.username, ada.email, ada.display_name) == ("ada", "ada@example.com", "Ada")
    assert ada.create_time == ada.update_time
    assert ada.create_time.tzinfo is not None
    assert ada.etag
    assert await one.store.get_user(ada.id) == ada
    assert await one.store.get_user_by_username("ADA") == ada


async def test_each_created_user_is_the_user_stored_field_for_field(one: Opened) -> None:
    # One shared transaction: defaults, every field set, an account, a taken name, a replay.
    full = NewUser("full", email="Zoë@Example.com", display_name="Zoë 'x' Ünïcode", request_id="r")
    root = NewUser("root", email="root@example.com", password_hash="$argon2id$x", role="admin")
    outcomes = await one.store.create_users([NewUser("plain"), full, root, NewUser("PLAIN"), full])
    assert [o.status for o in outcomes] == [CreateStatus.CREATED] * 3 + [
        CreateStatus.TAKEN,
        CreateStatus.REPLAYED,
    ]
    created = [o.user for o in outcomes[:3]]
    assert outcomes[4].user == created[1]
    assert await one.store.get_users([u.id for u in created if u is not None]) == created
    for user in created:
        assert user is not None
        assert (user.disabled, user.token_version) == (False, 0)
        assert await one.store.get_user_by_username(user.username) == user


async def test_reading_a_missing_user_raises_not_found(one: Opened) -> None:
    with pytest.raises(NotFound):
        await one.store.get_user(12345)
    with pytest.raises(NotFound):
        await one.store.get_user_by_username("nobody")


async def test_get_users_answers_in_the_order_asked_once_each_without_misses(
    one: Opened,
) -> None:
    ada, bob, cy = await create(one.store, NewUser("ada"), NewUser("bob"), NewUser("cyd"))
    await one.store.delete_user(bob.id, "")
    asked = [cy.id, 999_999, ada.id, bob.id, cy.id]
    assert await one.store.get_users(asked) == [cy, ada]
    assert await one.store.get_users([]) == []


async def test_get_users_reads_a_thousand_in_the_order_asked(one: Opened) -> None:
    users = await create(one.store, *(NewUser(f"user{i:04}") for i in range(1000)))
    backwards = [user.id for user in reversed(users)]
    assert await one.store.get_users(backwards) == users[::-1]


async def test_a_batch_reports_taken_usernames_case_insensitively_in_order(one: Opened) -> None:
    await create(one.store, NewUser("ada"))
    outcomes = await one.store.create_users(
        [NewUser("bob"), NewUser("ADA"), NewUser("cyd"), NewUser("Bob")]
    )
    assert [o.status for o in outcomes] == [
        CreateStatus.CREATED,
        CreateStatus.TAKEN,
        CreateStatus.CREATED,
        CreateStatus.TAKEN,
    ]
    ids = [o.user.id for o in outcomes if o.user is not None]
    assert ids == sorted(ids)


async def test_a_large_batch_is_created_in_order(one: Opened) -> None:
    users = await create(one.store, *(NewUser(f"user{i:04}") for i in range(1000)))
    assert [u.username for u in users] == [f"user{i:04}" for i in range(1000)]
    assert [u.id for u in users] == sorted(u.id for u in users)


async def test_a_request_id_replays_its_user_and_refuses_another(one: Opened) -> None:
    first = NewUser("ada", email="a@example.com", request_id="req-1")
    [ada] = await create(one.store, first)
    [again] = await one.store.create_users([first])
    assert again.status is CreateStatus.REPLAYED
    assert again.user == ada
    [other] = await one.store.create_users([NewUser("bob", request_id="req-1")])
    assert other.status is CreateStatus.KEY_REUSED
    await one.store.delete_user(ada.id, "")
    [gone] = await one.store.create_users([first])
    assert gone.status is CreateStatus.REPLAYED_GONE
    with pytest.raises(NotFound):
        await one.store.get_user_by_username("bob")


async def test_an_update_applies_the_changes_with_a_new_etag_and_time(one: Opened) -> None:
    [ada] = await create(one.store, NewUser("ada", email="a@example.com"))
    updated = await one.store.update_user(ada.id, UserChanges(display_name="Ada L"), ada.etag)
    assert (updated.username, updated.email, updated.display_name) == (
        "ada",
        "a@example.com",
        "Ada L",
    )
    assert updated.etag != ada.etag
    assert updated.update_time >= ada.update_time
    assert updated.create_time == ada.create_time
    assert await one.store.get_user(ada.id) == updated
    renamed = await one.store.update_user(ada.id, UserChanges(username="lovelace"), "")
    assert renamed.username == "lovelace"


async def test_an_update_refuses_a_stale_etag_a_missing_user_and_a_taken_name(
    one: Opened,
) -> None:
    ada, _ = await create(one.store, NewUser("ada"), NewUser("bob"))
    await one.store.update_user(ada.id, UserChanges(email="new@example.com"), ada.etag)
    with pytest.raises(StaleEtag):
        await one.store.update_user(ada.id, UserChanges(email="x@example.com"), ada.etag)
    with pytest.raises(NotFound):
        await one.store.update_user(999_999, UserChanges(email="x@example.com"), "")
    with pytest.raises(AlreadyExists):
        await one.store.update_user(ada.id, UserChanges(username="BOB"), "")
    assert (await one.store.get_user(ada.id)).email == "new@example.com"


async def test_a_delete_returns_the_user_and_checks_the_etag(one: Opened) -> None:
    [ada] = await create(one.store, NewUser("ada"))
    with pytest.raises(StaleEtag):
        await one.store.delete_user(ada.id, "not-the-etag")
    assert await one.store.delete_user(ada.id, ada.etag) == ada
    with pytest.raises(NotFound):
        await one.store.get_user(ada.id)
    with pytest.raises(NotFound):
        await one.store.delete_user(ada.id, "")
    await create(one.store, NewUser("ADA"))  # the name is free again


async def test_pages_go_by_id_with_a_literal_prefix(one: Opened) -> None:
    names = ["a_b1", "axb2", "a_b3", "b_b4", "a.b5", "a_b6"]
    users = await create(one.store, *(NewUser(name) for name in names))
    page = await one.store.list_users(0, 2, "a_")
    assert [u.username for u in page] == ["a_b1", "a_b3"]
    page = await one.store.list_users(page[-1].id, 2, "a_")
    assert [u.username for u in page] == ["a_b6"]
    everyone = await one.store.list_users(0, 100, "")
    assert everyone == users
    assert await one.store.list_users(users[-1].id, 100, "") == []


async def test_export_pages_are_list_pages_field_for_field(one: Opened) -> None:
    names = ["a_b1", "axb2", "a_b3", "b_b4", "a.b5", "a_b6"]
    users = await create(one.store, *(NewUser(name, email=f"{name}@x.org") for name in names))
    await one.store.update_user(users[0].id, UserChanges(display_name="Changed"), "")
    await one.store.update_account(users[2].id, AccountChange(role="admin", disabled=True))

    async def both(after_id: int, limit: int, prefix: str) -> tuple[Any, Any]:
        rows = await one.store.export_page(after_id, limit, prefix)
        records = await one.store.list_users(after_id, limit, prefix)
        return user_batch(rows), users_pb2.UserBatch(users=map(user_message, records))

    for after_id, limit, prefix in ((0, 100, ""), (0, 2, "A_"), (users[2].id, 2, "a_")):
        exported, listed = await both(after_id, limit, prefix)
        assert exported == listed
        assert exported.users, "the pages should not be empty"
    exported, _ = await both(0, 100, "")
    [changed, _, admin] = exported.users[:3]
    assert changed.update_time != changed.create_time
    assert (admin.role, admin.disabled) == (users_pb2.ROLE_ADMIN, True)
    assert await one.store.export_page(users[-1].id, 100, "") == []


async def test_pages_before_an_id_are_the_last_ones_in_id_order(one: Opened) -> None:
    outcomes = await one.store.create_users([NewUser(f"b_{i}") for i in range(5)])
    ids = [o.user.id for o in outcomes if o.user is not None]
    await one.store.create_users([NewUser("bzz"), NewUser("b-other")])
    page = await one.store.list_users_before(ids[4], 2, "B_")
    assert [u.username for u in page] == ["b_2", "b_3"]
    assert [u.username for u in await one.store.list_users_before(ids[1], 10, "b_")] == ["b_0"]
    assert await one.store.list_users_before(ids[0], 10, "b_") == []


async def test_pages_larger_than_a_read_stretch_are_whole_both_ways(one: Opened) -> None:
    # SQLite reads an unfiltered page 100 users at a time (stretches.py): every boundary holds.
    users = await create(one.store, *(NewUser(f"s{i:03}") for i in range(250)))
    assert await one.store.list_users(0, 200, "") == users[:200]
    assert await one.store.list_users(0, 300, "") == users
    assert await one.store.list_users(users[9].id, 151, "") == users[10:161]
    assert await one.store.list_users_before(users[-1].id, 220, "") == users[-221:-1]
    assert await one.store.list_users_before(users[-1].id, 200, "") == users[-201:-1]
    assert await one.store.list_users_before(users[150].id, 999, "") == users[:150]
    assert await one.store.list_users_before(users[0].id, 100, "") == []


async def test_every_committed_change_is_reported_once_in_order(one: Opened) -> None:
    [ada] = await create(one.store, NewUser("ada", request_id="r1"))
    await one.store.create_users([NewUser("ada", request_id="r1"), NewUser("ada")])  # no change
    updated = await one.store.update_user(ada.id, UserChanges(email="a@example.com"), "")
    deleted = await one.store.delete_user(ada.id, "")
    changes = await one.heard.first(3)
    assert [(c.kind, c.user) for c in changes] == [
        (ChangeKind.CREATED, ada),
        (ChangeKind.UPDATED, updated),
        (ChangeKind.DELETED, deleted),
    ]
    assert changes[0].time == ada.update_time
    assert changes[2].time >= updated.update_time
    with pytest.raises(NotFound):
        await one.store.delete_user(updated.id, "")
    await asyncio.sleep(0.2)  # a failed write reports nothing, even late
    assert len(one.heard.changes) == 3


async def test_the_probe_writes_and_reads_back(one: Opened) -> None:
    await one.store.probe()
    await one.store.probe()


async def test_concurrent_creates_of_one_username_through_two_stores_make_one_user(
    open_store: OpenStore,
) -> None:
    a, b = await open_store(), await open_store()
    spellings = ["same", "SAME", "Same", "sAmE"] * 5
    outcomes = await asyncio.gather(
        *(
            (a if i % 2 else b).store.create_users([NewUser(name, email=f"{i}@example.com")])
            for i, name in enumerate(spellings)
        )
    )
    statuses = [status for [status] in ([o.status for o in each] for each in outcomes)]
    assert statuses.count(CreateStatus.CREATED) == 1
    assert statuses.count(CreateStatus.TAKEN) == len(spellings) - 1
    assert len(await a.store.list_users(0, 100, "")) == 1


async def test_one_request_id_through_two_stores_makes_one_user(open_store: OpenStore) -> None:
    a, b = await open_store(), await open_store()
    user = NewUser("ada", email="ada@example.com", request_id="retried-1")
    outcomes = await asyncio.gather(
        *((a if i % 2 else b).store.create_users([user]) for i in range(20))
    )
    flat = [outcome for each in outcomes for outcome in each]
    assert sorted(o.status.value for o in flat) == ["created"] + ["replayed"] * 19
    assert len({o.user.id for o in flat if o.user is not None}) == 1
    assert len(await b.store.list_users(0, 100, "")) == 1


async def test_one_request_id_for_different_users_through_two_stores_makes_one(
    open_store: OpenStore,
) -> None:
    a, b = await open_store(), await open_store()
    outcomes = await asyncio.gather(
        *(
            (a if i % 2 else b).store.create_users([NewUser(f"user{i}", request_id="shared")])
            for i in range(10)
        )
    )
    statuses = [o.status for each in outcomes for o in each]
    assert statuses.count(CreateStatus.CREATED) == 1
    assert statuses.count(CreateStatus.KEY_REUSED) == 9
    assert len(await a.store.list_users(0, 100, "")) == 1


async def test_pages_read_through_another_store_are_the_same(open_store: OpenStore) -> None:
    a, b = await open_store(), await open_store()
    await create(a.store, *(NewUser(f"user{i:02}") for i in range(25)))
    seen: list[UserRecord] = []
    after = 0
    while page := await (b if len(seen) % 20 else a).store.list_users(after, 10, "user"):
        seen += page
        after = page[-1].id
    assert seen == await a.store.list_users(0, 100, "")


async def test_expired_idempotency_keys_are_purged_and_free_again(one: Opened) -> None:
    await create(one.store, NewUser("ada", request_id="req-old"))
    assert await one.store.purge_idempotency_keys(3600) == 0  # not an hour old yet
    await asyncio.sleep(0.01)
    assert await one.store.purge_idempotency_keys(0.001) == 1
    [reused] = await one.store.create_users([NewUser("bob", request_id="req-old")])
    assert reused.status is CreateStatus.CREATED  # the key was forgotten, not reused
