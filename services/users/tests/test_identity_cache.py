"""The verified-token cache and the account states behind it: what keeps them honest is the change
feed; while it is lost, every call reads its account from the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from plumbing.tokens import Audience, KeyRing, generate_key_file
from users_service.denials import Unauthenticated
from users_service.identity import Authenticator, TokenIssuer
from users_service.store import AccountChange, ChangeKind, NewUser, UserChange, UserRecord
from users_service.store.sqlite import SqliteUserStore

AUDIENCE = Audience("userstack", "userstack")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteUserStore]:
    # Built without a listener: the changes made here are ones the authenticator never hears,
    # as when a replica's feed is down.
    made = SqliteUserStore(tmp_path / "users.db")
    await made.open()
    yield made
    await made.close()


async def _user(store: SqliteUserStore) -> UserRecord:
    [outcome] = await store.create_users([NewUser("ada")])
    assert outcome.user is not None
    return outcome.user


async def test_a_missed_change_is_read_from_the_store_while_the_feed_is_lost(
    store: SqliteUserStore, tmp_path: Path
) -> None:
    generate_key_file(tmp_path / "keys")
    keys = KeyRing(tmp_path / "keys")
    authenticator = Authenticator(store, keys, AUDIENCE)
    user = await _user(store)
    token, _ = TokenIssuer(keys, AUDIENCE, 900).issue(user)
    bearer = f"Bearer {token}"
    assert (await authenticator.caller(bearer)) is not None
    assert authenticator.cached(bearer) is not None  # now known: no await needed
    await store.update_account(user.id, AccountChange())  # revoked, unheard
    assert authenticator.cached(bearer) is not None  # what the feed exists to prevent
    authenticator.feed_state("the change feed from the database was lost")
    assert authenticator.cached(bearer) is None  # nothing trusted from memory
    with pytest.raises(Unauthenticated, match="revoked"):
        await authenticator.caller(bearer)
    authenticator.feed_state(None)
    with pytest.raises(Unauthenticated, match="revoked"):
        await authenticator.caller(bearer)


async def test_a_heard_change_revokes_without_reading_the_store(
    store: SqliteUserStore, tmp_path: Path
) -> None:
    generate_key_file(tmp_path / "keys")
    keys = KeyRing(tmp_path / "keys")
    authenticator = Authenticator(store, keys, AUDIENCE)
    user = await _user(store)
    token, _ = TokenIssuer(keys, AUDIENCE, 900).issue(user)
    bearer = f"Bearer {token}"
    await authenticator.caller(bearer)
    changed = await store.update_account(user.id, AccountChange(disabled=True))
    authenticator.changed(UserChange(ChangeKind.UPDATED, changed, changed.update_time))
    with pytest.raises(Unauthenticated, match="disabled"):
        authenticator.cached(bearer)
