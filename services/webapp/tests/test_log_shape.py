"""The shape of the real webapp's log lines: the users service writes the same keys (testkit.logs).

The webapp has no path that logs a traceback short of a bug (a route's, a peer's malformed rich
status): the users service's suite checks the traceback under "exception"; here, a normal line,
a request's line and an error line of `python -m webapp`.
"""

from __future__ import annotations

import socket
import sys

import httpx
from testkit.logs import assert_line_shape
from testkit.processes import LoggedProcess

from .conftest import Webapp


def test_a_request_and_the_lines_around_it_have_the_shared_keys(webapp: Webapp) -> None:
    httpx.get(f"{webapp.url}/healthz", headers={"x-request-id": "req-7"}, timeout=10)
    started = assert_line_shape(webapp.process.wait_for_line("Application startup complete"))
    assert (started["logger"], started["request_id"]) == ("uvicorn.error", None)
    access = assert_line_shape(webapp.process.wait_for_line('"request_id": "req-7"'))
    assert (access["logger"], access["message"].split()[:2]) == (
        "webapp.access",
        ["GET", "/healthz"],
    )


def test_a_port_in_use_logs_an_error_line_with_the_shared_keys(webapp: Webapp) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**webapp.env, "WEBAPP_PORT": str(taken.getsockname()[1])}
        second = LoggedProcess([sys.executable, "-m", "webapp"], env)
        try:
            assert second.proc.wait(30) != 0
        finally:
            second.stop()
    error = assert_line_shape(second.wait_for_line('"level": "ERROR"'))
    assert (error["logger"], error["request_id"]) == ("uvicorn.error", None)
    assert "address already in use" in error["message"]
