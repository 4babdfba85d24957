"""ExportUsers: its request validated, then the store's keyset pages sent as UserBatch messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from users.v1 import users_pb2

from users_service.convert import ROLES
from users_service.lifecycle import ShuttingDown
from users_service.store import ExportRow, UserStore
from users_service.validation import USERNAME_PREFIX_RE, FieldViolation, InvalidArgument

DEFAULT_BATCH_SIZE = 500
# A batch of the maximum holds ~100 KB of typical users, at most ~700 KB of the longest ones
# (under USERS_MAX_MESSAGE_BYTES, 4 MiB by default).
MAX_BATCH_SIZE = 1000


@dataclass(frozen=True)
class ExportQuery:
    """A validated ExportUsersRequest: the prefix lowercased, the batch size in effect."""

    username_prefix: str = ""
    batch_size: int = DEFAULT_BATCH_SIZE
    after_id: int = 0


def export_query(request: users_pb2.ExportUsersRequest) -> ExportQuery:
    """The request's query; raises InvalidArgument naming every field at fault."""
    prefix = request.username_prefix.lower()
    violations = []
    if not USERNAME_PREFIX_RE.fullmatch(prefix):
        violations.append(
            FieldViolation("username_prefix", "must be a possible start of a username")
        )
    if request.batch_size < 0:
        violations.append(FieldViolation("batch_size", "must not be negative"))
    if request.after_id < 0:
        violations.append(FieldViolation("after_id", "must not be negative"))
    if violations:
        raise InvalidArgument(violations)
    size = min(request.batch_size or DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE)
    return ExportQuery(prefix, size, request.after_id)


async def batches(
    store: UserStore, query: ExportQuery, cutoff: asyncio.Event
) -> AsyncIterator[users_pb2.UserBatch]:
    """One message per keyset page. The next page is read only once grpc has taken the last
    message (the caller's `yield` waits for it): one page in memory, however slow the client.

    Once `cutoff` is set (the drain's grace is nearly spent) the export ends UNAVAILABLE, naming
    where to resume.
    """
    after = query.after_id
    while not cutoff.is_set():
        rows = await store.export_page(after, query.batch_size, query.username_prefix)
        if rows:
            yield user_batch(rows)
            after = rows[-1][0]
        if len(rows) < query.batch_size:
            return
    raise ShuttingDown(f"the server stopped before the export ended: resume with after_id {after}")


def user_batch(rows: Sequence[ExportRow]) -> users_pb2.UserBatch:
    """The message of a page of export rows.

    Each user is added in place (a User built first would be copied in) and its timestamps are
    set field by field, from the seconds and nanoseconds the database computed: about a third of
    the CPU of a UserRecord and user_message per user (docs/performance.md, bulk reads).
    """
    batch = users_pb2.UserBatch()
    add = batch.users.add
    for row in rows:
        user_id, username, email, display_name, c_s, c_ns, u_s, u_ns, etag, role, disabled = row
        user = add(
            id=user_id,
            username=username,
            email=email,
            display_name=display_name,
            etag=etag,
            role=ROLES[role],
            disabled=bool(disabled),
        )
        created = user.create_time
        created.seconds, created.nanos = c_s, c_ns
        updated = user.update_time
        updated.seconds, updated.nanos = u_s, u_ns
    return batch
