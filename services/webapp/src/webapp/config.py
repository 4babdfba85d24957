"""Webapp settings: read once from WEBAPP_* environment variables, failing fast on a bad value."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from plumbing.runtime import SCHEDULING
from plumbing.settings import (
    ConfigError,
    as_is,
    boolean,
    host_port,
    log_level,
    one_of,
    port,
    positive_seconds,
    read,
)

from webapp.hosts import DEFAULT_ALLOWED_HOSTS, parse_allowed_hosts
from webapp.limits import Limits

__all__ = ["ConfigError", "Settings"]

MIN_SECRET_KEY_LENGTH = 32
_scheduling = one_of(SCHEDULING, str.lower)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the webapp reads from its environment.

    >>> Settings.from_env({"WEBAPP_SECRET_KEY": "x" * 32}).users_target
    'localhost:50051'
    """

    secret_key: str
    users_target: str = "localhost:50051"
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_timeout_seconds: float = 5.0
    stream_timeout_seconds: float = 3600.0
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    # The process's CPU scheduling policy (plumbing.runtime): batch, or normal to leave it as it is.
    cpu_scheduling: str = "batch"
    # The channel to the users service over TLS (docs/security.md): the CA that signs its
    # certificate, and the client certificate and key to present (mTLS), re-read when they
    # change. Without a CA file the channel is plaintext.
    users_tls_ca_file: Path | None = None
    users_tls_cert_file: Path | None = None
    users_tls_key_file: Path | None = None
    # HTTPS served by uvicorn itself (both, or neither): Secure __Host- cookies and HSTS then.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Prometheus metrics over plain HTTP on a port of their own (docs/observability.md); "" for
    # none. Not the HTTP port: only the scraper should reach it (compose network, NetworkPolicy).
    metrics_listen_address: str = ""
    # The Host names requests may carry (any port): others are refused (hosts.py).
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    # Request sizes and timing, concurrency, event streams, write rates (limits.py).
    limits: Limits = dataclasses.field(default_factory=Limits)
    # /docs and /openapi.json: false to serve without them.
    docs: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from `env` (default: os.environ); ConfigError on a bad value."""
        env = os.environ if env is None else env
        secret = env.get("WEBAPP_SECRET_KEY", "")
        if len(secret) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                f"WEBAPP_SECRET_KEY is required and must be at least {MIN_SECRET_KEY_LENGTH} "
                "characters (it signs the CSRF tokens); generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return cls(
            secret_key=secret,
            users_target=read(env, "WEBAPP_USERS_TARGET", cls.users_target, as_is),
            host=read(env, "WEBAPP_HOST", cls.host, as_is),
            port=read(env, "WEBAPP_PORT", cls.port, port),
            grpc_timeout_seconds=read(
                env, "WEBAPP_GRPC_TIMEOUT_SECONDS", cls.grpc_timeout_seconds, positive_seconds
            ),
            stream_timeout_seconds=read(
                env, "WEBAPP_STREAM_TIMEOUT_SECONDS", cls.stream_timeout_seconds, positive_seconds
            ),
            shutdown_grace_seconds=read(
                env, "WEBAPP_SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds, positive_seconds
            ),
            log_level=read(env, "WEBAPP_LOG_LEVEL", cls.log_level, log_level),
            cpu_scheduling=read(env, "WEBAPP_CPU_SCHEDULING", cls.cpu_scheduling, _scheduling),
            metrics_listen_address=read(
                env, "WEBAPP_METRICS_LISTEN_ADDRESS", cls.metrics_listen_address, host_port
            ),
            allowed_hosts=read(env, "WEBAPP_ALLOWED_HOSTS", cls.allowed_hosts, parse_allowed_hosts),
            limits=Limits.from_env(env),
            docs=read(env, "WEBAPP_DOCS", cls.docs, boolean),
            **_tls(env),
        )


def _tls(env: Mapping[str, str]) -> dict[str, Path | None]:
    """The TLS file settings, checked to come in pairs (the files are read at start)."""
    paths: dict[str, Path | None] = {
        "users_tls_ca_file": read(env, "WEBAPP_USERS_TLS_CA_FILE", None, Path),
        "users_tls_cert_file": read(env, "WEBAPP_USERS_TLS_CERT_FILE", None, Path),
        "users_tls_key_file": read(env, "WEBAPP_USERS_TLS_KEY_FILE", None, Path),
        "tls_cert_file": read(env, "WEBAPP_TLS_CERT_FILE", None, Path),
        "tls_key_file": read(env, "WEBAPP_TLS_KEY_FILE", None, Path),
    }
    for prefix in ("users_tls", "tls"):
        cert, key = paths[f"{prefix}_cert_file"], paths[f"{prefix}_key_file"]
        if (cert is None) != (key is None):
            name = f"WEBAPP_{prefix.upper()}"
            raise ConfigError(f"{name}_CERT_FILE and {name}_KEY_FILE go together: set both")
    if paths["users_tls_cert_file"] is not None and paths["users_tls_ca_file"] is None:
        raise ConfigError("WEBAPP_USERS_TLS_CERT_FILE needs WEBAPP_USERS_TLS_CA_FILE")
    return paths
