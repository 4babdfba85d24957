"""Work on the event loop cut into short stretches, other calls served between them.

A call that reads or converts 1,000 users in one go holds the loop for tens of milliseconds, and
every other call waits behind it (docs/limits.md, the event loop). Cut into stretches of
STRETCH items with a yield between, a GetUser arriving meanwhile waits for one stretch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

_In = TypeVar("_In")
_Out = TypeVar("_Out")

# Items (users read, converted or looked up) per stretch: 100 users' records and messages take
# ~1-2 ms of loop on the 2-core CI machine (docs/limits.md); the yield between costs ~10 us.
STRETCH = 100


async def converted(
    items: Sequence[_In], convert: Callable[[_In], _Out], stretch: int = STRETCH
) -> list[_Out]:
    """[convert(item) for item in items], yielding to the loop between stretches.

    Example:
        >>> messages = await converted(users, user_message)  # doctest: +SKIP
    """
    if len(items) <= stretch:
        return [convert(item) for item in items]
    out: list[_Out] = []
    for start in range(0, len(items), stretch):
        if start:
            await asyncio.sleep(0)
        out += [convert(item) for item in items[start : start + stretch]]
    return out


async def gathered(
    keys: Sequence[_In], read: Callable[[Sequence[_In]], list[_Out]], stretch: int = STRETCH
) -> list[_Out]:
    """read(chunk) for each chunk of `stretch` keys, concatenated, yielding between chunks.

    Example:
        >>> found = await gathered(ids, lambda chunk: select_users(conn, chunk))  # doctest: +SKIP
    """
    out: list[_Out] = []
    for start in range(0, len(keys), stretch):
        if start:
            await asyncio.sleep(0)
        out += read(keys[start : start + stretch])
    return out
