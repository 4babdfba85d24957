"""Which Host headers the webapp answers: the names it is configured to serve, nothing else.

A page on any site can make a browser send requests to a name the attacker controls and has
pointed at 127.0.0.1 (DNS rebinding): those requests carry the attacker's name in Host, and are
refused here before any route runs. Probes (/healthz, /readyz) are exempt: Kubernetes' kubelet
sends the pod's address as Host, and they reveal nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# What `make up`, `make run-webapp` and the tests reach the webapp as.
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
# A DNS name or IPv4 address, optionally as `*.suffix`; or an IPv6 address in brackets.
_NAME = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9._-]*[a-z0-9])?|\[[0-9a-f:.]+\]")


def parse_allowed_hosts(raw: str) -> tuple[str, ...]:
    """`a.example,*.example.org,localhost` -> the names; ValueError on an empty or bad entry."""
    names = tuple(part.strip().lower() for part in raw.split(","))
    for name in names:
        if name != "*" and not _NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a host name: use names like example.com, *.example.com, "
                "127.0.0.1 or [::1], separated by commas (no ports, no schemes)"
            )
    return names


class HostCheck:
    """Answers whether a raw Host header names an allowed host (any port).

    >>> check = HostCheck(["localhost", "*.example.com"])
    >>> check.allows(b"localhost:8000"), check.allows(b"a.example.com"), check.allows(b"evil.test")
    (True, True, False)
    """

    def __init__(self, names: Iterable[str]) -> None:
        names = list(names)
        self.any = "*" in names
        self._exact = frozenset(n.encode() for n in names if not n.startswith("*"))
        self._suffixes = tuple(n[1:].encode() for n in names if n.startswith("*."))

    def allows(self, host: bytes | None) -> bool:
        """Whether `host` (the raw header value, with or without a port) is served."""
        if self.any:
            return True
        if not host:
            return False
        name = host.lower()
        if name[-1:] != b"]":  # "[::1]" has colons but no port; "[::1]:8000" and "a:80" do
            name = name.rpartition(b":")[0] or name
        return name in self._exact or (bool(self._suffixes) and name.endswith(self._suffixes))
