"""Versioned PostgreSQL schema migrations, applied at start under an advisory lock."""

from __future__ import annotations

from typing import Any

import psycopg

# Append only: never edit a migration that has shipped; add the next version instead.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE users (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            username text NOT NULL,
            email text NOT NULL DEFAULT '',
            display_name text NOT NULL DEFAULT '',
            create_time timestamptz NOT NULL,
            update_time timestamptz NOT NULL,
            etag text NOT NULL
        )""",
        # The database, not a read-then-write, keeps usernames unique case-insensitively, so
        # concurrent creates through several replicas cannot both win.
        "CREATE UNIQUE INDEX users_username ON users (lower(username))",
        """CREATE TABLE idempotency_keys (
            request_id text PRIMARY KEY,
            user_id bigint NOT NULL,
            fingerprint text NOT NULL,
            create_time timestamptz NOT NULL
        )""",
        "CREATE TABLE store_probe (id integer PRIMARY KEY CHECK (id = 1), token text NOT NULL)",
    ),
    # The service's validation rules (validation.py), kept by the database too: a row that breaks
    # them cannot come from another client or a bug. (The email's syntax stays the service's.)
    # Letters in either case (~*): the service refuses capitals, but the store's case-insensitive
    # uniqueness, its own guarantee, stays testable below the service.
    (
        """ALTER TABLE users
            ADD CONSTRAINT users_username_format CHECK (username ~* '^[a-z0-9._-]{3,32}$'),
            ADD CONSTRAINT users_email_length CHECK (char_length(email) <= 254),
            ADD CONSTRAINT users_display_name_length CHECK (char_length(display_name) <= 64)""",
        """ALTER TABLE idempotency_keys
            ADD CONSTRAINT idempotency_keys_request_id_length
            CHECK (char_length(request_id) BETWEEN 1 AND 128)""",
    ),
    # Accounts (docs/access.md): a password hash ('' for none), a role, a disabled flag, and the
    # token version that revocation bumps. Users from before read as members without a password.
    (
        """ALTER TABLE users
            ADD COLUMN password_hash text NOT NULL DEFAULT '',
            ADD COLUMN role text NOT NULL DEFAULT 'member'
                CONSTRAINT users_role CHECK (role IN ('member', 'admin')),
            ADD COLUMN disabled boolean NOT NULL DEFAULT false,
            ADD COLUMN token_version bigint NOT NULL DEFAULT 0""",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
# Any constant: every replica takes the same lock, so one migrates while the others wait.
MIGRATION_LOCK = 0x75736572735F7631  # "users_v1"


async def apply_migrations(conn: psycopg.AsyncConnection[Any]) -> int:
    """Applies every migration newer than the database's; returns the schema version.

    One transaction holds the advisory lock, the DDL and the version rows: replicas starting
    together apply each migration once, and a failed migration leaves nothing behind.
    """
    async with conn.transaction():
        # Not the calls' timeouts (store.postgres): replicas wait for the one that migrates, and
        # a migration takes as long as it takes.
        await conn.execute("SET LOCAL lock_timeout = 0")
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, applied_time timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        row = await cursor.fetchone()
        current = int(row[0]) if row is not None else 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema v{current} is newer than this code (v{SCHEMA_VERSION})"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
    return SCHEMA_VERSION
