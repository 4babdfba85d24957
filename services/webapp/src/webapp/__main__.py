"""`python -m webapp`: serve the webapp (settings from WEBAPP_* environment variables)."""

import sys

from webapp import logs
from webapp.config import ConfigError, Settings
from webapp.runtime import set_scheduling, tune_grpc_core

try:
    settings = Settings.from_env()
except ConfigError as exc:
    sys.exit(f"webapp: {exc}")
logs.configure(settings.log_level)
# Both before grpc loads: grpc core reads its experiments once, as it loads, and its threads
# take the scheduling policy of the thread that starts them.
tune_grpc_core()
set_scheduling(settings.cpu_scheduling)
from webapp.server import main  # noqa: E402

main(settings)
