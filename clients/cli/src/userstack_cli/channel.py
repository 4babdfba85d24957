"""The channel: opened, waited on until ready (or a clear "cannot reach"), with every call's
metadata (request id, token) and a deadline added in one interceptor."""

from __future__ import annotations

import collections
import queue
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import grpc
from plumbing.request_ids import REQUEST_ID_KEY, new_request_id
from plumbing.tls import TlsError, TlsFiles, channel_credentials, load_material

from userstack_cli.connection import Connection, Transport
from userstack_cli.errors import CliError, ExitCode

USER_AGENT = f"userstack-cli/{version('userstack-cli')}"


def open_channel(connection: Connection, token: str | None) -> grpc.Channel:
    """A ready channel to the connection's target; CliError (UNAVAILABLE) after the timeout."""
    candidates = _candidates(connection)
    ready = _first_ready(candidates, connection.connect_timeout)
    for channel in candidates:
        if channel is not ready:
            channel.close()
    if ready is None:
        raise CliError(
            f"cannot reach {connection.target} within {connection.connect_timeout:g} s over"
            f" {connection.describe()}: is the users service running there (`make up`,"
            " `make run-users`)? Set the target with --target or USERSTACK_TARGET",
            ExitCode.UNAVAILABLE,
        )
    return grpc.intercept_channel(ready, CallDefaults(connection.timeout, token))


def _first_ready(channels: list[grpc.Channel], timeout: float) -> grpc.Channel | None:
    """The first of `channels` to connect within `timeout` seconds (the seed's
    channel_ready_future, over several candidates), or None."""
    connected: queue.SimpleQueue[grpc.Channel] = queue.SimpleQueue()
    futures = []
    for channel in channels:
        future = grpc.channel_ready_future(channel)
        future.add_done_callback(_on_ready(connected, channel))
        futures.append(future)
    try:
        return connected.get(timeout=timeout)
    except queue.Empty:
        return None
    finally:
        for future in futures:
            future.cancel()


def _candidates(connection: Connection) -> list[grpc.Channel]:
    options: list[tuple[str, Any]] = [("grpc.primary_user_agent", USER_AGENT)]
    if connection.target.startswith("unix:"):
        # A UNIX socket has no host name to check the certificate against: localhost's.
        options.append(("grpc.ssl_target_name_override", "localhost"))
    channels = []
    if connection.transport is not Transport.PLAINTEXT:
        credentials = _credentials(connection.tls or TlsFiles())
        channels.append(grpc.secure_channel(connection.target, credentials, options))
    if connection.transport is not Transport.TLS:
        channels.append(grpc.insecure_channel(connection.target, options))
    return channels


def _credentials(files: TlsFiles) -> Any:
    try:
        return channel_credentials(load_material(files))
    except TlsError as error:
        raise CliError(str(error), ExitCode.INVALID) from error


def _on_ready(
    connected: queue.SimpleQueue[grpc.Channel], channel: grpc.Channel
) -> Callable[[Any], None]:
    def done(future: Any) -> None:
        if not future.cancelled():
            connected.put(channel)

    return done


_Fields = collections.namedtuple(
    "_Fields", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
)


class _Details(_Fields, grpc.ClientCallDetails):  # type: ignore[misc]
    """A call's details with our metadata and deadline."""


class CallDefaults(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds to every call (reflection's too) a fresh x-request-id, the token as
    `authorization: Bearer`, and a deadline of `timeout` seconds unless the call set one."""

    def __init__(self, timeout: float, token: str | None) -> None:
        self._timeout = timeout
        self._auth = (("authorization", f"Bearer {token}"),) if token else ()

    def _details(self, details: Any) -> _Details:
        metadata = (*(details.metadata or ()), (REQUEST_ID_KEY, new_request_id()), *self._auth)
        timeout = self._timeout if details.timeout is None else details.timeout
        return _Details(
            details.method,
            timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def _intercept(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept
