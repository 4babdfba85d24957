"""The one long-lived gRPC channel to the users service, and per-call deadlines and metadata."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc
from plumbing.tls import ReloadingChannel, TlsFiles
from users.v1 import users_pb2_grpc

from webapp.config import Settings
from webapp.context import DeadlineSpentError, remaining_budget, request_id_var
from webapp.reads import UserReads

logger = logging.getLogger(__name__)

USERS_SERVICE = "users.v1.UserService"

# Retry UNAVAILABLE only where a second attempt does no harm: reads, the watch feed, health checks,
# and CreateUser, which the webapp always sends with an idempotency key (request_id). UpdateUser
# and DeleteUser are not retried (a lost reply after a commit would become a spurious 412/404),
# nor is ImportUsers (its request stream cannot be replayed).
_RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.3s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_RETRIED = [
    "GetUser",
    "BatchGetUsers",
    "ListUsers",
    "GetUsers",
    "LookupUsers",
    "WatchUsers",
    "CreateUser",
]
SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": USERS_SERVICE, "method": m} for m in _RETRIED]
            + [{"service": "grpc.health.v1.Health", "method": "Check"}],
            "retryPolicy": _RETRY_POLICY,
        }
    ],
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    # Several replicas behind one DNS name (compose --scale, a headless Kubernetes Service): a
    # connection to every address, calls spread round robin over those that are ready, and a
    # replica leaves the rotation as soon as it reports NOT_SERVING on the health service
    # (draining, or its database is gone), before it refuses a single call.
    "loadBalancingConfig": [{"round_robin": {}}],
    "healthCheckConfig": {"serviceName": USERS_SERVICE},
}

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
    # A dead backend must not make callers wait: reconnect attempts stay at most 1 s apart, so the
    # channel notices a restarted service quickly, and calls (wait_for_ready=False) fail at once
    # with UNAVAILABLE while it is down.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # A restarted container may come back on another address: re-resolve the name promptly.
    ("grpc.dns_min_time_between_resolutions_ms", 1000),
    # Keepalive pings find a replica that vanished without closing its connections (a killed
    # node, a cut network) within ~25 s. The users server permits pings every 10 s (server.py);
    # its max connection age makes clients re-resolve the name, so new replicas get traffic.
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.primary_user_agent", "userstack-webapp"),
]


def users_tls_files(settings: Settings) -> TlsFiles | None:
    """The channel's TLS files (CA, and the client certificate for mTLS); None: plaintext."""
    if settings.users_tls_ca_file is None:
        return None
    return TlsFiles(
        settings.users_tls_cert_file, settings.users_tls_key_file, settings.users_tls_ca_file
    )


class UsersClient:
    """Owns the channel and the stubs; opened at app start-up and closed at shutdown.

    >>> client = UsersClient(Settings(secret_key="x" * 32))  # doctest: +SKIP
    >>> await client.users.GetUser(req, **client.unary())  # doctest: +SKIP
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # TLS when a CA is set; a renewed client certificate moves new calls to a new channel.
        files = None
        if settings.users_tls_ca_file is not None:
            files = TlsFiles(
                settings.users_tls_cert_file,
                settings.users_tls_key_file,
                settings.users_tls_ca_file,
            )
        self._channels = ReloadingChannel(settings.users_target, files, CHANNEL_OPTIONS)
        self._use(self._channels.channel)
        # Set when the server starts draining: long-lived streams (SSE) end on it.
        self.stopping = asyncio.Event()

    def _use(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.users = users_pb2_grpc.UserServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)
        # Reads by id, coalesced (reads.py): the JSON API's and the UI's.
        self.reads = UserReads(self.users, self.settings.grpc_timeout_seconds)

    def start(self) -> None:
        """Starts watching the TLS files (on the running loop)."""
        self._channels.start(self._use)

    def unary(self) -> dict[str, Any]:
        """Call options for a unary RPC: deadline within the request's budget, request id."""
        return self.options(self.settings.grpc_timeout_seconds)

    def streaming(self) -> dict[str, Any]:
        """Call options for a long stream (GetUsers, ImportUsers, WatchUsers)."""
        return self.options(self.settings.stream_timeout_seconds)

    def options(self, limit: float) -> dict[str, Any]:
        """Call options: a deadline of `limit`, or less when the request has less left."""
        timeout = remaining_budget(limit)
        if timeout <= 0:
            raise DeadlineSpentError("the request's time budget is spent")
        metadata = (("x-request-id", request_id_var.get()),)
        return {"timeout": timeout, "metadata": metadata, "wait_for_ready": False}

    async def close(self) -> None:
        """Closes the channel, cancelling whatever calls are still open."""
        self.stopping.set()
        await self._channels.close(grace=1.0)
        logger.info("users channel to %s closed", self.settings.users_target)
