"""grpc core's experiments for the webapp's channel, set before grpc loads (it reads them then).

grpcio 1.80 turned grpc core's EventEngine on for Python (grpc/grpc#42150): the channel's
connections are then read and written on EventEngine threads, one more thread hop per call for
an asyncio client. On the I/O manager grpcio shipped until then, the webapp serves about 1.1x the
reads per CPU second (the README's Benchmarks). The users service sets its own (for its
listener); `make test-unit` checks that the pinned grpcio still knows these experiments.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

EXPERIMENTS_VARIABLE = "GRPC_EXPERIMENTS"
EXPERIMENTS = "-event_engine_client"


def tune_grpc_core(environ: MutableMapping[str, str] = os.environ) -> str:
    """Sets GRPC_EXPERIMENTS unless the operator did (empty: grpc's defaults); returns it."""
    return environ.setdefault(EXPERIMENTS_VARIABLE, EXPERIMENTS)
