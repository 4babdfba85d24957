"""Counters and histograms recorded into plain Python numbers, built into families when scraped.

prometheus-client's own Counter and Histogram take a lock per value they change (a histogram
observation: two) and find a bucket by walking the bounds in Python: most of what recording a
call's metrics cost (docs/performance.md). These keep each label set's counts in a list (a
histogram's bucket found by `bisect`) and hand prometheus-client a collector that builds the
same families, with the same samples in the same order, when the registry is collected.

Threads: recording is meant for ONE thread, the event loop's (everything the services record
runs there); `+=` on a list item is not atomic between two recording threads. The scrape runs
on prometheus-client's HTTP thread and only reads, under the GIL: it copies the dict of label
sets and each series' list in one C call each, which no Python bytecode of the loop's thread
can interleave with. So in one scrape a histogram's buckets and count (its +Inf bucket) come
from one copy and agree; the sum is in that copy too, so it agrees with them up to the one
observation being recorded (its bucket counted before its sum is added). A series created
while a scrape runs appears in the next one.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from math import inf

from prometheus_client import metrics as _client_metrics
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

__all__ = ["CounterSeries", "HistogramSeries", "LoopCounter", "LoopHistogram"]


def _created_series() -> bool:
    """Whether `_created` samples are exposed: prometheus-client's own switch (its
    PROMETHEUS_DISABLE_CREATED_SERIES variable, disable_created_metrics()), read when scraped
    as its own metrics read it."""
    return bool(getattr(_client_metrics, "_use_created", True))


class CounterSeries:
    """One label set's count: `inc()` from the recording thread only."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()

    def inc(self) -> None:
        """Adds one."""
        self.value += 1


class HistogramSeries:
    """One label set's observations: `counts` holds a count per bucket (not cumulative; the
    last one above every bound, +Inf's own) and then the sum of the values observed."""

    __slots__ = ("_bounds", "counts", "created")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts: list[float] = [0] * (len(bounds) + 1) + [0.0]
        self.created = time.time()

    def observe(self, value: float) -> None:
        """Counts `value` in the first bucket whose bound is >= it (prometheus-client's `le`).
        A NaN, which nothing here observes, lands in the first bucket (prometheus-client's own
        adds it to the sum and to no bucket)."""
        counts = self.counts
        counts[bisect_left(self._bounds, value)] += 1
        counts[-1] += value


class LoopCounter:
    """A counter family (`{name}_total`, and `{name}_created` unless disabled) registered in
    `registry`, each label set's count a CounterSeries.

    Example:
        >>> started = LoopCounter("calls_started", "Calls.", ["method"], registry=registry)
        >>> started.labels("GetUser").inc()  # doctest: +SKIP
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        self._name, self._documentation = name, documentation
        self._labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], CounterSeries] = {}
        if not self._labelnames:
            self.labels()  # exposed from the start, as prometheus-client's own is
        registry.register(self)

    def inc(self) -> None:
        """Adds one to a counter without labels."""
        self._series[()].inc()

    def labels(self, *values: str) -> CounterSeries:
        """The series of these label values (made on first use; keep it: a lookup per call
        costs more than the count)."""
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self._labelnames):
                raise ValueError(f"{self._name}: expected labels {self._labelnames}")
            series = self._series[values] = CounterSeries()
        return series

    def describe(self) -> Iterator[Metric]:
        """The family with no samples (the registry checks names against other collectors')."""
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[Metric]:
        """The family as prometheus-client's Counter would expose it now."""
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        created = _created_series()
        for values, series in self._series.copy().items():
            stamp = series.created if created else None
            family.add_metric(values, float(series.value), created=stamp)
        yield family


class LoopHistogram:
    """A histogram family (`_bucket` per bound and +Inf, `_count`, `_sum`, `_created`)
    registered in `registry`, each label set's observations a HistogramSeries.

    Example:
        >>> duration = LoopHistogram("d_seconds", "D.", ["m"], buckets=(0.1, 1), registry=r)
        >>> duration.labels("GetUser").observe(0.02)  # doctest: +SKIP
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = tuple(float(bound) for bound in buckets if bound != inf)
        if not bounds or list(bounds) != sorted(bounds) or bounds[0] < 0:
            raise ValueError(f"{name}: buckets must be sorted, non-negative, at least one")
        self._name, self._documentation = name, documentation
        self._labelnames = tuple(labelnames)
        self._bounds = bounds
        # The `le` values as prometheus-client's Histogram writes them (an untyped helper).
        self._le = tuple(floatToGoString(b) for b in (*bounds, inf))  # type: ignore[no-untyped-call]
        self._series: dict[tuple[str, ...], HistogramSeries] = {}
        if not self._labelnames:
            self.labels()  # exposed from the start, as prometheus-client's own is
        registry.register(self)

    def observe(self, value: float) -> None:
        """Observes `value` in a histogram without labels."""
        self._series[()].observe(value)

    def labels(self, *values: str) -> HistogramSeries:
        """The series of these label values (made on first use; keep it)."""
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self._labelnames):
                raise ValueError(f"{self._name}: expected labels {self._labelnames}")
            series = self._series[values] = HistogramSeries(self._bounds)
        return series

    def describe(self) -> Iterator[Metric]:
        """The family with no samples."""
        yield HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[Metric]:
        """The family as prometheus-client's Histogram would expose it now."""
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        created = _created_series()
        for values, series in self._series.copy().items():
            counts = series.counts.copy()  # one snapshot: buckets, count and sum agree
            buckets, total = [], 0.0
            for le, count in zip(self._le, counts, strict=False):  # the sum is left out
                total += count
                buckets.append((le, total))
            family.add_metric(values, buckets, counts[-1])
            if created:
                labels = dict(zip(self._labelnames, values, strict=True))
                family.add_sample(f"{self._name}_created", labels, series.created)
        yield family
