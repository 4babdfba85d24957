"""The shape of a JSON log line, the same for both services (plumbing.logs writes them)."""

from __future__ import annotations

import json
from typing import Any

# Every line starts with these, in this order; extras follow; a traceback comes last.
KEYS = ["time", "level", "logger", "message", "request_id"]
EXCEPTION = "exception"
TRACEBACK_START = "Traceback (most recent call last):"


def assert_line_shape(line: str, *, exception: bool = False) -> dict[str, Any]:
    """Checks a line's keys (and its traceback if `exception`); returns the line, parsed.

    Raises AssertionError naming the keys found. Example:
        >>> entry = assert_line_shape(log_line, exception=True)  # doctest: +SKIP
        >>> entry["request_id"] is None  # doctest: +SKIP
        True
    """
    entry: dict[str, Any] = json.loads(line)
    keys = list(entry)
    if keys[: len(KEYS)] != KEYS:
        raise AssertionError(f"a log line starts with {KEYS}, not {keys}: {line}")
    if keys.count(EXCEPTION) != int(exception) or (keys[-1] == EXCEPTION) is not exception:
        expected = f"{EXCEPTION!r} last" if exception else f"no {EXCEPTION!r}"
        raise AssertionError(f"expected {expected} in {keys}: {line}")
    if exception and not entry[EXCEPTION].startswith(TRACEBACK_START):
        raise AssertionError(f"{EXCEPTION!r} is not a traceback: {line}")
    return entry
