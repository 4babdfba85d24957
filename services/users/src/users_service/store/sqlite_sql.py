"""The SQL of the SQLite store: plain functions over one connection, run on the store's threads."""

# Queries are composed only from constants of this module (column lists, fixed field names);
# every value travels as a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from users_service.store.base import (
    AccountChange,
    CreateOutcome,
    CreateStatus,
    ExportRow,
    NewUser,
    UserChanges,
    UserRecord,
)
from users_service.store.errors import AlreadyExists, NotFound, StaleEtag

_COLUMNS = (
    "id, username, email, display_name, create_time_us, update_time_us, etag,"
    " role, disabled, token_version"
)


def now_us() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (take the write lock up front, so no upgrade deadlock) ... COMMIT."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _record(row: tuple[int, str, str, str, int, int, str, str, int, int]) -> UserRecord:
    return UserRecord(
        id=row[0],
        username=row[1],
        email=row[2],
        display_name=row[3],
        create_time=datetime.fromtimestamp(row[4] / 1e6, UTC),
        update_time=datetime.fromtimestamp(row[5] / 1e6, UTC),
        etag=row[6],
        role=row[7],
        disabled=bool(row[8]),
        token_version=row[9],
    )


def data_version(conn: sqlite3.Connection) -> int:
    """A number that changes once another connection has committed to the file since `conn`
    last asked (SQLite's PRAGMA data_version)."""
    version: int = conn.execute("PRAGMA data_version").fetchone()[0]
    return version


def select_user(conn: sqlite3.Connection, user_id: int) -> UserRecord | None:
    """The user with this id, or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM users WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else _record(row)


def select_user_by_username(conn: sqlite3.Connection, username: str) -> UserRecord | None:
    """The user with this username (case-insensitively), or None."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM users WHERE username = ? COLLATE NOCASE", (username,)
    ).fetchone()
    return None if row is None else _record(row)


def select_users(conn: sqlite3.Connection, ids: Sequence[int]) -> list[UserRecord]:
    """The users with these ids, in no particular order (one statement for any number of ids)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM users WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),),
    ).fetchall()
    return [_record(row) for row in rows]


def _prefix_pattern(prefix: str) -> str:
    """A LIKE pattern matching what starts with `prefix` (its wildcards escaped)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def select_page(
    conn: sqlite3.Connection, after_id: int, limit: int, prefix: str
) -> list[UserRecord]:
    """Up to `limit` users with id > after_id whose username starts with `prefix`, by id."""
    return _page(conn, after_id, limit, prefix, bound="id > ? ", order="id")


def select_page_before(
    conn: sqlite3.Connection, before_id: int, limit: int, prefix: str
) -> list[UserRecord]:
    """The last `limit` users with id < before_id whose username starts with `prefix`, by id."""
    return list(reversed(_page(conn, before_id, limit, prefix, bound="id < ? ", order="id DESC")))


def _page(
    conn: sqlite3.Connection, at_id: int, limit: int, prefix: str, *, bound: str, order: str
) -> list[UserRecord]:
    """Up to `limit` users past `at_id` (`bound`, in `order`) whose username starts with
    `prefix`."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM users WHERE {bound}AND username LIKE ? ESCAPE '\\'"
        f" ORDER BY {order} LIMIT ?",
        (at_id, _prefix_pattern(prefix), limit),
    ).fetchall()
    return [_record(row) for row in rows]


# ExportRow's columns: the times split into seconds and nanoseconds by SQLite, not by Python.
_EXPORT_COLUMNS = (
    "id, username, email, display_name,"
    " create_time_us / 1000000, create_time_us % 1000000 * 1000,"
    " update_time_us / 1000000, update_time_us % 1000000 * 1000, etag, role, disabled"
)


def select_export_page(
    conn: sqlite3.Connection, after_id: int, limit: int, prefix: str
) -> list[ExportRow]:
    """select_page's users as ExportRows."""
    if not prefix:
        query = f"SELECT {_EXPORT_COLUMNS} FROM users WHERE id > ? ORDER BY id LIMIT ?"
        return conn.execute(query, (after_id, limit)).fetchall()
    return conn.execute(
        f"SELECT {_EXPORT_COLUMNS} FROM users WHERE id > ? AND username LIKE ? ESCAPE '\\'"
        " ORDER BY id LIMIT ?",
        (after_id, _prefix_pattern(prefix), limit),
    ).fetchall()


def prefix_matches(conn: sqlite3.Connection, prefix: str) -> bool:
    """Whether any username starts with `prefix` (a lowercase username prefix): one probe of
    the username index, however large the table."""
    # Usernames are lowercase [a-z0-9._-]: every one starting with `prefix` sorts at or after
    # it and before `prefix` with its last character bumped by one.
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    row = conn.execute(
        "SELECT 1 FROM users WHERE username >= ? COLLATE NOCASE"
        " AND username < ? COLLATE NOCASE LIMIT 1",
        (prefix, upper),
    ).fetchone()
    return row is not None


