"""The webapp's limits (WEBAPP_* settings): request sizes and timing, concurrency, event streams,
write rates (enforced by http_limits.py, uvicorn and guards.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plumbing.settings import count_between, read, seconds_between

from webapp.http_limits import HttpLimits

_bytes = count_between(1024, 1 << 34, "bytes")
_count = count_between(1, 1_000_000, "")
_rate = seconds_between(0, 1_000_000)  # 0 = no limit
_seconds = seconds_between(0.1, 3600)


@dataclass(frozen=True)
class Limits:
    """The webapp's limits, from WEBAPP_* variables (docs/limits.md).

    Example:
        >>> Limits.from_env({"WEBAPP_MAX_EVENT_STREAMS": "3"}).max_event_streams
        3
    """

    max_url_bytes: int = HttpLimits.max_url_bytes
    max_header_bytes: int = HttpLimits.max_header_bytes
    max_body_bytes: int = HttpLimits.max_body_bytes
    max_import_bytes: int = HttpLimits.max_import_bytes
    header_timeout_seconds: float = HttpLimits.header_timeout_seconds
    # Connections and requests at once (uvicorn's limit_concurrency): beyond, a 503 at once.
    max_concurrency: int = 1000
    max_event_streams: int = 100
    # Per client address: creates, updates, deletes and imports.
    writes_per_second: float = 20.0
    write_burst: int = 40

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        """Reads the WEBAPP_* limit variables; ConfigError on a bad value."""
        values = {
            name: read(env, f"WEBAPP_{name.upper()}", getattr(cls, name), parse)
            for name, parse in _PARSERS.items()
        }
        return cls(**values)

    @property
    def http(self) -> HttpLimits:
        """What the HTTP protocol enforces as bytes arrive."""
        return HttpLimits(
            max_url_bytes=self.max_url_bytes,
            max_header_bytes=self.max_header_bytes,
            max_body_bytes=self.max_body_bytes,
            max_import_bytes=self.max_import_bytes,
            header_timeout_seconds=self.header_timeout_seconds,
        )


_PARSERS: dict[str, Any] = {
    "max_url_bytes": _bytes,
    "max_header_bytes": _bytes,
    "max_body_bytes": _bytes,
    "max_import_bytes": _bytes,
    "header_timeout_seconds": _seconds,
    "max_concurrency": _count,
    "max_event_streams": _count,
    "writes_per_second": _rate,
    "write_burst": _count,
}
