"""The gRPC channel to the users service (retries, balancing, keepalive), and per-call options."""

from __future__ import annotations

import json
from typing import Any

from plumbing.request_ids import outgoing_metadata
from plumbing.tls import TlsFiles

from webapp import caller
from webapp.config import Settings
from webapp.deadlines import DeadlineSpentError, remaining_budget

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
    "ExportUsers",
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


def call_options(limit: float, *, anonymous: bool = False) -> dict[str, Any]:
    """Call options: a deadline of `limit`, or less when the request has less left; request id;
    the caller's credentials, unless the call is made `anonymous` (sign-in, keys, health)."""
    timeout = remaining_budget(limit)
    if timeout <= 0:
        raise DeadlineSpentError("the request's time budget is spent")
    metadata = outgoing_metadata()
    if not anonymous:
        metadata += caller.outgoing_metadata()
    return {"timeout": timeout, "metadata": metadata, "wait_for_ready": False}
