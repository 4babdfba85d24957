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


def set_scheduling(policy: str) -> None:
    """Puts this thread, and the threads it starts from now on, under SCHED_BATCH if `policy`
    is "batch"; "normal" leaves the policy as it is (an operator's `chrt` included).

    A kernel that refuses (a seccomp profile, say) is logged, not fatal, and so is a platform
    without SCHED_BATCH; current_scheduling() tells what is in force.
    """
    if policy == "batch":
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except (AttributeError, OSError) as error:
            logger.warning("cannot set CPU scheduling %s: %s", policy, error)


def current_scheduling() -> str:
    """The calling thread's policy: "batch", "normal", or "other" (one set from outside)."""
    try:
        current = os.sched_getscheduler(0)
    except (AttributeError, OSError):  # not Linux, or not allowed to ask
        return "unknown"
    if current == os.SCHED_BATCH:
        return "batch"
    return "normal" if current == os.SCHED_OTHER else "other"
