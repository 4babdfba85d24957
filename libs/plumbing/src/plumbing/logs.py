"""JSON log lines on stderr: one formatter, one field set, a line writer batched per loop turn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from plumbing.request_ids import request_id_var
from plumbing.tracing import current_ids

# Attributes every LogRecord has, and those the formatter writes itself; any other attribute
# came through `extra=` and is logged as a field. uvicorn's records carry their message a second
# time, with terminal colours, as color_message: left out.
_NOT_EXTRAS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
    "color_message",
}

# One encoder for every line: json.dumps(..., default=str) builds a new one on each call.
_encode = json.JSONEncoder(default=str).encode
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
    """Formats a record as one JSON line: time, level, logger, message, request_id, then extras
    (trace_id and span_id among them, inside a traced request: install_request_id_factory).

    request_id is null outside a request; an exception goes under "exception", last.

    Example:
        >>> logging.getLogger("x").info("done", extra={"duration_ms": 3})  # doctest: +SKIP
        {"time": "...", "level": "INFO", "logger": "x", "message": "done", "request_id": null,
         "duration_ms": 3}
    """

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)  # stamped as the record was made
        if request_id is None:  # a record made without the factory: the current one
            request_id = request_id_var.get()
        entry: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id or None,
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _NOT_EXTRAS and value is not None
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry)


class BatchedLog:
    """INFO lines of `logger`, as JsonFormatter writes them, written once per event-loop turn.

    For the line every call or request ends with. It bypasses the logging module on purpose: a
    record through it (LogRecord, handler lock, formatter, a write per line) costs a good share
    of a call's CPU (docs/performance.md); this line is an f-string over fields encoded once.
    Lines gather while the event loop runs one turn and go out in one write at its end, so they
    are late by at most that turn; other records are written at once. Off when `logger` is not
    enabled for INFO.

    Example:
        >>> access = BatchedLog(logging.getLogger("webapp.access"))
        >>> access.write("GET /healthz 200 0.3ms", "req-1")  # doctest: +SKIP
        {"time": "...", "level": "INFO", "logger": "webapp.access", "message":
         "GET /healthz 200 0.3ms", "request_id": "req-1"}
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._fixed = _encode({"level": "INFO", "logger": logger.name})[1:-1]
        self._pending: list[str] = []
        # The loop a flush is scheduled on: a loop that closed before running it (each test's
        # loop may) must not keep the next loop's lines waiting.
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def head(self, message: str) -> str:
        """The fields before the request id (level, logger, message), encoded once to reuse."""
        return f'{self._fixed}, "message": {_string(message)}'

    @staticmethod
    def fields(**values: Any) -> str:
        """`values` encoded as the fields that follow the request id (a tail for write_encoded)."""
        return ", " + _encode(values)[1:-1] if values else ""

    def write(self, message: str, request_id: str) -> None:
        """Logs `message` for the request `request_id`."""
        if self.logger.isEnabledFor(logging.INFO):
            self.write_encoded(self.head(message), request_id, "")

    def write_encoded(self, head: str, request_id: str, tail: str) -> None:
        """Logs a line from its encoded parts: `head` (see head()), the request id, `tail`.

        `tail` is "" or JSON fields with a leading ", " (see fields()). The caller has checked
        that the logger is enabled for INFO.
        """
        self._pending.append(
            f'{{"time": "{_iso_time(time.time())}", {head},'
            f' "request_id": {_string(request_id)}{tail}}}\n'
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
            # Like logging's own handlers, a log that cannot be written never fails a call.
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write("".join(lines))
                sys.stderr.flush()


def install_request_id_factory() -> None:
    """Stamps each new LogRecord with the current request id, and the current trace and span
    ids when a traced span is current (idempotent).

    Done at record creation, in the caller's context, so that a record formatted later or
    elsewhere still carries the ids of the call that logged it.
    """
    base = logging.getLogRecordFactory()
    if getattr(base, "stamps_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        record.request_id = request_id_var.get()
        ids = current_ids()
        if ids is not None:  # JsonFormatter writes them as fields, after request_id
            record.trace_id, record.span_id = ids
        return record

    factory.stamps_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(level: str, *, reroute: Iterable[str] = ()) -> None:
    """Sends every log record to stderr as JSON lines, at `level` and above. Call it once, first.

    `reroute` names loggers that a library gave handlers of its own (uvicorn's): those are
    dropped, so that their records reach the JSON handler too.
    """
    install_request_id_factory()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in reroute:
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
