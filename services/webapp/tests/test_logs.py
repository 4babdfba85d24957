"""The JSON log lines: the access line each request ends with, as the formatter writes records."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from plumbing.logs import BatchedLog, JsonFormatter
from plumbing.request_ids import request_id_var

# Quotes, backslashes, control and non-ASCII characters: all must be escaped as json.dumps does.
MESSAGES = ['GET /a"b\\c 200 0.1ms', "GET /caf\u00e9/\u2603 404 1.0ms", "GET /\x00\t 400 2.5ms"]


@pytest.fixture
def access() -> Iterator[BatchedLog]:
    """An BatchedLog of webapp.access, enabled for INFO for the test."""
    logger = logging.getLogger("webapp.access")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield BatchedLog(logger)
    logger.setLevel(level)


@pytest.mark.parametrize("message", MESSAGES)
async def test_an_access_line_is_the_line_the_formatter_writes_for_its_record(
    message: str, access: BatchedLog, capsys: pytest.CaptureFixture[str]
) -> None:
    access.write(message, "req-\u00e9")
    assert capsys.readouterr().err == ""  # gathered until the end of the loop's turn
    await asyncio.sleep(0)
    line = capsys.readouterr().err
    assert line.endswith("\n")
    assert line.count("\n") == 1

    record = logging.LogRecord("webapp.access", logging.INFO, __file__, 1, message, (), None)
    token = request_id_var.set("req-\u00e9")
    try:
        expected = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    written = json.loads(line)
    assert list(written) == list(expected)  # the same fields in the same order
    assert {k: v for k, v in written.items() if k != "time"} == {
        k: v for k, v in expected.items() if k != "time"
    }
    written_at = datetime.fromisoformat(written["time"])
    assert abs(written_at - datetime.fromisoformat(expected["time"])) < timedelta(seconds=1)
    assert line.isascii()


async def test_lines_of_one_turn_go_out_together_in_order(
    access: BatchedLog, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(3):
        access.write(f"GET /{n} 200 0.1ms", f"r{n}")
    await asyncio.sleep(0)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["request_id"] for line in lines] == ["r0", "r1", "r2"]


def test_without_a_running_loop_a_line_is_written_at_once(
    access: BatchedLog, capsys: pytest.CaptureFixture[str]
) -> None:
    access.write("GET / 200 0.1ms", "r")
    assert json.loads(capsys.readouterr().err)["message"] == "GET / 200 0.1ms"


def test_no_line_when_the_logger_is_not_enabled_for_info(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = logging.getLogger("webapp.access.quiet")
    logger.setLevel(logging.WARNING)
    try:
        BatchedLog(logger).write("GET / 200 0.1ms", "r")
    finally:
        logger.setLevel(logging.NOTSET)
    assert capsys.readouterr().err == ""


async def test_the_running_webapp_logs_each_request_with_its_id(
    http: httpx.AsyncClient, webapp: Any
) -> None:
    await http.get("/healthz", headers={"X-Request-ID": "access-1"})
    await http.get("/api/v1/users/424242", headers={"X-Request-ID": "access-2"})
    ok = json.loads(webapp.process.wait_for_line('"request_id": "access-1"', "webapp.access"))
    assert ok["message"].startswith("GET /healthz 200 ")
    missing = webapp.process.wait_for_line('"request_id": "access-2"', "webapp.access")
    assert json.loads(missing)["message"].startswith("GET /api/v1/users/424242 404 ")
