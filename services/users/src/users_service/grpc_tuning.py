"""grpc core's experiments for this service, set before grpc loads (it reads them only then).

grpcio 1.80 turned grpc core's EventEngine on for Python (grpc/grpc#42150): connections are then
read and written on EventEngine threads, one more thread hop per batch for an asyncio server
whose completions reach the loop from grpc's poller thread anyway. With the listener and
endpoints back on the I/O manager grpcio shipped until then, the poller thread does that I/O
itself: the bare grpc.aio echo serves 1.2-1.3x the calls per CPU second here, the users service
1.15-1.2x (about 2 fewer context switches per call; the README's Benchmarks). grpc/grpc#43092
tracks aio's slower unary calls since 1.75.1. `make test-unit` checks that the pinned grpcio
still knows both experiments; once grpcio removes them, this setting becomes a no-op.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

EXPERIMENTS_VARIABLE = "GRPC_EXPERIMENTS"
EXPERIMENTS = "-event_engine_listener,-event_engine_for_all_other_endpoints"


def tune_grpc_core(environ: MutableMapping[str, str] = os.environ) -> str:
    """Sets GRPC_EXPERIMENTS unless the operator did (empty: grpc's defaults); returns it."""
    return environ.setdefault(EXPERIMENTS_VARIABLE, EXPERIMENTS)
