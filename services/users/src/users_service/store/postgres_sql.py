"""The SQL of the PostgreSQL store: async functions over one pooled connection."""

# Queries are composed only from constants of this module (column lists, fixed field names);
# every value travels as a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC
from typing import Any, LiteralString

import psycopg

from users_service.store.base import (
    AccountChange,
    ChangeKind,
    CreateOutcome,
    CreateStatus,
    ExportRow,
    NewUser,
    UserChange,
    UserChanges,
    UserRecord,
)
from users_service.store.errors import AlreadyExists, NotFound, StaleEtag, StoreError
from users_service.store.postgres_changes import CHANNEL, encode

Conn = psycopg.AsyncConnection[Any]
_COLUMNS = (
    "id, username, email, display_name, create_time, update_time, etag, role, disabled,"
    " token_version"
)
# The time of a change: when it happens (clock_timestamp), not when its transaction began (now(),
# maybe before it waited for a lock, and before changes that committed meanwhile), and never
# before the user's last change.
_NOW = "greatest(clock_timestamp(), update_time)"
# Held by every create transaction until it commits, on every replica: ids are drawn from the
# sequence at INSERT, so two creates running at once could commit their ids out of order, and a
# reader that had paged past the later id would never see the earlier one. One create at a time
# (group commit puts all of a replica's waiting creates in one) commits ids in order.
CREATE_LOCK = 0x75736572735F6372  # "users_cr"


async def _one(conn: Conn, query: LiteralString, params: Sequence[Any]) -> Any:
    cursor = await conn.execute(query, params)
    return await cursor.fetchone()


def _record(row: Sequence[Any]) -> UserRecord:
    return UserRecord(
        id=row[0],
        username=row[1],
        email=row[2],
        display_name=row[3],
        create_time=row[4].astimezone(UTC),
        update_time=row[5].astimezone(UTC),
        etag=row[6],
        role=row[7],
        disabled=row[8],
        token_version=row[9],
    )


async def select_user(conn: Conn, user_id: int) -> UserRecord | None:
    """The user with this id, or None."""
    row = await _one(conn, f"SELECT {_COLUMNS} FROM users WHERE id = %s", (user_id,))
    return None if row is None else _record(row)


async def select_user_by_username(conn: Conn, username: str) -> UserRecord | None:
    """The user with this username (case-insensitively, through the unique index), or None."""
    query = f"SELECT {_COLUMNS} FROM users WHERE lower(username) = lower(%s)"
    row = await _one(conn, query, (username,))
    return None if row is None else _record(row)


async def select_users(conn: Conn, ids: Sequence[int]) -> list[UserRecord]:
    """The users with these ids, in no particular order."""
    cursor = await conn.execute(
        f"SELECT {_COLUMNS} FROM users WHERE id = ANY(%s::bigint[])", (list(ids),)
    )
    return [_record(row) for row in await cursor.fetchall()]


def _prefix_pattern(prefix: str) -> str:
    """A LIKE pattern matching what starts with `prefix` (its wildcards escaped)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def select_page(conn: Conn, after_id: int, limit: int, prefix: str) -> list[UserRecord]:
    """Up to `limit` users with id > after_id whose username starts with `prefix`, by id."""
    pattern = _prefix_pattern(prefix)
    cursor = await conn.execute(
        f"SELECT {_COLUMNS} FROM users WHERE id > %s AND lower(username) LIKE lower(%s)"
        " ORDER BY id LIMIT %s",
        (after_id, pattern, limit),
    )
    return [_record(row) for row in await cursor.fetchall()]


async def select_page_before(
    conn: Conn, before_id: int, limit: int, prefix: str
) -> list[UserRecord]:
    """The last `limit` users with id < before_id whose username starts with `prefix`, by id."""
    pattern = _prefix_pattern(prefix)
    cursor = await conn.execute(
        f"SELECT {_COLUMNS} FROM users WHERE id < %s AND lower(username) LIKE lower(%s)"
        " ORDER BY id DESC LIMIT %s",
        (before_id, pattern, limit),
    )
    return [_record(row) for row in reversed(await cursor.fetchall())]


def _seconds_and_nanos(column: LiteralString) -> LiteralString:
    """A timestamptz column as whole seconds since the epoch, and nanoseconds (`%%`: psycopg's
    literal `%`)."""
    return (
        f"floor(extract(epoch FROM {column}))::bigint,"
        f" extract(microseconds FROM {column})::bigint %% 1000000 * 1000"
    )


# ExportRow's columns: the times split into seconds and nanoseconds by PostgreSQL, not by Python.
_EXPORT_COLUMNS = (
    "id, username, email, display_name, "
    + _seconds_and_nanos("create_time")
    + ", "
    + _seconds_and_nanos("update_time")
    + ", etag, role, disabled::int"
)


async def select_export_page(conn: Conn, after_id: int, limit: int, prefix: str) -> list[ExportRow]:
    """select_page's users as ExportRows."""
    cursor = await conn.execute(
        f"SELECT {_EXPORT_COLUMNS} FROM users WHERE id > %s AND lower(username) LIKE lower(%s)"
        " ORDER BY id LIMIT %s",
        (after_id, _prefix_pattern(prefix), limit),
    )
    rows: list[ExportRow] = await cursor.fetchall()
    return rows


