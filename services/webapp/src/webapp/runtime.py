"""How the process runs, set before grpc starts its threads: grpc core's experiments and the
CPU scheduling policy (the users service's runtime.py has the measurements and the reasons).

For the webapp's channel: without EventEngine for client connections (on for Python since
grpcio 1.80, grpc/grpc#42150) and under SCHED_BATCH, a read through the webapp costs fewer
context switches between grpc's poller thread and the event loop: 1.2x the reads per second
here (the README's "Where the time goes").
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping

logger = logging.getLogger(__name__)

EXPERIMENTS_VARIABLE = "GRPC_EXPERIMENTS"
EXPERIMENTS = "-event_engine_client"
SCHEDULING = ("batch", "normal")


def tune_grpc_core(environ: MutableMapping[str, str] = os.environ) -> str:
    """Sets GRPC_EXPERIMENTS unless the operator did (empty: grpc's defaults); returns it."""
    return environ.setdefault(EXPERIMENTS_VARIABLE, EXPERIMENTS)


def set_scheduling(policy: str) -> None:
    """Puts this thread, and those it starts later, under SCHED_BATCH if `policy` is "batch";
    "normal" leaves the policy as it is. A kernel that refuses is logged, not fatal."""
    if policy == "batch":
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except (AttributeError, OSError) as error:
            logger.warning("cannot set CPU scheduling %s: %s", policy, error)
