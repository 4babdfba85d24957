"""What one load run measured, and its summary statistics."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass
class Load:
    """One run of a load generator: calls (or messages) completed, wall seconds, errors, latency."""

    calls: int
    seconds: float
    errors: int
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def rate(self) -> float:
        """Calls (or messages) per second."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def percentiles_ms(latencies_ms: list[float]) -> tuple[float | None, float | None]:
    """The p50 and p99 of latencies in ms (None when there are too few to cut)."""
    if len(latencies_ms) < 2:
        return (latencies_ms[0], latencies_ms[0]) if latencies_ms else (None, None)
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    return round(cuts[49], 3), round(cuts[98], 3)