async def notify(conn: Conn, changes: Sequence[UserChange]) -> None:
    """NOTIFY every replica of the changes, in order, when (and only if) the transaction commits."""
    if changes:
        await conn.execute(
            "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) WITH ORDINALITY AS c(payload, n)"
            " ORDER BY n",
            (CHANNEL, [encode(change) for change in changes]),
        )


async def insert_users(conn: Conn, users: Sequence[NewUser]) -> list[CreateOutcome]:
    """Creates the users in one transaction, one create transaction at a time across replicas
    (so ids commit in order); a taken username is an outcome, not an abort."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_LOCK,))
        outcomes = [await _insert_one(conn, user) for user in users]
        created = [o.user for o in outcomes if o.status is CreateStatus.CREATED and o.user]
        await notify(conn, [UserChange(ChangeKind.CREATED, u, u.update_time) for u in created])
    return outcomes


async def _insert_one(conn: Conn, user: NewUser) -> CreateOutcome:
    if user.request_id and (replay := await _replay(conn, user)) is not None:
        return replay
    # ON CONFLICT DO NOTHING waits for a concurrent insert of the same username to end: if it
    # committed, no row comes back, and the statements below see what it committed.
    row = await _one(
        conn,
        "INSERT INTO users (username, email, display_name, create_time, update_time, etag,"
        " password_hash, role) SELECT %s, %s, %s, t, t, %s, %s, %s FROM clock_timestamp() AS t"
        f" ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
        (
            user.username,
            user.email,
            user.display_name,
            secrets.token_hex(8),
            user.password_hash,
            user.role,
        ),
    )
    if row is None:  # taken; perhaps by another replica running this very request_id
        replay = await _replay(conn, user) if user.request_id else None
        return replay or CreateOutcome(CreateStatus.TAKEN)
    created = _record(row)
    if user.request_id and not await _claim(conn, user, created.id):
        # Another replica committed this request_id (for another username) meanwhile.
        await conn.execute("DELETE FROM users WHERE id = %s", (created.id,))
        replay = await _replay(conn, user)
        if replay is None:
            raise StoreError(f"request_id {user.request_id!r} vanished while it was claimed")
        return replay
    return CreateOutcome(CreateStatus.CREATED, created)


async def _claim(conn: Conn, user: NewUser, user_id: int) -> bool:
    row = await _one(
        conn,
        "INSERT INTO idempotency_keys (request_id, user_id, fingerprint, create_time)"
        " VALUES (%s, %s, %s, now()) ON CONFLICT DO NOTHING RETURNING request_id",
        (user.request_id, user_id, user.fingerprint),
    )
    return row is not None


async def _replay(conn: Conn, user: NewUser) -> CreateOutcome | None:
    key = await _one(
        conn,
        "SELECT user_id, fingerprint FROM idempotency_keys WHERE request_id = %s",
        (user.request_id,),
    )
    if key is None:
        return None
    if key[1] != user.fingerprint:
        return CreateOutcome(CreateStatus.KEY_REUSED)
    existing = await select_user(conn, key[0])
    if existing is None:
        return CreateOutcome(CreateStatus.REPLAYED_GONE)
    return CreateOutcome(CreateStatus.REPLAYED, existing)


async def _missing_or_stale(conn: Conn, user_id: int, etag: str) -> StoreError:
    if await select_user(conn, user_id) is None:
        return NotFound(f"user {user_id} not found")
    return StaleEtag(f"user {user_id} has changed since etag {etag!r} was read")


async def update_user(conn: Conn, user_id: int, changes: UserChanges, etag: str) -> UserRecord:
    """Applies the non-None changes if the etag (when given) still matches; one statement."""
    fields = changes.given()
    assignments = "".join(f"{name} = %s, " for name in fields)  # names from a fixed list
    try:
        async with conn.transaction():
            row = await _one(
                conn,
                # The row is locked (waiting for whoever holds it) before the new values, and
                # so the time, are computed: a plain UPDATE computes them before it waits.
                "WITH target AS MATERIALIZED (SELECT id AS target_id FROM users"
                " WHERE id = %s AND (%s::text = '' OR etag = %s) FOR UPDATE)"
                f" UPDATE users SET {assignments}update_time = {_NOW}, etag = %s"
                f" FROM target WHERE id = target_id RETURNING {_COLUMNS}",
                (user_id, etag, etag, *fields.values(), secrets.token_hex(8)),
            )
            if row is None:
                raise await _missing_or_stale(conn, user_id, etag)
            user = _record(row)
            await notify(conn, [UserChange(ChangeKind.UPDATED, user, user.update_time)])
    except psycopg.errors.UniqueViolation:
        raise AlreadyExists(f"username {changes.username!r} is already taken") from None
    return user


async def delete_user(conn: Conn, user_id: int, etag: str) -> UserRecord:
    """Deletes the user if the etag (when given) still matches; returns it as it was."""
    async with conn.transaction():
        row = await _one(
            conn,
            "DELETE FROM users WHERE id = %s AND (%s::text = '' OR etag = %s)"
            f" RETURNING {_COLUMNS}, {_NOW}",
            (user_id, etag, etag),
        )
        if row is None:
            raise await _missing_or_stale(conn, user_id, etag)
        user = _record(row)
        await notify(conn, [UserChange(ChangeKind.DELETED, user, row[10].astimezone(UTC))])
    return user


async def select_credentials(conn: Conn, username: str) -> tuple[UserRecord, str] | None:
    """The user with this username (case-insensitively) and its password hash, or None."""
    query = f"SELECT {_COLUMNS}, password_hash FROM users WHERE lower(username) = lower(%s)"
    row = await _one(conn, query, (username,))
    return None if row is None else (_record(row), row[10])


async def update_account(conn: Conn, user_id: int, change: AccountChange) -> UserRecord:
    """Applies the change with a new token version, etag and update time; every replica hears
    it (NOTIFY), which is how revocation reaches them."""
    fields = change.given()
    assignments = "".join(f"{name} = %s, " for name in fields)  # names from a fixed list
    async with conn.transaction():
        row = await _one(
            conn,
            "WITH target AS MATERIALIZED (SELECT id AS target_id FROM users WHERE id = %s"
            f" FOR UPDATE) UPDATE users SET {assignments}token_version = token_version + %s,"
            f" update_time = {_NOW}, etag = %s FROM target WHERE id = target_id"
            f" RETURNING {_COLUMNS}",
            (user_id, *fields.values(), int(change.revoke), secrets.token_hex(8)),
        )
        if row is None:
            raise NotFound(f"user {user_id} not found")
        user = _record(row)
        await notify(conn, [UserChange(ChangeKind.UPDATED, user, user.update_time)])
    return user


async def write_probe(conn: Conn) -> None:
    """A real write and read-back in one transaction (another replica may probe concurrently)."""
    token = secrets.token_hex(8)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO store_probe (id, token) VALUES (1, %s)"
            " ON CONFLICT (id) DO UPDATE SET token = excluded.token",
            (token,),
        )
        row = await _one(conn, "SELECT token FROM store_probe WHERE id = 1", ())
    if row is None or row[0] != token:
        raise psycopg.DataError("the probe row did not read back")


async def purge_idempotency_keys(conn: Conn, older_than_seconds: float) -> int:
    """Deletes the idempotency keys created more than that long ago; returns how many."""
    cursor = await conn.execute(
        "DELETE FROM idempotency_keys WHERE create_time < now() - make_interval(secs => %s)",
        (older_than_seconds,),
    )
    return int(cursor.rowcount)
