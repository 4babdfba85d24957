"""What only the SQLite store does: reads on the event loop never wait long for a lock."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from users_service.store import NotFound, StoreUnavailable
from users_service.store.sqlite import READ_BUSY_TIMEOUT_MS, SqliteUserStore


async def test_a_read_that_meets_a_lock_fails_fast_instead_of_stalling_the_loop(
    tmp_path: Path,
) -> None:
    store = SqliteUserStore(tmp_path / "users.db")
    await store.open()  # migrated; no connection held open yet
    try:
        # Another process holding the file exclusively: readers cannot get past it.
        holder = sqlite3.connect(tmp_path / "users.db", isolation_level=None)
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.get_user(1)
            waited = time.monotonic() - started
        finally:
            holder.rollback()
            holder.close()
        # Reads run on the event loop: the writers' 5 s busy timeout would freeze every call.
        assert READ_BUSY_TIMEOUT_MS / 1000 * 0.9 <= waited < 1.0
        with pytest.raises(NotFound):  # and once the lock is gone it serves again
            await store.get_user(1)
    finally:
        await store.close()
