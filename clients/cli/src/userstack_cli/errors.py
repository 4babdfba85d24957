"""Exit codes, and gRPC errors turned into one clear line on stderr with the right code."""

from __future__ import annotations

import enum
from typing import IO, Any

import click
import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class ExitCode(enum.IntEnum):
    """What `userstack` exits with (docs/cli.md#exit-codes)."""

    OK = 0
    FAILURE = 1  # anything not below
    INVALID = 2  # bad arguments or input: a usage error, INVALID_ARGUMENT, rejected import rows
    NOT_FOUND = 3
    CONFLICT = 4  # ALREADY_EXISTS, FAILED_PRECONDITION (a stale etag)
    UNAUTHENTICATED = 5
    PERMISSION_DENIED = 6
    UNAVAILABLE = 7  # cannot reach the server, UNAVAILABLE, DEADLINE_EXCEEDED, NOT_SERVING


_BY_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.INVALID,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.INVALID,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.CONFLICT,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
}


class CliError(click.ClickException):
    """An error for people: `error: <message>` on stderr, and its exit code.

    Example:
        >>> raise CliError("no such file", ExitCode.INVALID)
    """

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.exit_code = int(code)  # type: ignore[misc]  # click reads it per instance

    def show(self, file: IO[Any] | None = None) -> None:
        """Prints the message on stderr."""
        click.echo(f"error: {self.format_message()}", err=True)


def from_rpc(error: grpc.RpcError) -> CliError:
    """The CliError for a failed call: status, message, field violations; its exit code."""
    code = error.code()
    lines = [f"{code.name}: {error.details()}"]
    details = error.details() or ""
    lines.extend(
        f"  {field}: {reason}"
        for field, reason in field_violations(error)
        if f"{field}: {reason}" != details  # the message already says it
    )
    if code is grpc.StatusCode.UNIMPLEMENTED:
        lines.append("  the server does not offer this method (an older version of the service?)")
    if code is grpc.StatusCode.UNAUTHENTICATED:
        lines.append("  sign in with `userstack login USERNAME`, or set USERSTACK_TOKEN")
    return CliError("\n".join(lines), _BY_STATUS.get(code, ExitCode.FAILURE))


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The google.rpc.BadRequest field violations the status carries, if any."""
    status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    violations: list[tuple[str, str]] = []
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend((v.field, v.description) for v in bad_request.field_violations)
    return violations
