"""`python -m webapp`: serve the webapp (settings from WEBAPP_* environment variables)."""

import sys

from webapp.config import ConfigError
from webapp.grpc_tuning import tune_grpc_core

tune_grpc_core()
# Imported only now, after tune_grpc_core: grpc core reads its experiments once, as it loads.
from webapp.server import main  # noqa: E402

try:
    main()
except ConfigError as exc:
    sys.exit(f"webapp: {exc}")
