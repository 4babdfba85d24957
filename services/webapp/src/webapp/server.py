"""Serving: uvicorn, programmatic, with a graceful shutdown that also ends the open streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
from collections.abc import Iterator
from types import FrameType

import uvicorn
from fastapi import FastAPI
from plumbing.tls import TlsError, TlsFiles, load_material
from plumbing.tracing import configure

from webapp.app import create_app
from webapp.config import Settings
from webapp.gateway.channel import users_tls_files
from webapp.http_limits import protocol_class
from webapp.middleware import access_log

logger = logging.getLogger(__name__)


class Server(uvicorn.Server):
    """uvicorn's server, which on SIGTERM/SIGINT also tells long streams (SSE) to end.

    uvicorn stops accepting, lets in-flight requests finish within the grace period, and only then
    runs the lifespan shutdown: an endless event stream would hold it for the whole grace period.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        self._loop = asyncio.get_running_loop()  # entered by serve(), on the serving loop
        with super().capture_signals():
            yield
            # uvicorn re-raises the signal after draining, so the process dies of it (-15/143);
            # a completed drain is a clean exit: status 0.
            self._captured_signals.clear()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        logger.info("received %s: draining", signal.Signals(sig).name)
        client = getattr(self._app.state, "gateway", None)
        if client is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(client.stopping.set)
        super().handle_exit(sig, frame)


def check_tls_files(settings: Settings) -> None:
    """Exits naming the file and the problem if a TLS file set cannot be used."""
    sets = [users_tls_files(settings)]
    if settings.tls_cert_file is not None:
        sets.append(TlsFiles(settings.tls_cert_file, settings.tls_key_file))
    try:
        for files in sets:
            if files is not None:
                load_material(files)
    except TlsError as error:
        sys.exit(f"webapp: cannot start: {error}")


def main(settings: Settings) -> None:
    """Serves until a signal, drains and exits (logging is configured by then)."""
    check_tls_files(settings)
    tracing = configure("webapp")  # None unless an OTLP endpoint is set
    app = create_app(settings, tracing)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # the request middleware logs each request with its request id
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),  # uvicorn: whole s
        proxy_headers=False,
        server_header=False,
        # URL, header, body and header-time limits (http_limits.py); idle keep-alive
        # connections linger a moment on shutdown (lingering.py).
        http=protocol_class(settings.limits.http),
        # Beyond this many connections or requests at once: 503 at once (limits.py).
        limit_concurrency=settings.limits.max_concurrency,
        # HTTPS from files when set (uvicorn reads them once: a renewal needs a restart).
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )
    Server(config, app).run()
    access_log.flush()  # the lines of the loop's last turn
    if tracing is not None:
        tracing.shutdown()  # the spans still buffered go out
