"""UNIX socket addresses: grpc unlinks whatever socket file is at the path before it binds, even
one another server is listening on; a second server would silently take the first one's socket.
`refuse_if_taken` stops that, and leaves a stale socket (nothing listening) for grpc to replace."""

from __future__ import annotations

import socket
import stat
from pathlib import Path


def socket_path(address: str) -> Path | None:
    """The file of a unix: address (unix:///abs/path or unix:rel/path); None for host:port."""
    if not address.startswith("unix:"):
        return None
    return Path(address.removeprefix("unix://") if address.startswith("unix://") else address[5:])


def refuse_if_taken(address: str) -> None:
    """OSError if `address` is a UNIX socket a live server listens on."""
    path = socket_path(address)
    if path is None:
        return
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket: remove it or choose another path")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return  # stale: nobody listens; grpc replaces it
    raise OSError(f"{path}: another server is listening on this socket")
