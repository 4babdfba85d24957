"""`python -m webapp`: serve the webapp (settings from WEBAPP_* environment variables)."""

import sys

from plumbing.logs import configure_logging
from plumbing.runtime import CLIENT_EXPERIMENTS, set_scheduling, tune_grpc_core

from webapp.config import ConfigError, Settings

# uvicorn gives these loggers handlers of their own: their records go through ours instead.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def run() -> None:
    """Reads the settings, configures logging and the runtime, serves until a signal."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(f"webapp: {exc}")
    configure_logging(settings.log_level, reroute=UVICORN_LOGGERS)
    # Both before grpc loads: grpc core reads its experiments once, as it loads, and its threads
    # take the scheduling policy of the thread that starts them.
    tune_grpc_core(CLIENT_EXPERIMENTS)
    set_scheduling(settings.cpu_scheduling)
    from webapp.server import main  # noqa: PLC0415

    main(settings)


if __name__ == "__main__":
    run()
