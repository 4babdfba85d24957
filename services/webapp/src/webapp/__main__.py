"""`python -m webapp`: serve the webapp (settings from WEBAPP_* environment variables)."""

import sys

from plumbing.logs import configure_logging
from plumbing.runtime import CLIENT_EXPERIMENTS, set_scheduling, tune_grpc_core

from webapp.config import ConfigError, Settings

try:
    settings = Settings.from_env()
except ConfigError as exc:
    sys.exit(f"webapp: {exc}")
# uvicorn's loggers come with handlers of their own: their records go through ours instead.
configure_logging(settings.log_level, reroute=("uvicorn", "uvicorn.error", "uvicorn.access"))
# Both before grpc loads: grpc core reads its experiments once, as it loads, and its threads
# take the scheduling policy of the thread that starts them.
tune_grpc_core(CLIENT_EXPERIMENTS)
set_scheduling(settings.cpu_scheduling)
from webapp.server import main  # noqa: E402

main(settings)
