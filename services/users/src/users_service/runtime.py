"""How the process runs, set before grpc starts its threads: grpc core's experiments and the
CPU scheduling policy. Both were measured with `make bench` (the README's "Where the time goes").

A grpc.aio server hands every completion from grpc's poller thread to the event loop's thread.
Where both share a core, each hand-off is a context switch, and they were most of the cost of
a call here (12-13 switches per unary call; the bare echo spent ~45 us of its ~110 us in them):

- grpc core's EventEngine (on for Python since grpcio 1.80, grpc/grpc#42150) does the
  listener's and the connections' I/O on threads of its own: one more hop per batch. Back on the
  I/O manager grpcio shipped until then, the poller thread does that I/O itself: the bare echo
  serves 1.2-1.3x the calls. grpc/grpc#43092 tracks aio's slower unary calls since 1.75.1.
- SCHED_BATCH: a thread woken by another does not preempt it, so the poller gathers the
  completions that are ready before the loop runs them, and the loop runs every call that is
  ready before it sleeps again: 2 context switches per call instead of 12, 1.2x the calls again.
  It asks nothing of the kernel that needs privileges, and threads started later inherit it.

`make test-unit` checks that the pinned grpcio still knows both experiments: once grpcio
removes them, the setting becomes a no-op and is due for a new measurement.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping

logger = logging.getLogger(__name__)

EXPERIMENTS_VARIABLE = "GRPC_EXPERIMENTS"
EXPERIMENTS = "-event_engine_listener,-event_engine_for_all_other_endpoints"
SCHEDULING = ("batch", "normal")


def tune_grpc_core(environ: MutableMapping[str, str] = os.environ) -> str:
    """Sets GRPC_EXPERIMENTS unless the operator did (empty: grpc's defaults); returns it."""
    return environ.setdefault(EXPERIMENTS_VARIABLE, EXPERIMENTS)


def set_scheduling(policy: str) -> str:
    """Puts this thread, and the threads it starts from now on, under `policy` (SCHEDULING).

    Returns the policy in force: "normal" where the platform has no SCHED_BATCH, or where the
    kernel refuses it (a seccomp profile, say), which is logged and not fatal.
    """
    if not hasattr(os, "SCHED_BATCH"):
        return "normal"
    batch = policy == "batch"
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH if batch else os.SCHED_OTHER, os.sched_param(0))
    except OSError as error:
        logger.warning("cannot set CPU scheduling %s: %s", policy, error)
        return current_scheduling()
    return "batch" if batch else "normal"


def current_scheduling() -> str:
    """The calling thread's policy, as set_scheduling names it."""
    batch = getattr(os, "SCHED_BATCH", None)
    return "batch" if batch is not None and os.sched_getscheduler(0) == batch else "normal"
