"""Free TCP ports on loopback, for servers a test starts on a port it chose."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on `host` that nothing listens on right now.

    Free when asked, not reserved: the caller's server binds it a moment later.

    Example:
        >>> port = free_port()
        >>> 0 < port < 65536
        True
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
