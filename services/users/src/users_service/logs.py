"""Structured logging: one JSON object per line, carrying the request id of the current call."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else came through `extra=` and is logged as a field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


# One encoder for every line: json.dumps(..., default=str) builds a new one on each call.
_encode = json.JSONEncoder(default=str).encode
_string = json.encoder.encode_basestring_ascii  # a str as a JSON string (in C where it can be)
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
    """Formats a record as one JSON line: time, level, logger, message, request_id and extras.

    Example:
        >>> logging.getLogger("x").info("done", extra={"duration_ms": 3})  # doctest: +SKIP
        {"time": "...", "level": "INFO", "logger": "x", "message": "done", "duration_ms": 3}
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and value is not None
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry)


class RpcLog:
    """The line each RPC ends with, like a record of `logger`, written once per loop turn.

    It bypasses the logging module on purpose: a call costs the server about 0.16 ms of CPU, a
    record through logging (LogRecord, handler, formatter, a write per line) cost 30 us of it in
    the running server; this line, an f-string over fields encoded once, a few. Lines gather
    while the event loop runs the calls of one turn and go out in one write at the end of it,
    so they are late by at most that turn; other records are written at once. Same fields,
    same JSON as JsonFormatter; off when `logger` is not enabled for INFO.

    Example:
        >>> rpc_log = RpcLog(logging.getLogger("users_service.calls"))
        >>> rpc_log.write("/users.v1.UserService/GetUser", "OK", 0.41, "req-1")  # doctest: +SKIP
        {"time": "...", "level": "INFO", "logger": "users_service.calls", "message":
         "rpc /users.v1.UserService/GetUser OK", "request_id": "req-1", "method": ..., ...}
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._pending: list[str] = []
        # The loop a flush is scheduled on: a loop that closed before running it (each test's
        # loop does) must not keep the next loop's lines waiting.
        self._flush_on: asyncio.AbstractEventLoop | None = None
        # (method, code) -> the line's fields that depend on nothing else, as JSON. The methods
        # are those with a handler and the codes grpc's: no client input grows this.
        self._fixed: dict[tuple[str, str], tuple[str, str]] = {}

    def write(
        self, method: str, code: str, duration_ms: float, request_id: str, peer: str = ""
    ) -> None:
        """Logs the end of an RPC: its method, status code, duration and request id, and `peer`
        (fields already JSON-encoded, each with a leading comma: see calls.peer_fields)."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        fixed = self._fixed.get((method, code))
        if fixed is None:
            fixed = self._fixed[method, code] = self._fixed_fields(method, code)
        head, tail = fixed
        self._pending.append(
            f'{{"time": "{_iso_time(time.time())}", {head}, "request_id": {_string(request_id)},'
            f" {tail},"
            f' "duration_ms": {round(duration_ms, 3)!r}{peer}}}\n'
        )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop runs: nothing would flush later
            self.flush()
            return
        if self._flush_on is not loop:
            self._flush_on = loop
            loop.call_soon(self.flush)

    def _fixed_fields(self, method: str, code: str) -> tuple[str, str]:
        head = {"level": "INFO", "logger": self._logger.name, "message": f"rpc {method} {code}"}
        tail = {"method": method, "code": code}
        return _encode(head)[1:-1], _encode(tail)[1:-1]

    def flush(self) -> None:
        """Writes the lines gathered so far."""
        lines, self._pending, self._flush_on = self._pending, [], None
        if lines:
            # Like logging's own handlers, a log that cannot be written never fails a call.
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write("".join(lines))
                sys.stderr.flush()


def install_request_id_factory() -> None:
    """Stamps each new LogRecord with the current call's request id (idempotent).

    Done at record creation, in the caller's context, so that a record formatted later or
    elsewhere still carries the id of the call that logged it.
    """
    base = logging.getLogRecordFactory()
    if getattr(base, "stamps_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        record.request_id = request_id_var.get()
        return record

    factory.stamps_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(level: str) -> None:
    """Sends every log record to stderr as JSON lines, at `level` and above."""
    install_request_id_factory()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
