"""Client channels for tests: plaintext, or TLS with the credentials given."""

from __future__ import annotations

from typing import Any

import grpc

from testkit.tokens import with_token


def aio_channel(
    target: str, credentials: Any | None = None, token: str | None = None
) -> grpc.aio.Channel:
    """A grpc.aio channel to `target`: over TLS with `credentials`, plaintext without; with
    `token`, every call carries it (`authorization: Bearer <token>`)."""
    if token is not None:
        return grpc.aio.secure_channel(target, with_token(credentials, token))
    if credentials is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, credentials)


def sync_channel(
    target: str, credentials: Any | None = None, token: str | None = None
) -> grpc.Channel:
    """The blocking-API twin of aio_channel."""
    if token is not None:
        return grpc.secure_channel(target, with_token(credentials, token))
    if credentials is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, credentials)
