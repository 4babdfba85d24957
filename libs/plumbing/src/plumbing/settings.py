"""Settings from environment variables: each read once and checked, a bad one named in the error."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

# Hand-written rather than pydantic-settings, which would add pydantic's import and wheels to the
# users service (it has none) for a dozen variables: measured in the commit that made this choice.

_T = TypeVar("_T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_PORT = re.compile(r"[0-9]{1,5}")


class ConfigError(ValueError):
    """An environment variable holds a value the process cannot use; the message names it.

    Example:
        >>> read({"PORT": "http"}, "PORT", 8000, port)
        Traceback (most recent call last):
        ...
        plumbing.settings.ConfigError: PORT='http' is not valid: expected a port, 0-65535
    """


def read(
    env: Mapping[str, str],
    name: str,
    default: _T,
    parse: Callable[[str], _T],
    *,
    shown: Callable[[str], str] = str,
) -> _T:
    """`env[name]` through `parse`; `default` if unset or blank; ConfigError if `parse` refuses it.

    `parse` raises ValueError with what it expected. `shown` is how the raw value appears in the
    error: pass a redactor for a value that may hold a secret.

    Example:
        >>> read({"GRACE": " 2.5 "}, "GRACE", 10.0, seconds_between(0, 60))
        2.5
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as error:
        raise ConfigError(f"{name}={shown(raw)!r} is not valid: {error}") from None


def as_is(raw: str) -> str:
    """Any non-blank string."""
    return raw


def port(raw: str) -> int:
    """A TCP port number, 0-65535 (0: any free port)."""
    value = _int(raw, "a port, 0-65535")
    if not 0 <= value <= 65535:
        raise ValueError("expected a port, 0-65535")
    return value


def host_port(raw: str) -> str:
    """host:port, the host a name, an IPv4 address or a bracketed IPv6 one."""
    host, sep, number = raw.rpartition(":")
    if not sep or not host or not _PORT.fullmatch(number) or int(number) > 65535:
        raise ValueError("expected host:port, e.g. [::]:50051 or 127.0.0.1:50051")
    return raw


def grpc_listen_address(raw: str) -> str:
    """Where a gRPC server listens: host:port, or a UNIX socket as unix:///absolute/path or
    unix:relative/path (grpc's forms)."""
    if raw.startswith("unix:"):
        path = raw.removeprefix("unix://") if raw.startswith("unix://") else raw[5:]
        if not path or (raw.startswith("unix://") and not path.startswith("/")):
            raise ValueError("expected unix:///absolute/path.sock or unix:relative/path.sock")
        return raw
    try:
        return host_port(raw)
    except ValueError:
        raise ValueError(
            "expected host:port (e.g. [::]:50051 or 127.0.0.1:50051) or unix:///path.sock"
        ) from None


def seconds_between(low: float, high: float) -> Callable[[str], float]:
    """A parser of a number of seconds from `low` to `high`, both included."""

    def parse(raw: str) -> float:
        value = _float(raw, "a number of seconds")
        if not low <= value <= high:
            raise ValueError(f"expected a number of seconds between {low:g} and {high:g}")
        return value

    return parse


def positive_seconds(raw: str) -> float:
    """A number of seconds above zero."""
    value = _float(raw, "a positive number of seconds")
    if not 0 < value < math.inf:
        raise ValueError("expected a positive number of seconds")
    return value


def count_between(low: int, high: int, unit: str) -> Callable[[str], int]:
    """A parser of a whole number of `unit` (e.g. "connections") from `low` to `high`."""

    def parse(raw: str) -> int:
        value = _int(raw, f"a number of {unit}")
        if not low <= value <= high:
            raise ValueError(f"expected a number of {unit} between {low} and {high}")
        return value

    return parse


def one_of(choices: tuple[str, ...], normalize: Callable[[str], str]) -> Callable[[str], str]:
    """A parser of one of `choices`, compared after `normalize` (str.upper, str.lower)."""

    def parse(raw: str) -> str:
        value = normalize(raw)
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}  # the stdlib's own aliases


def log_level(raw: str) -> str:
    """A logging level name, any case: DEBUG, INFO, WARNING (WARN), ERROR, CRITICAL (FATAL)."""
    level = raw.upper()
    level = _LEVEL_ALIASES.get(level, level)
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return level


def boolean(raw: str) -> bool:
    """true/false, 1/0, yes/no (any case)."""
    value = raw.lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("expected true or false")
    return value in ("true", "1", "yes")


def _int(raw: str, expected: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"expected {expected}") from None


def _float(raw: str, expected: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"expected {expected}") from None
