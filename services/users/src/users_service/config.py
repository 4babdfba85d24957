"""The service's settings: read once from the environment, failing fast on a bad value."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from plumbing.runtime import SCHEDULING
from plumbing.settings import (
    ConfigError,
    boolean,
    count_between,
    grpc_listen_address,
    host_port,
    log_level,
    one_of,
    read,
    seconds_between,
)

from users_service.auth_config import AuthSettings
from users_service.database_url import check_url, redact
from users_service.limits import Limits
from users_service.reply_cache import DEFAULT_ENTRIES
from users_service.validation import username_problem

__all__ = ["ConfigError", "Settings", "check_access", "check_transport", "is_loopback"]

_seconds = seconds_between(0, 3600)
_interval = seconds_between(0.01, 3600)
_pool_size = count_between(1, 100, "connections")
_message_bytes = count_between(1024, 256 * 1024 * 1024, "bytes")
_scheduling = one_of(SCHEDULING, str.lower)
_cache_entries = count_between(0, 1_000_000, "entries")


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to start, from USERS_* environment variables.

    Example:
        >>> Settings.from_env({"USERS_GRACE_PERIOD_SECONDS": "3"}).grace_period_seconds
        3.0
    """

    listen_address: str = "[::]:50051"
    # Not in repr: a PostgreSQL URL may carry a password (log database_url.redact(url) instead).
    database_url: str = field(default="sqlite:///data/users.db", repr=False)
    # PostgreSQL only: connections per replica for calls (the probe and the feed have their own).
    database_pool_size: int = 8
    grace_period_seconds: float = 10.0
    log_level: str = "INFO"
    max_message_bytes: int = 4 * 1024 * 1024
    store_probe_interval_seconds: float = 2.0
    # The process's CPU scheduling policy (plumbing.runtime): batch, or normal to leave it as is.
    cpu_scheduling: str = "batch"
    # TLS (docs/security.md): the server's certificate and key, the CA that signs client
    # certificates, and whether clients must present one (none or require). Without a
    # certificate the server speaks plaintext, which check_transport allows on loopback only
    # unless allow_plaintext says so.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_client_auth: str = "none"
    allow_plaintext: bool = False
    # A second, plaintext port serving the health service alone, for Kubernetes' gRPC probe
    # (which speaks no TLS); "" for none.
    health_listen_address: str = ""
    # Prometheus metrics over plain HTTP on a port of their own (docs/observability.md); "" for
    # none. Not the API port: only the scraper should reach it (compose network, NetworkPolicy).
    metrics_listen_address: str = ""
    # Identity and access (docs/access.md).
    auth: AuthSettings = field(default_factory=AuthSettings)
    # Sizes, connections, streams, rates, disk reserve (limits.py, docs/limits.md).
    limits: Limits = field(default_factory=Limits)
    # Server reflection (grpcurl's `list`/`describe`): false to serve without it.
    reflection: bool = True
    # GetUser's serialized replies kept by id (reply_cache.py, docs/operations.md); 0: none.
    reply_cache_entries: int = DEFAULT_ENTRIES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Reads the settings from `env` (default: os.environ); ConfigError on a bad value."""
        env = os.environ if env is None else env
        if env.get("USERS_DATABASE_PATH", "").strip():
            raise ConfigError(
                "USERS_DATABASE_PATH is no longer read: set USERS_DATABASE_URL instead"
                " (sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://...)"
            )
        return cls(
            listen_address=read(
                env, "USERS_LISTEN_ADDRESS", cls.listen_address, grpc_listen_address
            ),
            # Never echo the raw URL: it may carry a password.
            database_url=read(env, "USERS_DATABASE_URL", cls.database_url, check_url, shown=redact),
            database_pool_size=read(
                env, "USERS_DATABASE_POOL_SIZE", cls.database_pool_size, _pool_size
            ),
            grace_period_seconds=read(
                env, "USERS_GRACE_PERIOD_SECONDS", cls.grace_period_seconds, _seconds
            ),
            log_level=read(env, "USERS_LOG_LEVEL", cls.log_level, log_level),
            max_message_bytes=read(
                env, "USERS_MAX_MESSAGE_BYTES", cls.max_message_bytes, _message_bytes
            ),
            store_probe_interval_seconds=read(
                env,
                "USERS_STORE_PROBE_INTERVAL_SECONDS",
                cls.store_probe_interval_seconds,
                _interval,
            ),
            cpu_scheduling=read(env, "USERS_CPU_SCHEDULING", cls.cpu_scheduling, _scheduling),
            tls_cert_file=read(env, "USERS_TLS_CERT_FILE", cls.tls_cert_file, Path),
            tls_key_file=read(env, "USERS_TLS_KEY_FILE", cls.tls_key_file, Path),
            tls_ca_file=read(env, "USERS_TLS_CA_FILE", cls.tls_ca_file, Path),
            tls_client_auth=read(env, "USERS_TLS_CLIENT_AUTH", cls.tls_client_auth, _client_auth),
            allow_plaintext=read(env, "USERS_ALLOW_PLAINTEXT", cls.allow_plaintext, boolean),
            health_listen_address=read(
                env, "USERS_HEALTH_LISTEN_ADDRESS", cls.health_listen_address, grpc_listen_address
            ),
            metrics_listen_address=read(
                env, "USERS_METRICS_LISTEN_ADDRESS", cls.metrics_listen_address, host_port
            ),
            auth=AuthSettings.from_env(env),
            limits=Limits.from_env(env),
            reflection=read(env, "USERS_REFLECTION", cls.reflection, boolean),
            reply_cache_entries=read(
                env, "USERS_REPLY_CACHE_ENTRIES", cls.reply_cache_entries, _cache_entries
            ),
        )


def check_transport(settings: Settings) -> None:
    """ConfigError unless the TLS settings hang together and plaintext is allowed where used."""
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ConfigError("USERS_TLS_CERT_FILE and USERS_TLS_KEY_FILE go together: set both")
    if settings.tls_client_auth == "require" and settings.tls_ca_file is None:
        raise ConfigError("USERS_TLS_CLIENT_AUTH=require needs USERS_TLS_CA_FILE")
    if settings.tls_client_auth != "none" and settings.tls_cert_file is None:
        raise ConfigError("USERS_TLS_CLIENT_AUTH needs TLS: set USERS_TLS_CERT_FILE")
    if (
        settings.tls_cert_file is None
        and not settings.allow_plaintext
        and not is_loopback(settings.listen_address)
    ):
        raise ConfigError(
            f"USERS_LISTEN_ADDRESS={settings.listen_address!r} is not a loopback address and"
            " no certificate is set: set USERS_TLS_CERT_FILE and USERS_TLS_KEY_FILE, or"
            " USERS_ALLOW_PLAINTEXT=true to serve plaintext anyway"
        )


def check_access(settings: Settings) -> None:
    """ConfigError unless the access settings hang together: enforcement is turned off only on
    a loopback address, and a first admin has both a username and a password."""
    auth = settings.auth
    if not auth.enforced and not is_loopback(settings.listen_address):
        raise ConfigError(
            f"USERS_AUTH_ENFORCED=false serves every call to anyone: refused on"
            f" USERS_LISTEN_ADDRESS={settings.listen_address!r}, which is not a loopback address"
        )
    if bool(auth.admin_username) != bool(auth.admin_password):
        raise ConfigError("USERS_ADMIN_USERNAME and USERS_ADMIN_PASSWORD go together: set both")
    problem = username_problem(auth.admin_username) if auth.admin_username else None
    if problem is not None:
        raise ConfigError(f"USERS_ADMIN_USERNAME={auth.admin_username!r} {problem}")


def is_loopback(address: str) -> bool:
    """True for localhost:port, 127.x.x.x:port, [::1]:port and UNIX sockets (unix:...), which
    only this machine reaches (and the socket file's permissions allow)."""
    if address.startswith("unix:"):
        return True
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _client_auth(raw: str) -> str:
    value = raw.lower()
    if value == "optional":
        # plumbing.tls.ClientAuth says why.
        raise ValueError(
            "grpcio's server cannot ask for a client certificate without requiring one:"
            " expected none or require"
        )
    if value not in ("none", "require"):
        raise ValueError("expected none or require")
    return value
