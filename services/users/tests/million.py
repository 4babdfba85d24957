"""A million users in a SQLite file, written straight to it: for the tests that need a big table."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from users_service.store.sqlite import SqliteUserStore

USERS = 1_000_000


def username(index: int) -> str:
    """The username of the index-th seeded user (from 0), in id order."""
    return f"user{index:07}"


def seed_million(db: Path) -> None:
    """USERS users (ids 1 to USERS, in username order), written straight to the file: the
    store's schema, no fsync per row (about 10 s here)."""

    async def create_schema() -> None:
        store = SqliteUserStore(db)
        await store.open()
        await store.close()

    asyncio.run(create_schema())
    now = time.time_ns() // 1000
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.executemany(
            "INSERT INTO users (username, email, display_name, create_time_us, update_time_us,"
            " etag) VALUES (?, ?, '', ?, ?, 'e')",
            ((username(i), f"{username(i)}@example.com", now, now) for i in range(USERS)),
        )
    conn.close()
