"""The limit on the users service's runtime: the bare aio echo (run with --uvloop) under the
service's grpc core experiments and CPU scheduling (plumbing.runtime), set before grpc loads.
"""

from __future__ import annotations

from plumbing.runtime import SERVER_EXPERIMENTS, set_scheduling, tune_grpc_core

tune_grpc_core(SERVER_EXPERIMENTS)
set_scheduling("batch")

from scripts.bench.peers import aio_echo  # noqa: E402 - grpc must load after the tuning

if __name__ == "__main__":
    aio_echo.main()
