"""Group commit: creates that arrive while a transaction is running share the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from users_service.store.base import CreateOutcome, NewUser

Commit = Callable[[Sequence[NewUser]], Awaitable[list[CreateOutcome]]]
_Waiter = tuple[Sequence[NewUser], "asyncio.Future[list[CreateOutcome]]"]


class GroupCommit:
    """Batches concurrent create_users calls into one transaction (one fsync for all).

    Each caller still gets its own outcomes, and is answered only after the shared commit.

    Example:
        >>> creates = GroupCommit(commit)  # doctest: +SKIP
        >>> outcomes = await creates.submit([NewUser("ada")])
    """

    def __init__(self, commit: Commit, on_batch: Callable[[int], None] | None = None) -> None:
        self._commit = commit
        self._on_batch = on_batch  # hears each shared commit's number of users
        self._waiting: list[_Waiter] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, users: Sequence[NewUser]) -> list[CreateOutcome]:
        """Creates `users` in the next shared transaction; their outcomes in order."""
        future: asyncio.Future[list[CreateOutcome]] = asyncio.get_running_loop().create_future()
        self._waiting.append((users, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="store-group-commit")
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            shared = [user for users, _ in batch for user in users]
            if self._on_batch is not None:
                self._on_batch(len(shared))
            try:
                outcomes = await self._commit(shared)
            # Whatever the commit raised is each caller's to raise (the stores raise store
            # errors), not the flusher's: the next batch must still run.
            except Exception as error:  # noqa: BLE001 - handed to every caller, not swallowed
                _fail(batch, error)
                continue
            except BaseException:
                _fail(batch, RuntimeError("the shared commit was interrupted"))
                raise
            _answer(batch, outcomes)


def _answer(batch: list[_Waiter], outcomes: list[CreateOutcome]) -> None:
    start = 0
    for users, future in batch:
        if not future.done():
            future.set_result(outcomes[start : start + len(users)])
        start += len(users)


def _fail(batch: list[_Waiter], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
