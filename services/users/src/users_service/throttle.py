"""Failed sign-ins counted per account and per client address, in a sliding window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from users_service.denials import Throttled

# Keys tracked at most per kind: past that the oldest are forgotten (an attacker spraying
# addresses costs memory no longer than this).
MAX_KEYS = 100_000


class FailureWindow:
    """Failures per key within the last `window` seconds; refuses a key once it has `limit`.

    Example:
        >>> accounts = FailureWindow(limit=5, window=300.0)
        >>> accounts.check("ada")   # raises Throttled once "ada" failed 5 times in 300 s
        >>> accounts.failed("ada")
    """

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def check(self, key: str, what: str) -> None:
        """Throttled (with when to retry) if `key` has failed `limit` times in the window."""
        failures = self._recent(key)
        if failures is not None and len(failures) >= self._limit:
            retry_after = failures[0] + self._window - self._clock()
            raise Throttled(f"too many failed sign-ins for this {what}", max(retry_after, 0.001))

    def failed(self, key: str) -> None:
        """Counts one failure for `key`."""
        failures = self._recent(key)
        if failures is None:
            if len(self._failures) >= MAX_KEYS:
                del self._failures[next(iter(self._failures))]
            failures = self._failures[key] = deque(maxlen=self._limit)
        failures.append(self._clock())

    def forget(self, key: str) -> None:
        """Clears `key`'s failures (after a successful sign-in)."""
        self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = self._clock() - self._window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures


class SignInThrottle:
    """Both windows: per account (lowercased username) and per client address."""

    def __init__(self, account_limit: int, address_limit: int, window: float) -> None:
        self.accounts = FailureWindow(account_limit, window)
        self.addresses = FailureWindow(address_limit, window)

    def check(self, username: str, address: str) -> None:
        """Throttled if either the account or the address is over its limit."""
        self.addresses.check(address, "address")
        self.accounts.check(username, "account")

    def failed(self, username: str, address: str) -> None:
        self.accounts.failed(username)
        self.addresses.failed(address)

    def succeeded(self, username: str) -> None:
        self.accounts.forget(username)
