"""The shape of a log line under the webapp's logging: the users service writes the same keys."""

from __future__ import annotations

import json
import subprocess
import sys

# The same list is asserted by services/users/tests/test_log_shape.py: one shape for both.
LINE_WITH_AN_EXCEPTION = ["time", "level", "logger", "message", "request_id", "exception"]

# Logging as `python -m webapp` configures it, then what the request middleware logs for a
# route's bug, then uvicorn's record of an application error (its message again in colour as an
# extra). A process of its own: it takes over the root logger and uvicorn's loggers.
_PROGRAM = """
import logging
from plumbing.logs import configure_logging
from plumbing.request_ids import request_id_var
from webapp.__main__ import UVICORN_LOGGERS
configure_logging("INFO", reroute=UVICORN_LOGGERS)
request_id_var.set("req-7")
try:
    raise ValueError("a bug in a route")
except ValueError:
    logging.getLogger("webapp.access").exception("unhandled error on %s %s", "GET", "/")
request_id_var.set("")
try:
    raise RuntimeError("an ASGI application failed")
except RuntimeError:
    extra = {"color_message": "\\x1b[31mException\\x1b[0m in ASGI application"}
    logging.getLogger("uvicorn.error").exception("Exception in ASGI application", extra=extra)
"""


def test_an_error_in_a_request_logs_the_users_keys_with_the_traceback_under_exception() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=30, check=True
    )
    error, uvicorn = (json.loads(line) for line in result.stderr.splitlines())
    assert list(error) == LINE_WITH_AN_EXCEPTION
    assert (error["level"], error["logger"], error["request_id"]) == (
        "ERROR",
        "webapp.access",
        "req-7",
    )
    assert error["exception"].startswith("Traceback (most recent call last):")
    assert error["exception"].endswith("ValueError: a bug in a route")
    assert list(uvicorn) == LINE_WITH_AN_EXCEPTION
    assert (uvicorn["logger"], uvicorn["request_id"]) == ("uvicorn.error", None)
