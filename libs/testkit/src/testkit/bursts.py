"""A burst of calls at a fixed concurrency, with a hook fired once a share of them has answered.

The drain tests use it to stop a server mid-burst (SIGTERM, `docker stop`) and count how each
call ended.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Burst:
    """What a burst did: each call's outcome (by index), and the state when the hook fired.

    Example:
        >>> async def attempt(i: int) -> str:
        ...     return "OK"
        >>> burst = await run_burst(1000, 64, attempt, hook_after=300, hook=stop)  # doctest: +SKIP
        >>> burst.counts()  # doctest: +SKIP
        Counter({'OK': 1000})
    """

    outcomes: dict[int, str] = field(default_factory=dict)
    in_flight_at_hook: int | None = None
    # time.time(), comparable with the times in log lines and Docker's: whether a stop came
    # before the burst's end (the drain tests assert it did).
    hook_at: float | None = None
    ended_at: float = 0.0

    def counts(self) -> Counter[str]:
        """How many calls ended with each outcome."""
        return Counter(self.outcomes.values())

    def indices(self, outcome: str) -> list[int]:
        """The calls that ended with `outcome`, in order."""
        return sorted(i for i, ended in self.outcomes.items() if ended == outcome)


async def run_burst(
    total: int,
    concurrency: int,
    attempt: Callable[[int], Awaitable[str]],
    *,
    hook_after: int | None = None,
    hook: Callable[[], object] | None = None,
) -> Burst:
    """Runs attempt(0..total-1), `concurrency` at a time (each worker starts its next call as
    soon as one ends, as a busy client does); `attempt` returns the call's outcome. Once
    `hook_after` calls have ended, `hook` runs once (synchronously: the burst goes on meanwhile
    only if the hook returns at once)."""
    burst = Burst()
    indices = iter(range(total))
    in_flight = 0

    async def worker() -> None:
        nonlocal in_flight
        for index in indices:
            in_flight += 1
            try:
                burst.outcomes[index] = await attempt(index)
            finally:
                in_flight -= 1
            if (
                hook is not None
                and burst.hook_at is None
                and len(burst.outcomes) >= (hook_after or 0)
            ):
                burst.hook_at = time.time()
                burst.in_flight_at_hook = in_flight
                hook()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    burst.ended_at = time.time()
    return burst
