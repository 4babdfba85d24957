"""ImportUsers: read a client stream of creates, commit them in small batches, summarise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from users.v1 import users_pb2

from users_service import validation
from users_service.store import CreateStatus, NewUser, UserStore
from users_service.validation import InvalidArgument

# Rows waiting in the queue are committed together: one fsync per batch instead of per row,
# while a slow client still sees each row committed as soon as it arrives.
MAX_BATCH = 256
MAX_REJECTIONS = 1000
MAX_ECHOED_USERNAME = 64
DEFAULT_MAX_ROWS = 100_000
_END = None


class ImportTooLarge(Exception):  # noqa: N818 - reads as the condition it reports
    """The stream went past the rows one import may hold; the rows before it were committed."""


Row = tuple[int, users_pb2.CreateUserRequest]
_KEY_PROBLEMS = {
    CreateStatus.KEY_REUSED: "request_id was already used to create a different user",
    CreateStatus.REPLAYED_GONE: "request_id created a user that has since been deleted",
}


class _Summary:
    def __init__(self) -> None:
        self.response = users_pb2.ImportUsersResponse()

    def reject(self, index: int, username: str, field: str, reason: str) -> None:
        self.response.rejected_count += 1
        if len(self.response.rejections) < MAX_REJECTIONS:
            # The username as sent, cut: a rejected row may carry any string up to the message cap.
            self.response.rejections.add(
                index=index, username=username[:MAX_ECHOED_USERNAME], field=field, reason=reason
            )


class _RowQueue:
    """Rows read ahead of the store, bounded; the end marker always fits."""

    def __init__(self, limit: int, max_rows: int) -> None:
        self._rows: asyncio.Queue[Row | None] = asyncio.Queue()
        self._slots = asyncio.Semaphore(limit)
        self._max_rows = max_rows

    async def read_all(self, rows: AsyncIterator[users_pb2.CreateUserRequest]) -> None:
        try:
            index = 0
            async for row in rows:
                if index >= self._max_rows:
                    raise ImportTooLarge(
                        f"an import takes at most {self._max_rows} rows; the first"
                        f" {self._max_rows} were imported: send the rest in another import"
                    )
                await self._slots.acquire()
                self._rows.put_nowait((index, row))
                index += 1
        finally:
            self._rows.put_nowait(_END)

    def _take(self, row: Row | None) -> Row | None:
        if row is _END:
            self._rows.put_nowait(_END)  # keep the marker for the next call
        else:
            self._slots.release()
        return row

    async def next_batch(self) -> list[Row]:
        """The rows waiting now (at least one, at most MAX_BATCH); empty at the end."""
        first = self._take(await self._rows.get())
        batch = [] if first is None else [first]
        while batch and len(batch) < MAX_BATCH and not self._rows.empty():
            row = self._take(self._rows.get_nowait())
            if row is None:
                break
            batch.append(row)
        return batch


async def import_rows(
    store: UserStore,
    rows: AsyncIterator[users_pb2.CreateUserRequest],
    max_rows: int = DEFAULT_MAX_ROWS,
) -> users_pb2.ImportUsersResponse:
    """Creates every valid row; returns the counts and the first rejections with reasons.

    ImportTooLarge once the stream goes past `max_rows` (the rows before are committed)."""
    summary = _Summary()
    queue = _RowQueue(MAX_BATCH * 4, max_rows)
    reader = asyncio.create_task(queue.read_all(rows))
    try:
        while batch := await queue.next_batch():
            await _commit(store, batch, summary)
        await reader  # re-raises a failure of the request stream
    finally:
        reader.cancel()
    return summary.response


async def _commit(
    store: UserStore,
    batch: list[Row],
    summary: _Summary,
) -> None:
    valid: list[tuple[int, users_pb2.CreateUserRequest, NewUser]] = []
    for index, row in batch:
        try:
            valid.append((index, row, validation.new_user(row)))
        except InvalidArgument as error:
            first = error.violations[0]
            summary.reject(index, row.username, first.field, f"{first.field} {first.description}")
    outcomes = await store.create_users([user for _, _, user in valid]) if valid else []
    for (index, row, _), outcome in zip(valid, outcomes, strict=True):
        if outcome.status is CreateStatus.CREATED:
            summary.response.created_count += 1
        elif outcome.status in (CreateStatus.TAKEN, CreateStatus.REPLAYED):
            summary.response.existing_count += 1
        else:
            summary.reject(index, row.username, "request_id", _KEY_PROBLEMS[outcome.status])
