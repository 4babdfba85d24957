"""`python -m webapp`: serve the webapp (settings from WEBAPP_* environment variables)."""

import sys

from webapp.config import ConfigError
from webapp.server import main

try:
    main()
except ConfigError as exc:
    sys.exit(f"webapp: {exc}")
