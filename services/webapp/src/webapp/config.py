"""Webapp settings: read once from WEBAPP_* environment variables, failing fast on a bad value."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from webapp.runtime import SCHEDULING

T = TypeVar("T")

MIN_SECRET_KEY_LENGTH = 32


class ConfigError(ValueError):
    """A WEBAPP_* variable is missing or malformed; the message names it."""


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
    # The process's CPU scheduling policy (runtime.py): batch, or normal to leave it as it is.
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
            users_target=_get(env, "WEBAPP_USERS_TARGET", str, cls.users_target),
            host=_get(env, "WEBAPP_HOST", str, cls.host),
            port=_get(env, "WEBAPP_PORT", _port, cls.port),
            grpc_timeout_seconds=_get(
                env, "WEBAPP_GRPC_TIMEOUT_SECONDS", _positive, cls.grpc_timeout_seconds
            ),
            stream_timeout_seconds=_get(
                env, "WEBAPP_STREAM_TIMEOUT_SECONDS", _positive, cls.stream_timeout_seconds
            ),
            shutdown_grace_seconds=_get(
                env, "WEBAPP_SHUTDOWN_GRACE_SECONDS", _positive, cls.shutdown_grace_seconds
            ),
            log_level=_get(env, "WEBAPP_LOG_LEVEL", _log_level, cls.log_level),
            cpu_scheduling=_get(env, "WEBAPP_CPU_SCHEDULING", _scheduling, cls.cpu_scheduling),
            **_tls(env),
        )


def _tls(env: Mapping[str, str]) -> dict[str, Path | None]:
    """The TLS file settings, checked to come in pairs (the files are read at start)."""
    paths: dict[str, Path | None] = {
        "users_tls_ca_file": _get(env, "WEBAPP_USERS_TLS_CA_FILE", Path, None),
        "users_tls_cert_file": _get(env, "WEBAPP_USERS_TLS_CERT_FILE", Path, None),
        "users_tls_key_file": _get(env, "WEBAPP_USERS_TLS_KEY_FILE", Path, None),
        "tls_cert_file": _get(env, "WEBAPP_TLS_CERT_FILE", Path, None),
        "tls_key_file": _get(env, "WEBAPP_TLS_KEY_FILE", Path, None),
    }
    for prefix in ("users_tls", "tls"):
        cert, key = paths[f"{prefix}_cert_file"], paths[f"{prefix}_key_file"]
        if (cert is None) != (key is None):
            name = f"WEBAPP_{prefix.upper()}"
            raise ConfigError(f"{name}_CERT_FILE and {name}_KEY_FILE go together: set both")
    if paths["users_tls_cert_file"] is not None and paths["users_tls_ca_file"] is None:
        raise ConfigError("WEBAPP_USERS_TLS_CERT_FILE needs WEBAPP_USERS_TLS_CA_FILE")
    return paths


def _get(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is invalid: {exc}") from exc


def _port(raw: str) -> int:
    port = int(raw)
    if not 0 <= port <= 65535:
        raise ValueError("a port is 0-65535")
    return port


def _positive(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _scheduling(raw: str) -> str:
    policy = raw.lower()
    if policy not in SCHEDULING:
        raise ValueError(f"must be one of {', '.join(SCHEDULING)}")
    return policy


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level
