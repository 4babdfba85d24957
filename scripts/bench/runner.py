"""Runs the rows, repetition after repetition, sampling the servers' CPU and memory around each."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from scripts.bench.plan import Row
from scripts.bench.procs import Server
from scripts.bench.results import Load
from scripts.bench.stack import Stack

# CANCELLED is not counted: a timed h2load run ends by resetting the calls still in flight.
_NOT_OK = re.compile(rb'"code": "(?!OK"|CANCELLED")')
_CODE = b'"code": "'  # once in each RPC line


class LogWatch:
    """Counts the users service's RPC log lines (one per call) since the last look: all of
    them, and those that report a failure."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._offset = server.log.stat().st_size

    def lines(self) -> tuple[int, int]:
        """(calls, failed calls) logged since the last look."""
        with self._server.log.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        self._offset += len(chunk)
        return chunk.count(_CODE), len(_NOT_OK.findall(chunk))


def measure(stack: Stack, row: Row) -> dict[str, Any]:
    """One run of one row: the load's numbers plus server CPU per 1,000 calls (in all, and per
    process), peak RSS, and for a row with a backend (an HTTP frontend's users service) the
    calls the backend logged per call of the row: the coalesced reads' batches."""
    server = stack[row.server]
    stack.fresh_tokens()
    if row.prepare is not None:
        row.prepare(stack)
    watches = {name: LogWatch(stack[name]) for name in row.cpu_of if name.startswith("users")}
    server.reset_peak_rss()
    before = {name: stack[name].cpu_seconds() for name in row.cpu_of}
    load = row.load(stack)
    cpu = {name: stack[name].cpu_seconds() - before[name] for name in row.cpu_of}
    lines = {name: watch.lines() for name, watch in watches.items()}
    backend_calls = sum(calls for name, (calls, _) in lines.items() if name != row.server)
    return {
        **asdict(load),
        "errors": failures(load, sum(failed for _, failed in lines.values())),
        "rate": round(load.rate, 1),
        "cpu_s_per_1k": _per_1k(sum(cpu.values()), load.calls),
        "cpu_s_per_1k_of": {name: _per_1k(seconds, load.calls) for name, seconds in cpu.items()},
        "backend_calls_per_call": (
            round(backend_calls / load.calls, 4) if load.calls and len(row.cpu_of) > 1 else None
        ),
        "peak_rss_mb": round(server.peak_rss_mb(), 1),
    }


def _per_1k(seconds: float, calls: int) -> float | None:
    return round(seconds / calls * 1000, 4) if calls else None


def failures(load: Load, logged_errors: int) -> int:
    """The run's failed calls: the load's, the server's log's, and one more if it completed no
    call at all (a server that answered nothing within the run, e.g. starved of its core by
    other work, measured nothing, whatever the load generator counted as failed)."""
    return load.errors + logged_errors + (0 if load.calls else 1)


def run_all(
    stack: Stack, rows: list[Row], repetitions: int, warm_ups: Sequence[Row] = ()
) -> dict[str, list[dict[str, Any]]]:
    """Every row once per repetition (interleaved, so drift hits all rows alike), after the
    `warm_ups` once each, unmeasured (plan.warm_ups)."""
    for row in warm_ups:
        sample = measure(stack, row)
        print(f"[warm-up] {row.name:<38} {sample['rate']:>10.0f} {row.unit}", file=sys.stderr)
    samples: dict[str, list[dict[str, Any]]] = {row.name: [] for row in rows}
    for repetition in range(1, repetitions + 1):
        for row in rows:
            sample = measure(stack, row)
            samples[row.name].append(sample)
            print(
                f"[{repetition}/{repetitions}] {row.name:<40} {sample['rate']:>10.0f} {row.unit}"
                f"  errors {sample['errors']}",
                file=sys.stderr,
                flush=True,
            )
    return samples
