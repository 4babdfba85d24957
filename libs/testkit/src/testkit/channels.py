"""Client channels for tests: plaintext, or TLS with the credentials given."""

from __future__ import annotations

from typing import Any

import grpc


def aio_channel(target: str, credentials: Any | None = None) -> grpc.aio.Channel:
    """A grpc.aio channel to `target`: over TLS with `credentials`, plaintext without."""
    if credentials is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, credentials)
