"""The one mapping from domain errors to gRPC status codes (with BadRequest details)."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import (
    code_pb2,
    error_details_pb2,
    status_pb2,
)
from grpc_status import rpc_status

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


async def abort_with(context: grpc.aio.ServicerContext, error: Exception) -> NoReturn:
    """Ends the call with the status that stands for `error` (one of MAPPED_ERRORS)."""
    if isinstance(error, IdempotencyKeyReused):
        error = InvalidArgument([FieldViolation("request_id", str(error))])
    if isinstance(error, InvalidArgument):
        status = bad_request_status(str(error), error.violations)
        # The details travel in the trailers, beside what the call already put there.
        trailers = (*context.trailing_metadata(), *status.trailing_metadata)
        await context.abort(status.code, status.details, trailers)
    await context.abort(_CODES[type(error)], str(error))
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises
