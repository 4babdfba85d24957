"""ASGI middleware: request id and time budget in, security headers and an access log line out."""

from __future__ import annotations

import logging
import time

from plumbing.logs import BatchedLog
from plumbing.request_ids import REQUEST_ID_KEY, new_request_id, request_id_var, well_formed
from plumbing.tracing import Span, Tracer, log_fields
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webapp import session
from webapp.caller import authorization_var
from webapp.deadlines import REQUEST_TIMEOUT_HEADER, parse_request_timeout, request_deadline_var
from webapp.errors import StreamAbortedError, problem, unauthorized
from webapp.guards import WriteRateLimit
from webapp.hosts import DEFAULT_ALLOWED_HOSTS, EXEMPT_PATHS, HostCheck
from webapp.telemetry import RequestSpans, WebappMetrics, end_request_span, route_template

logger = logging.getLogger("webapp.access")
# The line each request ends with (server.py flushes its last turn's lines at exit).
access_log = BatchedLog(logger)

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


# Sent over HTTPS only (RFC 6797: a browser ignores it over plaintext): a year, and the
# subdomains, once the webapp serves TLS itself (WEBAPP_TLS_CERT_FILE).
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")

INTERNAL_ERROR = "an internal error occurred; the request id identifies it"

# Raw ASGI header names are lowercase bytes; one pass over the list beats a Headers view's
# lookup per name (a scan each) on every request.
_SECURITY_HEADERS_RAW = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
_REQUEST_ID_RAW = REQUEST_ID_KEY.encode()
_REQUEST_TIMEOUT_RAW = REQUEST_TIMEOUT_HEADER.encode()
_CREDENTIALS_RAW = (b"authorization", b"cookie")
MISDIRECTED = "this server does not serve that host name (WEBAPP_ALLOWED_HOSTS)"


class _Response:
    """The response side of one request: stamps the headers on its start, remembers the status."""

    def __init__(self, send: Send, request_id: str, https: bool = False) -> None:
        self._send = send
        self._https = https
        self._request_id = request_id.encode("latin-1")  # well formed: ASCII only
        self.status = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            # X-Request-ID replaced, the security headers added where the app set none.
            headers = [(k, v) for k, v in message.get("headers", ()) if k != _REQUEST_ID_RAW]
            present = {name for name, _ in headers}
            headers.append((_REQUEST_ID_RAW, self._request_id))
            headers += [pair for pair in _SECURITY_HEADERS_RAW if pair[0] not in present]
            if self._https and HSTS[0] not in present:
                headers.append(HSTS)
            message["headers"] = headers
        await self._send(message)


class RequestContextMiddleware:
    """Sets the request id and deadline contextvars, echoes X-Request-ID, logs each request;
    with `metrics`, records it by route template; with `tracer`, serves it in a server span;
    with `writes`, refuses writes over their address's rate (429).

    Every response passes through it, errors included, so each carries the security headers.
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS,
        metrics: WebappMetrics | None = None,
        tracer: Tracer | None = None,
        writes: WriteRateLimit | None = None,
    ) -> None:
        self.app = app
        self._writes = writes
        self.hosts = HostCheck(allowed_hosts)
        self._metrics = metrics
        self._spans = None if tracer is None else RequestSpans(tracer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = raw_timeout = None  # the first well-formed id, the first timeout
        credentials: dict[bytes, bytes] = {}  # the first Host, Authorization and Cookie
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_RAW and request_id is None:
                if well_formed(candidate := value.decode("latin-1")):
                    request_id = candidate
            elif name == _REQUEST_TIMEOUT_RAW and raw_timeout is None:
                raw_timeout = value.decode("latin-1")
            elif name in _CREDENTIALS_RAW or name == b"host":
                credentials.setdefault(name, value)
        if request_id is None:
            request_id = new_request_id()
        request_id_var.set(request_id)
        span = None if self._spans is None else self._spans.start(scope)
        started = time.monotonic()
        response = _Response(send, request_id, scope.get("scheme") == "https")
        try:
            if self._admitted(scope, credentials):
                await self._serve(scope, receive, response, raw_timeout)
            elif not self.hosts.allows(credentials.get(b"host")):
                await problem(400, MISDIRECTED)(scope, receive, response.send)
            else:
                await unauthorized(session.MALFORMED)(scope, receive, response.send)
        finally:
            self._finished(scope, response.status, request_id, time.monotonic() - started, span)

    def _finished(
        self, scope: Scope, status: int, request_id: str, took: float, span: Span | str | None
    ) -> None:
        """The request's access line, its metrics and the end of its span (a str: the log
        fields of a request whose span was dropped, RequestSpans.start)."""
        line = f"{scope['method']} {scope['path']} {status} {took * 1000:.1f}ms"
        if span is None:
            access_log.write(line, request_id)
        elif logger.isEnabledFor(logging.INFO):  # the line joins the trace
            fields = span if isinstance(span, str) else log_fields(span)
            access_log.write_encoded(access_log.head(line), request_id, fields)
        recorded = None if isinstance(span, str) else span
        if self._metrics is not None or recorded is not None:
            self._record(scope, status, took, recorded)

    def _record(self, scope: Scope, status: int, seconds: float, span: Span | None) -> None:
        route = route_template(scope)
        if self._metrics is not None:
            self._metrics.request(scope["method"], route, status, seconds)
        if span is not None:
            end_request_span(span, scope, route, status)

    def _admitted(self, scope: Scope, credentials: dict[bytes, bytes]) -> bool:
        """Whether the Host is served (or the path exempt) and the credentials can be passed on;
        if so, they are set as the request's caller (caller.authorization_var)."""
        path = scope["path"]
        if not (self.hosts.allows(credentials.get(b"host")) or path in EXEMPT_PATHS):
            return False
        try:
            authorization_var.set(
                session.authorization(
                    credentials.get(b"authorization"),
                    credentials.get(b"cookie"),
                    scope["method"],
                    path,
                    scope.get("scheme") == "https",
                )
            )
        except session.MalformedCredentialsError:
            return False
        return True

    async def _serve(
        self, scope: Scope, receive: Receive, response: _Response, raw_timeout: str | None
    ) -> None:
        try:
            request_deadline_var.set(parse_request_timeout(raw_timeout))
        except ValueError as exc:
            await problem(400, str(exc))(scope, receive, response.send)
            return
        if self._writes is not None and (refusal := self._writes.refusal(scope)) is not None:
            await refusal(scope, receive, response.send)
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
