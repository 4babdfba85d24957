"""How the process runs: grpc core's experiments and CPU scheduling, set before grpc starts."""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping

logger = logging.getLogger(__name__)

EXPERIMENTS_VARIABLE = "GRPC_EXPERIMENTS"
# Both turn grpc core's EventEngine off where it adds a thread hop per batch: fewer context
# switches between grpc's poller and the event loop (measured: docs/performance.md).
# A process that serves gRPC: the listener's and the accepted connections' I/O.
SERVER_EXPERIMENTS = "-event_engine_listener,-event_engine_for_all_other_endpoints"
# A process that only calls out: its channels' connections.
CLIENT_EXPERIMENTS = "-event_engine_client"
SCHEDULING = ("batch", "normal")


def tune_grpc_core(experiments: str, environ: MutableMapping[str, str] = os.environ) -> str:
    """Sets GRPC_EXPERIMENTS to `experiments` unless the operator set it (empty: grpc's defaults).

    Call it before grpc loads: grpc core reads its experiments once, as it loads. Returns the
    value in force.

    Example:
        >>> tune_grpc_core(CLIENT_EXPERIMENTS, {})
        '-event_engine_client'
    """
    return environ.setdefault(EXPERIMENTS_VARIABLE, experiments)


def set_scheduling(policy: str) -> None:
    """Puts this thread, and those it starts from now on, under SCHED_BATCH if `policy` is "batch".

    SCHED_BATCH: a woken thread does not preempt the running one, so grpc's poller gathers
    completions before the loop runs them (docs/performance.md). It needs no privilege, and
    threads started later inherit it. "normal" leaves the policy as it is (an operator's `chrt`
    included). A kernel that refuses (a seccomp profile, say) is logged, not fatal, and so is a
    platform without SCHED_BATCH; current_scheduling() tells what is in force.
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
