"""The server's limits: request size, connections, streams, keepalive, rates and the disk reserve.

Every figure is a setting (USERS_*); docs/limits.md says what each protects against and what a
client sees beyond it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from plumbing.rate_limits import Rate, RateLimiter
from plumbing.settings import count_between, read, seconds_between

from users_service.caller import Caller

_bytes = count_between(1024, 256 * 1024 * 1024, "bytes")
_count = count_between(1, 1_000_000, "")
_rate = seconds_between(0, 1_000_000)  # 0 = no limit
_seconds = seconds_between(0.1, 86_400)
_reserve = count_between(0, 1 << 40, "bytes")


class RateLimited(Exception):  # noqa: N818 - reads as the condition it reports
    """The caller spent its quota; `retry_after` whole seconds until it may try again."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"{what}: rate limit reached, retry after {retry_after} s")
        self.retry_after = retry_after


class StorageFull(Exception):  # noqa: N818 - reads as the condition it reports
    """The store's disk is down to its reserve: writes are refused, reads still served."""


@dataclass(frozen=True)
class Limits:
    """The limits, from USERS_* variables (Limits.from_env).

    Example:
        >>> Limits.from_env({"USERS_MAX_WATCHERS": "10"}).max_watchers
        10
    """

    # A request message's size, checked by grpc before it is parsed (a GetUsers of 1,000 ids and
    # 1,000 usernames is ~45 KB); responses keep Settings.max_message_bytes.
    max_request_bytes: int = 64 * 1024
    # Calls in flight at once, beyond which new ones end RESOURCE_EXHAUSTED.
    max_concurrent_rpcs: int = 1000
    # As many as the server takes calls: grpcio clients do not retry a stream the server refused
    # (RST_STREAM REFUSED_STREAM) because they opened it before our SETTINGS arrived, so a cap
    # below what a client bursts on a new connection costs it UNAVAILABLE (seen at 100 with
    # 256 and 1,000 concurrent calls on one channel).
    max_streams_per_connection: int = 1000
    max_connections: int = 1000
    # Server keepalive: a ping after this much quiet, the connection closed when no answer comes
    # within the timeout (a vanished or stopped client, its streams and subscriptions with it).
    keepalive_seconds: float = 20.0
    keepalive_timeout_seconds: float = 10.0
    max_connection_idle_seconds: float = 300.0
    # After a connection's age (server.MAX_CONNECTION_AGE_MS) its calls get this long to finish.
    max_connection_age_grace_seconds: float = 300.0
    max_watchers: int = 100
    # Per caller (caller_key: the verified identity, else the address): writes (create, update,
    # delete, sign-up) and imports. The webapp passes each browser's token on, so a signed-in
    # user is counted as itself; the webapp also limits each client address
    # (WEBAPP_WRITES_PER_SECOND).
    writes_per_second: float = 500.0
    write_burst: int = 1000
    imports_per_minute: float = 60.0
    import_burst: int = 10
    max_import_rows: int = 100_000
    # Writes are refused while the database's filesystem has less than this free (SQLite).
    disk_reserve_bytes: int = 64 * 1024 * 1024
    # A create's request_id replays it for this long, then it is purged (janitor.py).
    idempotency_key_ttl_seconds: float = 86_400.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        """Reads the USERS_* limit variables; ConfigError on a bad value."""
        values: dict[str, Any] = {}
        for name, parse in _PARSERS.items():
            values[name] = read(env, f"USERS_{name.upper()}", getattr(cls, name), parse)
        return cls(**values)

    def server_options(self, max_message_bytes: int) -> list[tuple[str, int]]:
        """The grpc server's channel arguments for these limits (docs/limits.md)."""
        ms = 1000
        return [
            ("grpc.max_receive_message_length", self.max_request_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_concurrent_streams", self.max_streams_per_connection),
            ("grpc.max_allowed_incoming_connections", self.max_connections),
            ("grpc.keepalive_time_ms", int(self.keepalive_seconds * ms)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_seconds * ms)),
            # grpc 1.85 waits for a keepalive ping's ack this long (grpc's internal
            # GRPC_ARG_PING_TIMEOUT_MS, 60 s by default), not keepalive_timeout_ms: measured.
            ("grpc.http2.ping_timeout_ms", int(self.keepalive_timeout_seconds * ms)),
            # Keep pinging a quiet stream (a watch with no events): grpc stops after 2 by default.
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.max_connection_idle_ms", int(self.max_connection_idle_seconds * ms)),
            ("grpc.max_connection_age_grace_ms", int(self.max_connection_age_grace_seconds * ms)),
            # Enforcement: a client pinging more often than every 10 s without calls in flight
            # earns a strike; after 2, a GOAWAY ("too_many_pings").
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.keepalive_permit_without_calls", 1),
            # Headers beyond this are refused (grpc's default soft limit is 8 KiB).
            ("grpc.max_metadata_size", 16 * 1024),
            # A TLS handshake that has not completed in this long is dropped.
            ("grpc.server_handshake_timeout_ms", 10_000),
        ]


