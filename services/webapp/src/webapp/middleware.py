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


class RequestContextMiddleware:
    """Sets the request id and deadline contextvars, echoes X-Request-ID, logs each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = accept_request_id(headers.get(REQUEST_ID_HEADER))
        request_id_var.set(request_id)
        started = time.monotonic()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out = MutableHeaders(scope=message)
                out[REQUEST_ID_HEADER] = request_id
                for name, value in SECURITY_HEADERS.items():
                    out.setdefault(name, value)
            await send(message)

        try:
            request_deadline_var.set(parse_request_timeout(headers.get(REQUEST_TIMEOUT_HEADER)))
        except ValueError as exc:
            await problem(400, str(exc))(scope, receive, send_with_headers)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except* StreamAbortedError:
            # Already logged where it happened. Returning with the body unfinished makes uvicorn
            # close the connection, so the client sees a truncated response, not a short one.
            pass
        finally:
            logger.info(
                "%s %s %s %.1fms",
                scope["method"],
                scope["path"],
                status,
                (time.monotonic() - started) * 1000,
            )
