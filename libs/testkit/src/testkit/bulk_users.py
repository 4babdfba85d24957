"""Many users written straight into a users service SQLite file: a million in seconds, where
ImportUsers would take minutes (test_starvation.py and the bench's starvation row)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path


def username(index: int) -> str:
    """The username of the user written at `index` (0-based): user0000000, user0000001..."""
    return f"user{index:07}"


def write_users(db: Path, count: int, migrate: Callable[[sqlite3.Connection], object]) -> None:
    """Creates `db` with the service's schema (`migrate`: the store's apply_migrations, passed
    in so that this library knows nothing of the service) and `count` users, ids 1..count.

    One transaction, no fsync: the file is a fixture, not data to keep.

    Example:
        >>> write_users(tmp / "users.db", 1_000_000, apply_migrations)  # doctest: +SKIP
    """
    db.parent.mkdir(parents=True, exist_ok=True)
    now = time.time_ns() // 1000
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO users (username, email, display_name, create_time_us, update_time_us,"
            " etag) VALUES (?, ?, '', ?, ?, 'e')",
            ((username(i), f"{username(i)}@example.com", now, now) for i in range(count)),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
