"""`python -m users_service`: read the settings, configure logging, run the server."""

from __future__ import annotations

import sys

import uvloop
from plumbing.logs import configure_logging
from plumbing.runtime import SERVER_EXPERIMENTS, set_scheduling, tune_grpc_core

from users_service.config import ConfigError, Settings, check_access, check_transport


def run() -> None:
    """The `users-service` console script."""
    try:
        settings = Settings.from_env()
        check_transport(settings)
        check_access(settings)
    except ConfigError as error:
        sys.exit(f"users-service: bad configuration: {error}")
    configure_logging(settings.log_level)
    # Both before grpc loads: grpc core reads its experiments once, as it loads, and its threads
    # take the scheduling policy of the thread that starts them.
    tune_grpc_core(SERVER_EXPERIMENTS)
    set_scheduling(settings.cpu_scheduling)
    from users_service.server import main  # noqa: PLC0415

    # uvloop: the same asyncio API (signal handlers included) on libuv; grpc.aio runs on it.
    sys.exit(uvloop.run(main(settings)))


if __name__ == "__main__":
    run()
