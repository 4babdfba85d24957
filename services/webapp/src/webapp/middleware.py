"""ASGI middleware: request id and time budget in, security headers and an access log line out."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webapp.context import (
    REQUEST_ID_HEADER,
    REQUEST_TIMEOUT_HEADER,
    accept_request_id,
    parse_request_timeout,
    request_deadline_var,
    request_id_var,
)
from webapp.errors import StreamAbortedError, problem

logger = logging.getLogger("webapp.access")

# No inline script or style anywhere: every asset is a file under /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


INTERNAL_ERROR = "an internal error occurred; the request id identifies it"


class _Response:
    """The response side of one request: stamps the headers on its start, remembers the status."""

    def __init__(self, send: Send, request_id: str) -> None:
        self._send = send
        self._request_id = request_id
        self.status = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            out = MutableHeaders(scope=message)
            out[REQUEST_ID_HEADER] = self._request_id
            for name, value in SECURITY_HEADERS.items():
                out.setdefault(name, value)
        await self._send(message)


class RequestContextMiddleware:
    """Sets the request id and deadline contextvars, echoes X-Request-ID, logs each request.

    Every response passes through it, errors included, so each carries the security headers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id_var.set(request_id := accept_request_id(headers.get(REQUEST_ID_HEADER)))
        started = time.monotonic()
        response = _Response(send, request_id)
        try:
            await self._serve(scope, receive, response, headers)
        finally:
            logger.info(
                "%s %s %s %.1fms",
                scope["method"],
                scope["path"],
                response.status,
                (time.monotonic() - started) * 1000,
            )

    async def _serve(
        self, scope: Scope, receive: Receive, response: _Response, headers: Headers
    ) -> None:
        try:
            request_deadline_var.set(parse_request_timeout(headers.get(REQUEST_TIMEOUT_HEADER)))
        except ValueError as exc:
            await problem(400, str(exc))(scope, receive, response.send)
            return
        try:
            await self._run_app(scope, receive, response.send)
        except Exception:
            if response.status:
                raise  # the response has begun: too late for a 500, the connection drops
            # Answered here, not by an app-level handler for Exception: Starlette runs that one
            # outside every middleware, so its 500 would lack the request id and security headers.
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            await problem(500, INTERNAL_ERROR)(scope, receive, response.send)

    async def _run_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except* StreamAbortedError:
            # Already logged where it happened. Returning with the body unfinished makes uvicorn
            # close the connection, so the client sees a truncated response, not a short one.
            pass
