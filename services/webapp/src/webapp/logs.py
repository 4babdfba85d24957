"""Logging set-up: one JSON object per line on stderr, tagged with the request id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from datetime import UTC, datetime

from webapp.context import request_id_var

_encode = json.JSONEncoder().encode
_string = json.encoder.encode_basestring_ascii  # a str as a JSON string, as json.dumps writes it
_second: tuple[int, str] = (-1, "")


def _iso_time(created: float) -> str:
    """`created` (seconds since the epoch) in ISO 8601, UTC, to the millisecond."""
    global _second  # noqa: PLW0603 - a one-entry cache: the lines of one second share it
    whole, text = _second  # one read of one tuple: other threads format records too
    if whole != int(created):
        whole = int(created)
        text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (whole, text)
    return f"{text}.{int((created - whole) * 1000):03d}+00:00"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, request_id, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encode(entry)


class AccessLog:
    """The line each HTTP request ends with, as JsonFormatter writes an INFO record of `logger`,
    written once per event-loop turn.

    It bypasses the logging module on purpose: under `make bench` a record through logging
    (LogRecord, handler lock, formatter, a write and a flush per line) cost about a seventh of a
    read's CPU. The lines of the requests one turn finishes go out in one write at its end, so
    they are late by at most that turn; other records are written at once. Off when `logger` is
    not enabled for INFO.

    Example:
        >>> access = AccessLog(logging.getLogger("webapp.access"))
        >>> access.write("GET /healthz 200 0.3ms", "req-1")  # doctest: +SKIP
        {"time": "...", "level": "INFO", "logger": "webapp.access", "message":
         "GET /healthz 200 0.3ms", "request_id": "req-1"}
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._fixed = _encode({"level": "INFO", "logger": logger.name})[1:-1]
        self._pending: list[str] = []
        # The loop a flush is scheduled on: a loop that closed before running it (a test's
        # loop may) must not keep the next loop's lines waiting.
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def write(self, message: str, request_id: str) -> None:
        """Logs `message` for the request `request_id`."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        self._pending.append(
            f'{{"time": "{_iso_time(time.time())}", {self._fixed},'
            f' "message": {_string(message)}, "request_id": {_string(request_id)}}}\n'
        )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop runs: nothing would flush later
            self.flush()
            return
        if self._flush_on is not loop:
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Writes the lines gathered so far."""
        lines, self._pending, self._flush_on = self._pending, [], None
        if lines:
            # Like logging's own handlers, a log that cannot be written never fails a request.
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write("".join(lines))
                sys.stderr.flush()


access_log = AccessLog(logging.getLogger("webapp.access"))


def configure(level: str) -> None:
    """Routes every logger (uvicorn's too) through the JSON formatter at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
