"""The shape of a log line under the service's logging: the webapp writes the same keys."""

from __future__ import annotations

import json
import subprocess
import sys

# The same list is asserted by services/webapp/tests/test_log_shape.py: one shape for both.
LINE_WITH_AN_EXCEPTION = ["time", "level", "logger", "message", "request_id", "exception"]

# Logging as `python -m users_service` configures it, then what calls.py logs for a handler's
# bug in a call, then a line outside any call. A process of its own: it takes over the root logger.
_PROGRAM = """
import logging
from plumbing.logs import configure_logging
from plumbing.request_ids import request_id_var
configure_logging("INFO")
request_id_var.set("req-7")
try:
    raise ValueError("a bug in a handler")
except ValueError as error:
    logging.getLogger("users_service.calls").error("unhandled error in %s", "/m", exc_info=error)
request_id_var.set("")
logging.getLogger("users_service.server").info("stopped")
"""


def test_an_error_in_a_call_logs_the_webapps_keys_with_the_traceback_under_exception() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=30, check=True
    )
    error, outside = (json.loads(line) for line in result.stderr.splitlines())
    assert list(error) == LINE_WITH_AN_EXCEPTION
    assert (error["level"], error["logger"], error["request_id"]) == (
        "ERROR",
        "users_service.calls",
        "req-7",
    )
    assert error["exception"].startswith("Traceback (most recent call last):")
    assert error["exception"].endswith("ValueError: a bug in a handler")
    assert list(outside) == LINE_WITH_AN_EXCEPTION[:-1]
    assert outside["request_id"] is None