_INSERT_USER = (
    "INSERT INTO users (username, email, display_name, create_time_us, update_time_us, etag,"
    " password_hash, role) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_users(conn: sqlite3.Connection, users: Sequence[NewUser]) -> list[CreateOutcome]:
    """Creates the users in one transaction; a taken username is an outcome, not an abort."""
    stamp = now_us()
    created = datetime.fromtimestamp(stamp / 1e6, UTC)  # as _record reads the stamp back
    with transaction(conn):
        return [_insert_one(conn, user, stamp, created) for user in users]


def _insert_one(
    conn: sqlite3.Connection, user: NewUser, stamp: int, created: datetime
) -> CreateOutcome:
    if user.request_id:
        replay = _replay(conn, user)
        if replay is not None:
            return replay
    etag = secrets.token_hex(8)
    try:
        user_id = conn.execute(
            _INSERT_USER,
            (user.username, user.email, user.display_name, stamp, stamp, etag,
             user.password_hash, user.role),
        ).lastrowid  # fmt: skip
    except sqlite3.IntegrityError:
        return CreateOutcome(CreateStatus.TAKEN)
    if user_id is None:  # never after an INSERT that succeeded
        raise sqlite3.DatabaseError("the insert reported no row id")
    if user.request_id:
        conn.execute(
            "INSERT INTO idempotency_keys (request_id, user_id, fingerprint, create_time_us)"
            " VALUES (?, ?, ?, ?)",
            (user.request_id, user_id, user.fingerprint, stamp),
        )
    # The row as stored, from what was bound rather than read back (no RETURNING: SQLite runs
    # it as a trigger filling a temporary table, as much again as the insert's own statement
    # work): TEXT columns keep the strings bound; disabled and token_version start at their
    # column defaults, 0. The store contract test reads every field back.
    record = UserRecord(
        id=user_id,
        username=user.username,
        email=user.email,
        display_name=user.display_name,
        create_time=created,
        update_time=created,
        etag=etag,
        role=user.role,
    )
    return CreateOutcome(CreateStatus.CREATED, record)


def _replay(conn: sqlite3.Connection, user: NewUser) -> CreateOutcome | None:
    key = conn.execute(
        "SELECT user_id, fingerprint FROM idempotency_keys WHERE request_id = ?",
        (user.request_id,),
    ).fetchone()
    if key is None:
        return None
    if key[1] != user.fingerprint:
        return CreateOutcome(CreateStatus.KEY_REUSED)
    existing = select_user(conn, key[0])
    if existing is None:
        return CreateOutcome(CreateStatus.REPLAYED_GONE)
    return CreateOutcome(CreateStatus.REPLAYED, existing)


def _checked(conn: sqlite3.Connection, user_id: int, etag: str) -> UserRecord:
    current = select_user(conn, user_id)
    if current is None:
        raise NotFound(f"user {user_id} not found")
    if etag and etag != current.etag:
        raise StaleEtag(f"user {user_id} has changed since etag {etag!r} was read")
    return current


def update_user(
    conn: sqlite3.Connection, user_id: int, changes: UserChanges, etag: str
) -> UserRecord:
    """Applies the non-None changes under the write lock, with a new etag and update time."""
    fields = changes.given()
    assignments = "".join(f"{name} = ?, " for name in fields)  # names from a fixed list
    with transaction(conn):
        _checked(conn, user_id, etag)
        try:
            row = conn.execute(
                f"UPDATE users SET {assignments}update_time_us = ?, etag = ? WHERE id = ?"
                f" RETURNING {_COLUMNS}",
                (*fields.values(), now_us(), secrets.token_hex(8), user_id),
            ).fetchone()
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"username {changes.username!r} is already taken") from None
    return _record(row)


def delete_user(conn: sqlite3.Connection, user_id: int, etag: str) -> UserRecord:
    """Deletes the user under the write lock; returns it as it was."""
    with transaction(conn):
        current = _checked(conn, user_id, etag)
        conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
    return current


def select_credentials(conn: sqlite3.Connection, username: str) -> tuple[UserRecord, str] | None:
    """The user with this username (case-insensitively) and its password hash, or None."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = ? COLLATE NOCASE",
        (username,),
    ).fetchone()
    return None if row is None else (_record(row[:10]), row[10])


def update_account(conn: sqlite3.Connection, user_id: int, change: AccountChange) -> UserRecord:
    """Applies the change under the write lock, with a new token version, etag and update time."""
    fields = change.given()
    assignments = "".join(f"{name} = ?, " for name in fields)  # names from a fixed list
    with transaction(conn):
        row = conn.execute(
            f"UPDATE users SET {assignments}token_version = token_version + ?,"
            f" update_time_us = ?, etag = ? WHERE id = ? RETURNING {_COLUMNS}",
            (*fields.values(), int(change.revoke), now_us(), secrets.token_hex(8), user_id),
        ).fetchone()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return _record(row)


def write_probe(conn: sqlite3.Connection) -> None:
    """A real write and read-back: fails when the file is gone, unreadable, read-only or full."""
    stamp = now_us()
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO store_probe (id, probe_time_us) VALUES (1, ?)", (stamp,)
        )
    row = conn.execute("SELECT probe_time_us FROM store_probe WHERE id = 1").fetchone()
    if row is None or row[0] != stamp:
        raise sqlite3.DatabaseError("the probe row did not read back")


def purge_idempotency_keys(conn: sqlite3.Connection, before_us: int) -> int:
    """Deletes the idempotency keys created before `before_us`; returns how many."""
    with transaction(conn):
        cursor = conn.execute("DELETE FROM idempotency_keys WHERE create_time_us < ?", (before_us,))
    return int(cursor.rowcount)