_PARSERS: dict[str, Any] = {
    "max_request_bytes": _bytes,
    "max_concurrent_rpcs": _count,
    "max_streams_per_connection": _count,
    "max_connections": _count,
    "keepalive_seconds": _seconds,
    "keepalive_timeout_seconds": _seconds,
    "max_connection_idle_seconds": _seconds,
    "max_connection_age_grace_seconds": _seconds,
    "max_watchers": _count,
    "writes_per_second": _rate,
    "write_burst": _count,
    "imports_per_minute": _rate,
    "import_burst": _count,
    "max_import_rows": _count,
    "disk_reserve_bytes": _reserve,
    "idempotency_key_ttl_seconds": seconds_between(1, 365 * 86_400),
}


def caller_key(context: grpc.aio.ServicerContext, caller: Caller | None) -> str:
    """Who a quota is counted against: the verified identity (its issuer and subject), else
    (an anonymous call: SignUp) the peer's address without its port."""
    if caller is not None:
        return f"{caller.issuer} {caller.subject}"
    peer = str(context.peer())  # "ipv4:10.0.0.7:53422", "ipv6:[::1]:53422", "unix:..."
    return peer.rpartition(":")[0] or peer


class DiskReserve:
    """Whether the filesystem holding `path` still has more than `reserve` bytes free.

    statvfs at most once per `interval` seconds: cheap enough for every write.
    """

    def __init__(self, path: Path, reserve: int, interval: float = 0.5) -> None:
        self._path = path
        self._reserve = reserve
        self._interval = interval
        self._checked = -interval
        self._low = False

    def low(self, *, fresh: bool = False) -> bool:
        """True while the free space is at or below the reserve (`fresh`: asked now)."""
        now = time.monotonic()
        if self._reserve and (fresh or now - self._checked >= self._interval):
            self._checked = now
            self._low = self.free_bytes() <= self._reserve
        return self._low

    def free_bytes(self) -> int:
        """Bytes free for an unprivileged writer on the filesystem holding the database."""
        try:
            stats = os.statvfs(self._path)
        except OSError:  # no directory yet, or gone: the store's own probe says what is wrong
            return self._reserve + 1
        return stats.f_bavail * stats.f_frsize


WRITES = frozenset({"CreateUser", "UpdateUser", "DeleteUser", "SignUp"})
IMPORTS = frozenset({"ImportUsers"})


class Admission:
    """The checks a write or an import passes before its handler runs: the caller's rate, and
    the disk reserve.

    Example:
        >>> admission = Admission(Limits(), DiskReserve(Path("/data"), 64 << 20))
        >>> check = admission.for_method("/users.v1.UserService/CreateUser")
        >>> check(context, caller)  # raises RateLimited or StorageFull  # doctest: +SKIP
    """

    def __init__(self, limits: Limits, reserve: DiskReserve | None) -> None:
        self._reserve = reserve
        self._writes = RateLimiter(Rate(limits.writes_per_second, limits.write_burst))
        self._imports = RateLimiter(Rate(limits.imports_per_minute / 60, limits.import_burst))

    def for_method(self, method: str) -> Any:
        """The check for `method` (a callable taking the call's context and its verified caller,
        or None), or None for a method that writes nothing."""
        name = method.rpartition("/")[2]
        if name in WRITES:
            return partial(self._admit, self._writes, "writes")
        if name in IMPORTS:
            return partial(self._admit, self._imports, "imports")
        return None

    def _admit(
        self,
        limiter: RateLimiter,
        what: str,
        context: grpc.aio.ServicerContext,
        caller: Caller | None,
    ) -> None:
        wait = limiter.take(caller_key(context, caller))
        if wait:
            raise RateLimited(what, wait)
        if self._reserve is not None and self._reserve.low():
            raise StorageFull("the store's disk is nearly full: writes are refused, reads work")
