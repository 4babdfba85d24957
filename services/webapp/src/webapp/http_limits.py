"""HTTP limits enforced as bytes arrive, before the app sees a request: URL, headers, body, and
the time a client may take to send its headers (slow-loris).

uvicorn's httptools protocol has none of these (llhttp accepts an 8 MiB URL or header line and
waits for the rest for ever): this subclass counts and answers 414, 431, 413 or 408 with
`Connection: close`, then closes the connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httptools

from webapp.lingering import LingeringHttpToolsProtocol

_PHRASES = {
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


# How long a refused connection's incoming bytes are read and dropped before it is closed.
REFUSAL_LINGER_SECONDS = 1.0


@dataclass(frozen=True)
class HttpLimits:
    """What one request may take (docs/limits.md); the webapp's settings fill it in."""

    max_url_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024  # the request line and every header, together
    max_body_bytes: int = 1024 * 1024
    # An NDJSON import may be larger than any other body, up to its own cap.
    max_import_bytes: int = 64 * 1024 * 1024
    import_path: str = "/api/v1/users:import"
    header_timeout_seconds: float = 10.0


class _Refused(Exception):  # noqa: N818 - control flow out of the parser's callbacks
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def protocol_class(limits: HttpLimits) -> type[LingeringHttpToolsProtocol]:
    """The protocol class uvicorn is given (`http=`), enforcing `limits`."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


class LimitedHttpToolsProtocol(LingeringHttpToolsProtocol):
    """uvicorn's httptools protocol (with the lingering close) that enforces `limits`.

    Example:
        >>> uvicorn.Config(app, http=protocol_class(HttpLimits()))  # doctest: +SKIP
    """

    limits = HttpLimits()
    _head_bytes = 0
    _body_bytes = 0
    _body_limit = 0
    _in_headers = True
    _header_timer: asyncio.TimerHandle | None = None
    _discarding = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        if self._in_headers:
            self._head_bytes += len(data)
        try:
            self._feed(data)
        except _Refused as refused:
            self._refuse(refused.status, refused.reason)

    def _feed(self, data: bytes) -> None:
        """uvicorn's data_received, with a refusal raised in a callback let through."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _Refused):
                raise error.__context__ from None
            self._bad_request()
        except httptools.HttpParserError:
            self._bad_request()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        if self._in_headers and self._head_bytes > self._head_limit():
            raise _Refused(431, "the request's headers are too large")

    def _bad_request(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    def _head_limit(self) -> int:
        return self.limits.max_url_bytes + self.limits.max_header_bytes

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._body_bytes = 0
        if self._header_timer is None:  # a keep-alive connection's next request
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            raise _Refused(414, "the URL is too long")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_header_timer()
        self._body_limit = self._limit_for(self.url)
        length = next((v for k, v in self.headers if k == b"content-length"), b"0")
        if length.isdigit() and int(length) > self._body_limit:
            raise _Refused(413, "the request body is too large")
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._body_limit:
            raise _Refused(413, "the request body is too large")
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_headers = True  # what comes next on the connection is the next request's
        self._head_bytes = 0

    def _limit_for(self, url: bytes) -> int:
        path = url.split(b"?", 1)[0].decode("latin-1")
        if path == self.limits.import_path:
            return self.limits.max_import_bytes
        return self.limits.max_body_bytes

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout_seconds, self._headers_too_slow
        )

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._in_headers and not self.transport.is_closing():
            self._refuse(408, "the request's headers took too long")

    def _refuse(self, status: int, reason: str) -> None:
        """Answers `status` with `Connection: close` (unless a response has begun), closes."""
        self._disarm_header_timer()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False
            if cycle.response_started:
                self.transport.close()
                return
            # The app, if it runs, reads a disconnect and its response goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        body = reason.encode()
        head = b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES[status])
        headers = (
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % len(body)
        )
        if self.transport.is_closing():
            return
        self.transport.write(head + headers + body)
        # A lingering close: closing with the client's bytes unread would send a reset, which
        # can destroy the answer before the client reads it. Shut our side, discard what still
        # comes for a moment, then close.
        self._discarding = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(REFUSAL_LINGER_SECONDS, self.transport.close)
