"""Test helpers for what a store reports: a ChangeListener to await, and waiting for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from users_service.store import UserChange


class Heard:
    """The changes a store has reported to its listener (`record`) so far, awaitable.

    Example:
        >>> heard = Heard()
        >>> store = build_store(url, heard.record)  # doctest: +SKIP
        >>> first_three = await heard.first(3)
    """

    def __init__(self) -> None:
        self.changes: list[UserChange] = []
        self._arrived = asyncio.Event()
        self._taken = 0

    def record(self, change: UserChange) -> None:
        """The store's ChangeListener."""
        self.changes.append(change)
        self._arrived.set()

    async def first(self, count: int, within: float = 5) -> list[UserChange]:
        """The first `count` changes, once reported (PostgreSQL's come over LISTEN/NOTIFY)."""
        async with asyncio.timeout(within):
            while len(self.changes) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.changes[:count]

    async def next(self, within: float = 5) -> UserChange:
        """The change after the one the previous `next` returned, once reported."""
        change = (await self.first(self._taken + 1, within))[-1]
        self._taken += 1
        return change


async def eventually(condition: Callable[[], bool], within: float = 10) -> None:
    """Returns once `condition()` holds; fails after `within` seconds."""
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still false after {within} s")
