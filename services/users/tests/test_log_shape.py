"""The shape of the real service's log lines: the webapp writes the same keys (testkit.logs)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from testkit.logs import EXCEPTION, assert_line_shape

from .conftest import ServerProcess


def test_an_error_outside_a_call_logs_the_shared_keys_with_the_traceback_last(
    spawn_server: Callable[..., ServerProcess], postgres_url: str
) -> None:
    server = spawn_server(postgres_url)
    listening = assert_line_shape(server.wait_for_log(r'"message": "listening"'))
    assert listening["request_id"] is None
    # A notification on the change feed's channel that is not a change: the feed logs it with
    # its traceback and goes on (users_service/store/postgres_changes.py).
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify('users_changes', 'not a change')")
    error = assert_line_shape(server.wait_for_log(r"ignored a malformed"), exception=True)
    assert (error["level"], error["logger"], error["request_id"]) == (
        "ERROR",
        "users_service.store.postgres_changes",
        None,
    )
    assert error[EXCEPTION].endswith("JSONDecodeError: Expecting value: line 1 column 1 (char 0)")
