"""The server's lifecycle: build, start, and drain gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from plumbing.metrics import MetricsEndpoint, serve
from plumbing.runtime import EXPERIMENTS_VARIABLE, current_scheduling
from plumbing.tls import ClientAuth, TlsError, TlsFiles, server_credentials
from plumbing.tokens import KeyFileError
from plumbing.tracing import Tracing, configure
from users.v1 import users_pb2_grpc

from users_service.calls import CallWrapping, rpc_log
from users_service.config import Settings
from users_service.convert import user_event
from users_service.database_url import SQLITE_PREFIX, sqlite_path
from users_service.drain import LameDuck
from users_service.events import Broadcaster
from users_service.health import SERVICE_NAME, DrainableHealthServicer, StoreMonitor
from users_service.identity_setup import AUTH_SERVICE_NAME, Identity
from users_service.janitor import purge_idempotency_keys
from users_service.limits import Admission, DiskReserve
from users_service.reflection import enable_reflection, load_descriptor_set
from users_service.reply_cache import ForgettingStore, ReplyCache
from users_service.servicer import UserService
from users_service.store import StoreUnavailable, UserChange, UserStore
from users_service.store.factory import build_store
from users_service.store.sqlite import SqliteUserStore
from users_service.telemetry import ServerMetrics, TracedStore
from users_service.unix_socket import refuse_if_taken

logger = logging.getLogger(__name__)

DEREGISTER_SECONDS = 0.5
# At most; the lame duck ends as soon as the clients have stopped sending (drain.py; measured:
# docs/operations.md, Drain).
LAME_DUCK_SECONDS = 2.0
STREAM_CUTOFF_MARGIN_SECONDS = 1.0
MAX_CONNECTION_AGE_MS = 30_000
HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class UsersServer:
    """The users gRPC server with its store, change feed, health and reflection.

    Example:
        >>> server = UsersServer(Settings(listen_address="127.0.0.1:0"))
        >>> port = await server.start()  # doctest: +SKIP
        >>> await server.drain()
    """

    def __init__(self, settings: Settings, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.feed = Broadcaster(max_subscribers=settings.limits.max_watchers)
        # Metrics only when served (docs/observability.md); spans only when tracing is set up.
        self.metrics = ServerMetrics() if settings.metrics_listen_address else None
        self.metrics_endpoint: MetricsEndpoint | None = None
        self._tracer = None if tracing is None else tracing.tracer
        # The store reports every committed change (with PostgreSQL: every replica's) to the feed.
        # A lost feed ends every open watch (UNAVAILABLE) rather than let it miss changes.
        self.store: UserStore = build_store(
            settings.database_url,
            self._publish,
            self._feed_state,
            pool_size=settings.database_pool_size,
            on_commit_batch=None if self.metrics is None else self.metrics.commit_batch.observe,
        )
        self.replies = _reply_cache(settings, self.store)
        if self.metrics is not None or self._tracer is not None:
            system = settings.database_url.partition(":")[0]
            self.store = TracedStore(self.store, system, self.metrics, self._tracer)
        if self.replies is not None:
            # Every write through this replica, the API's and the accounts', forgets the
            # user's reply before it is acknowledged.
            self.store = ForgettingStore(self.store, self.replies)
        # Tokens, passwords and the access check (docs/access.md).
        self.identity = Identity(settings.auth, self.store)
        self.health = DrainableHealthServicer()
        self.disk_reserve = _disk_reserve(settings)
        self._monitor = StoreMonitor(
            self.store, self.health, settings.store_probe_interval_seconds, self.disk_reserve
        )
        self._monitor_task: asyncio.Task[None] | None = None
        self._janitor_task: asyncio.Task[None] | None = None
        self._server: Any = None
        # The plaintext health-only server for Kubernetes' gRPC probe (health_listen_address).
        self._health_server: Any = None
        self.health_port: int | None = None
        self._gate = LameDuck()
        self._cutoff = asyncio.Event()
        self._drained = False

    def _publish(self, change: UserChange) -> None:
        if self.replies is not None:
            self.replies.changed(change)
        self.identity.changed(change)  # revocation, before anyone hears of it
        if self.feed.subscriber_count:  # an event is a message to build: only for listeners
            self.feed.publish(user_event(change))

    def _feed_state(self, lost: str | None) -> None:
        if self.replies is not None:
            self.replies.feed_state(lost)
        self.identity.feed_state(lost)
        if lost is None:
            self.feed.resume()
        else:
            self.feed.interrupt(lost)

    def _build(self) -> Any:
        limits = self.settings.limits
        server = grpc.aio.server(
            # Beyond this many calls at once, new ones end RESOURCE_EXHAUSTED at once.
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
            options=[
                # Sizes, connections, keepalive and its enforcement (limits.py).
                *limits.server_options(self.settings.max_message_bytes),
                ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share
                # A connection lives at most ~30 s (grpc adds jitter), then GOAWAY: clients
                # re-resolve the name and reconnect, so replicas added later get their share.
                # Calls and streams in flight get the age grace (limits.py) to finish.
                ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
            ],
        )
        # Every handler registered through `wrapped` gets the request id, the log line, the
        # error mapping, the access check, the limits on writes, metrics and spans, and (the
        # API's) the drain gate.
        wrapped = CallWrapping(
            self._gate,
            "/users.v1.",
            self.identity.access,
            admission=Admission(limits, self.disk_reserve),
            metrics=self.metrics,
            tracer=self._tracer,
            client_certificates=self.settings.tls_cert_file is not None
            and self.settings.tls_client_auth != "none",
        ).server(server)
        users_pb2_grpc.add_UserServiceServicer_to_server(
            UserService(
                self.store,
                self.feed,
                self._cutoff,
                max_import_rows=limits.max_import_rows,
                replies=self.replies,
            ),
            wrapped,
        )
        users_pb2_grpc.add_AuthServiceServicer_to_server(self.identity.service, wrapped)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, wrapped)
        if self.settings.reflection:
            names = (SERVICE_NAME, AUTH_SERVICE_NAME, HEALTH_SERVICE_NAME)
            enable_reflection(wrapped, names, load_descriptor_set())
        return server

    def _credentials(self) -> Any:
        """TLS server credentials from the settings' files (TlsError), or None for plaintext."""
        settings = self.settings
        if settings.tls_cert_file is None:
            return None
        files = TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)
        return server_credentials(files, ClientAuth(settings.tls_client_auth))

    async def _start_health_server(self) -> None:
        """The health service alone, plaintext, on its own port: for probes that speak no TLS."""
        self._health_server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
        address = self.settings.health_listen_address
        refuse_if_taken(address)
        self.health_port = int(self._health_server.add_insecure_port(address))
        await self._health_server.start()

    async def start(self) -> int:
        """Checks the TLS files, opens the store, probes it once, starts listening; returns the
        bound port."""
        credentials = self._credentials()  # first: a bad certificate stops the start at once
        await self.store.open()
        await self.identity.start()
        await self._monitor.check_once()
        self._server = self._build()
        address = self.settings.listen_address
        refuse_if_taken(address)
        if credentials is None:
            port = int(self._server.add_insecure_port(address))
        else:
            port = int(self._server.add_secure_port(address, credentials))
        await self._server.start()
        if self.settings.health_listen_address:
            await self._start_health_server()
        self._monitor_task = asyncio.create_task(self._monitor.run(), name="store-monitor")
        self._serve_metrics(port)
        ttl = self.settings.limits.idempotency_key_ttl_seconds
        self._janitor_task = asyncio.create_task(
            purge_idempotency_keys(self.store, ttl), name="idempotency-key-purge"
        )
        logger.info(
            "listening",
            extra={
                "address": self.settings.listen_address,
                "port": port,
                "transport": _transport(self.settings),
                "health_port": self.health_port,
                "metrics_port": None
                if self.metrics_endpoint is None
                else self.metrics_endpoint.port,
                "tracing": self._tracer is not None,
                "grpc_experiments": os.environ.get(EXPERIMENTS_VARIABLE),
                "cpu_scheduling": current_scheduling(),
            },
        )
        return port

    def _serve_metrics(self, port: int) -> None:
        """The metrics port (OSError if it cannot be bound), with the gauges read per scrape."""
        if self.metrics is None:
            return
        self.metrics.watch(
            subscribers=lambda: self.feed.subscriber_count,
            serving=lambda: (
                self.health.status(SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING
            ),
            draining=lambda: self._drained,
            port=lambda: port,
        )
        self.metrics_endpoint = serve(self.settings.metrics_listen_address, self.metrics.registry)

    async def drain(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, streams ended, in-flight calls finished (up to grace), closed."""
        if self._drained:
            return
        self._drained = True
        grace = self.settings.grace_period_seconds if grace is None else grace
        logger.info("draining", extra={"grace_seconds": grace})
        for task in (self._monitor_task, self._janitor_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # The change feed first: open watches end, new ones are sent elsewhere (UNAVAILABLE).
        self.feed.close()
        # NOT_SERVING, still answering calls: clients that health-check each backend (the
        # webapp's round_robin) and balancers take this replica out of rotation before a single
        # call is refused.
        await self.health.drain()
        try:
            if self._server is not None:
                await self._stop_serving(grace)
            if self._health_server is not None:
                await self._health_server.stop(0)
        finally:
            # Whatever the stop did, the store is closed and every line written.
            await self.store.close()
            self.identity.close()
            rpc_log.flush()
            if self.metrics_endpoint is not None:
                self.metrics_endpoint.close()
        logger.info("stopped")

    async def _stop_serving(self, grace: float) -> None:
        await asyncio.sleep(min(DEREGISTER_SECONDS, grace))
        # Lame duck (drain.py): new API calls held until none arrives, stop(grace) (GOAWAY),
        # then the held calls refused UNAVAILABLE; answered at once, they were cancelled.
        stopping = await self._gate.stop(self._server, grace, min(LAME_DUCK_SECONDS, grace))
        # Streams still running as the grace runs out would be cancelled (CANCELLED to the
        # client): a moment before, they end UNAVAILABLE, which clients know to retry.
        await asyncio.wait({stopping}, timeout=max(grace - STREAM_CUTOFF_MARGIN_SECONDS, 0))
        self._cutoff.set()
        await stopping


async def main(settings: Settings) -> int:
    """Runs the server until SIGTERM or SIGINT, then drains; returns the exit status."""
    tracing = configure("users-service")  # None unless an OTLP endpoint is set
    try:
        server = UsersServer(settings, tracing)
    except KeyFileError as error:
        logger.error("cannot start: %s", error)  # noqa: TRY400 - the message says it all
        return 1
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    try:
        await server.start()
    except (OSError, RuntimeError, ValueError, StoreUnavailable, TlsError) as error:
        logger.error("cannot start: %s", error)  # noqa: TRY400 - the message says it all
        await server.store.close()
        return 1
    # What start made (modules, descriptors, grpc's objects) lives as long as the process: out
    # of the collector's sight, a full collection walks only what calls made since. It walked
    # everything for 80 ms on the loop, triggered by pages of 1,000 users (docs/limits.md).
    gc.freeze()
    await stop.wait()
    await server.drain()
    if tracing is not None:
        tracing.shutdown()  # the spans still buffered go out
    return 0


def _reply_cache(settings: Settings, store: UserStore) -> ReplyCache | None:
    """GetUser's reply cache (None when set to 0 entries); over SQLite it also watches the file
    for other processes' commits."""
    if not settings.reply_cache_entries:
        return None
    outside = store.data_version if isinstance(store, SqliteUserStore) else None
    return ReplyCache(settings.reply_cache_entries, outside)


def _disk_reserve(settings: Settings) -> DiskReserve | None:
    """The free-space reserve of a SQLite database's filesystem (PostgreSQL keeps its own)."""
    reserve = settings.limits.disk_reserve_bytes
    if not settings.database_url.startswith(SQLITE_PREFIX) or not reserve:
        return None
    directory = sqlite_path(settings.database_url).parent
    return DiskReserve(directory, reserve)


def _transport(settings: Settings) -> str:
    if settings.tls_cert_file is None:
        return "plaintext"
    return "mtls" if settings.tls_client_auth == "require" else "tls"


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            rpc_log.flush()  # os._exit skips what a normal exit would still write
            os._exit(128 + signum)
        logger.info("%s received: draining", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
