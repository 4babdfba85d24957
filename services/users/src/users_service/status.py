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

from users_service.client_errors import clip
from users_service.denials import PermissionDenied, Throttled, Unauthenticated
from users_service.events import ChangesMissed, SubscriberTooSlow, TooManySubscribers
from users_service.importer import ImportTooLarge
from users_service.lifecycle import ShuttingDown
from users_service.limits import RateLimited, StorageFull
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
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ImportTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # Generated base servicers raise it for a method nobody implemented (Health/List in
    # grpcio-health-checking): UNIMPLEMENTED, with no traceback logged.
    NotImplementedError: grpc.StatusCode.UNIMPLEMENTED,
    StorageFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TooManySubscribers: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# Which limit a RESOURCE_EXHAUSTED comes from, in the trailers (the webapp maps it to 429, 507
# or 503), with retry-after (whole seconds) where waiting helps.
LIMIT_KEY = "users-limit"
RETRY_AFTER_KEY = "retry-after"
_LIMITS: dict[type[Exception], str] = {
    RateLimited: "rate",
    StorageFull: "storage",
    TooManySubscribers: "subscribers",
    ImportTooLarge: "size",
}
# Derived, so an error added to _CODES is mapped by calls.py too. The first two become
# INVALID_ARGUMENT with BadRequest details in abort_with.
# The trailers must stay small whatever the request: the first violations only.
MAX_VIOLATIONS = 10
MAPPED_ERRORS: tuple[type[Exception], ...] = (InvalidArgument, IdempotencyKeyReused, *_CODES)


def bad_request_status(message: str, violations: list[FieldViolation]) -> Any:
    """A grpc.Status of INVALID_ARGUMENT carrying google.rpc.BadRequest field violations."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=clip(v.field, 80), description=clip(v.description)
            )
            for v in violations[:MAX_VIOLATIONS]
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT, message=clip(message), details=[detail]
    )
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


def _limit_trailers(context: grpc.aio.ServicerContext, error: Exception) -> Any:
    limit = _LIMITS.get(type(error))
    if limit is None:
        return ()  # the trailers already set (the request id) go out as they are
    trailers = [*context.trailing_metadata(), (LIMIT_KEY, limit)]
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        trailers.append((RETRY_AFTER_KEY, str(retry_after)))
    return tuple(trailers)


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
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, clip(str(error)), trailers)
    # Clipped: a detail quoting a client's input must fit in any client's metadata limit.
    await context.abort(_CODES[type(error)], clip(str(error)), _limit_trailers(context, error))
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises
