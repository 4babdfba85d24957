"""The limit on the users service's runtime: the bare aio echo (run with --uvloop) under the
service's grpc core experiments and CPU scheduling (users_service.runtime), set before grpc loads.
"""

from __future__ import annotations

from users_service.runtime import set_scheduling, tune_grpc_core

tune_grpc_core()
set_scheduling("batch")

from scripts.bench.peers import aio_echo  # noqa: E402 - grpc must load after the tuning

if __name__ == "__main__":
    aio_echo.main()
