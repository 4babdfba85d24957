"""Token buckets per caller: a rate with a burst, and how long a refused caller should wait."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """`per_second` tokens a second, at most `burst` saved up; per_second 0 means no limit."""

    per_second: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0


class RateLimiter:
    """One token bucket per key (a caller), kept in a bounded table.

    `take(key)` returns 0 when the caller may go on, else the whole seconds it should wait
    (what a Retry-After says). Full buckets are forgotten when the table grows past
    `max_keys`, so that callers who come once do not grow it for ever.

    Example:
        >>> limiter = RateLimiter(Rate(per_second=1, burst=2))
        >>> [limiter.take("10.0.0.1") for _ in range(3)]
        [0, 0, 1]
    """

    def __init__(
        self,
        rate: Rate,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, as of when)

    def take(self, key: str, cost: float = 1.0) -> int:
        """0 if `key` may spend `cost` tokens now (spent), else the seconds until it may."""
        if self._rate.unlimited:
            return 0
        now = self._clock()
        tokens, then = self._buckets.get(key, (float(self._rate.burst), now))
        tokens = min(float(self._rate.burst), tokens + (now - then) * self._rate.per_second)
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((cost - tokens) / self._rate.per_second))
        self._buckets[key] = (tokens - cost, now)
        if len(self._buckets) > self._max_keys:
            self._forget_full(now)
        return 0

    def _forget_full(self, now: float) -> None:
        burst, rate = float(self._rate.burst), self._rate.per_second
        self._buckets = {
            key: (tokens, then)
            for key, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * rate < burst
        }
        if len(self._buckets) > self._max_keys:  # all busy: keep the newest half
            newest = sorted(self._buckets.items(), key=lambda item: item[1][1])
            self._buckets = dict(newest[len(newest) // 2 :])
