"""Versioned SQLite schema migrations applied at start; PRAGMA user_version records the last."""

from __future__ import annotations

import sqlite3

# Append only: never edit a migration that has shipped; add the next version instead.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            username TEXT NOT NULL,
            email TEXT NOT NULL DEFAULT '',
            display_name TEXT NOT NULL DEFAULT '',
            create_time_us INTEGER NOT NULL,
            update_time_us INTEGER NOT NULL,
            etag TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX users_username ON users (username COLLATE NOCASE)",
        """CREATE TABLE idempotency_keys (
            request_id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            fingerprint TEXT NOT NULL,
            create_time_us INTEGER NOT NULL
        )""",
        "CREATE TABLE store_probe (id INTEGER PRIMARY KEY CHECK (id = 1), probe_time_us INTEGER)",
    ),
    # Accounts (docs/access.md): a password hash ('' for none), a role, a disabled flag, and the
    # token version that revocation bumps. Users from before read as members without a password.
    (
        "ALTER TABLE users ADD COLUMN password_hash TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'member'"
        " CHECK (role IN ('member', 'admin'))",
        "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0"
        " CHECK (disabled IN (0, 1))",
        "ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Applies every migration newer than the database's user_version; returns the new version."""
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema v{current} is newer than this code (v{SCHEMA_VERSION})"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            # PRAGMA takes no parameters; `version` is an int from range().
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION
