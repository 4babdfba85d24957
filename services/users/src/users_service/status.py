"""The one mapping from domain errors to gRPC status codes (with BadRequest details)."""

from __future__ import annotations

import math
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import (
    code_pb2,
    error_details_pb2,
    status_pb2,
)
from grpc_status import rpc_status

from users_service.denials import PermissionDenied, Throttled, Unauthenticated
from users_service.events import ChangesMissed, SubscriberTooSlow
from users_service.lifecycle import ShuttingDown
from users_service.store import (
    AlreadyExists,
    IdempotencyKeyReused,
    NotFound,
    StaleEtag,
    StoreUnavailable,
)
from users_service.validation import FieldViolation, InvalidArgument

_CODES: dict[type[Exception], Any] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    StaleEtag: grpc.StatusCode.FAILED_PRECONDITION,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    SubscriberTooSlow: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ChangesMissed: grpc.StatusCode.UNAVAILABLE,  # the client re-lists and watches again
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Throttled: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# Derived, so an error added to _CODES is mapped by calls.py too. The first two become
# INVALID_ARGUMENT with BadRequest details in abort_with.
MAPPED_ERRORS: tuple[type[Exception], ...] = (InvalidArgument, IdempotencyKeyReused, *_CODES)


def bad_request_status(message: str, violations: list[FieldViolation]) -> Any:
    """A grpc.Status of INVALID_ARGUMENT carrying google.rpc.BadRequest field violations."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
    return rpc_status.to_status(status)


def retry_status(message: str, retry_after: float) -> Any:
    """A grpc.Status of RESOURCE_EXHAUSTED with google.rpc.RetryInfo and a `retry-after`
    trailer (whole seconds, rounded up, as HTTP's Retry-After)."""
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromMilliseconds(max(1, int(retry_after * 1000)))
    detail = any_pb2.Any()
    detail.Pack(info)
    status = rpc_status.to_status(
        status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])
    )
    seconds = str(max(1, math.ceil(retry_after)))
    return _WithTrailers(status, (*status.trailing_metadata, ("retry-after", seconds)))


class _WithTrailers:
    """A grpc.Status with more trailing metadata than rpc_status gives it."""

    def __init__(self, status: Any, trailing_metadata: tuple[tuple[str, Any], ...]) -> None:
        self.code = status.code
        self.details = status.details
        self.trailing_metadata = trailing_metadata


async def abort_with(context: grpc.aio.ServicerContext, error: Exception) -> NoReturn:
    """Ends the call with the status that stands for `error` (one of MAPPED_ERRORS)."""
    if isinstance(error, IdempotencyKeyReused):
        error = InvalidArgument([FieldViolation("request_id", str(error))])
    if isinstance(error, InvalidArgument):
        status = bad_request_status(str(error), error.violations)
        # The details travel in the trailers, beside what the call already put there.
        trailers = (*context.trailing_metadata(), *status.trailing_metadata)
        await context.abort(status.code, status.details, trailers)
    if isinstance(error, Throttled):
        status = retry_status(str(error), error.retry_after)
        trailers = (*context.trailing_metadata(), *status.trailing_metadata)
        await context.abort(status.code, status.details, trailers)
    if isinstance(error, Unauthenticated):
        # As HTTP's 401 does (RFC 6750): what kind of credential the server wants.
        trailers = (*context.trailing_metadata(), ("www-authenticate", "Bearer"))
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error), trailers)
    await context.abort(_CODES[type(error)], str(error))
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises
