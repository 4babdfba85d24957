"""The users service's failures in the webapp's terms: one exception per case, with its HTTP status.

Every gRPC status the gateway sees becomes a UsersServiceError (or a subclass a route can catch by
name): `status` is the precise HTTP status, `detail` what an HTTP caller may read.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from webapp.caller import authorization_var

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "1"
REALM = 'Bearer realm="userstack"'


def www_authenticate(credentials_sent: bool) -> str:
    """The WWW-Authenticate challenge of a 401 (RFC 6750): invalid_token when one was sent."""
    return f'{REALM}, error="invalid_token"' if credentials_sent else REALM


class UsersServiceError(Exception):
    """A call to the users service failed.

    >>> error = UsersServiceError("the users service failed", status=502)
    >>> error.status, error.headers
    (502, None)
    """

    status = 502

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str = "",
        reason: str = "",
        errors: list[dict[str, str]] | None = None,
        retry_after: str | None = None,
        credentials_sent: bool = False,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.code = code  # the gRPC status code's name, for logs ("" when raised here)
        self.reason = reason  # the users service's own message, for logs and forms
        self.errors = errors  # field violations, for invalid input
        self.retry_after = retry_after  # seconds, where the users service said (429, 503)
        self.credentials_sent = credentials_sent  # for 401: a token was sent, and refused

    @property
    def headers(self) -> dict[str, str] | None:
        """Response headers the status calls for (Retry-After on 503 and 429; the challenge on
        401)."""
        if self.status in (429, 503):
            return {"Retry-After": self.retry_after or RETRY_AFTER_SECONDS}
        if self.status == 401:
            return {"WWW-Authenticate": www_authenticate(self.credentials_sent)}
        return None


class InvalidInputError(UsersServiceError):
    """The users service refused the input; `errors` names each bad field."""

    status = 422


class UserNotFoundError(UsersServiceError):
    """No user has the id (or username)."""

    status = 404


class UsernameTakenError(UsersServiceError):
    """Another user has the username."""

    status = 409


class StaleEtagError(UsersServiceError):
    """The etag given is not the user's current one: someone else changed it meanwhile."""

    status = 412


class NotSignedInError(UsersServiceError):
    """No identity, or one the users service refused (a bad, expired or revoked token; or, from
    sign-in, a wrong username or password)."""

    status = 401


class ForbiddenError(UsersServiceError):
    """The identity is valid, but may not do this."""

    status = 403


class TooManyAttemptsError(UsersServiceError):
    """Sign-in is throttled for this account or address; `retry_after` says for how long."""

    status = 429


# gRPC status -> (the exception, the HTTP status); codes not listed mean a broken backend: 502.
_ERRORS: dict[grpc.StatusCode, tuple[type[UsersServiceError], int]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (InvalidInputError, 422),
    grpc.StatusCode.OUT_OF_RANGE: (UsersServiceError, 400),
    grpc.StatusCode.NOT_FOUND: (UserNotFoundError, 404),
    grpc.StatusCode.ALREADY_EXISTS: (UsernameTakenError, 409),
    grpc.StatusCode.ABORTED: (UsersServiceError, 409),
    grpc.StatusCode.FAILED_PRECONDITION: (StaleEtagError, 412),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (UsersServiceError, 413),
    grpc.StatusCode.UNAUTHENTICATED: (NotSignedInError, 401),
    grpc.StatusCode.PERMISSION_DENIED: (ForbiddenError, 403),
    grpc.StatusCode.UNIMPLEMENTED: (UsersServiceError, 501),
    grpc.StatusCode.DEADLINE_EXCEEDED: (UsersServiceError, 504),
    grpc.StatusCode.UNAVAILABLE: (UsersServiceError, 503),
    grpc.StatusCode.CANCELLED: (UsersServiceError, 503),
}

# Statuses whose gRPC message is the server's business, not the HTTP caller's.
_OPAQUE = {502, 503, 504}


# RESOURCE_EXHAUSTED by the limit the users service names in its `users-limit` trailer.
_LIMITS = {"rate": 429, "storage": 507, "subscribers": 503, "size": 413}


def _limit(exc: grpc.aio.AioRpcError) -> tuple[int, str | None]:
    """(HTTP status, retry-after) of a RESOURCE_EXHAUSTED."""
    trailers = dict(exc.trailing_metadata() or ())
    limit = str(trailers.get("users-limit", ""))
    retry_after = trailers.get("retry-after")
    if limit in _LIMITS:
        return _LIMITS[limit], None if retry_after is None else str(retry_after)
    # grpc's own: a message over the size cap, or the server's concurrent-call limit.
    return (413 if "larger than max" in (exc.details() or "") else 503), None


def users_error(exc: grpc.aio.AioRpcError) -> UsersServiceError:
    """The webapp's exception for a failed call (in the context of the request that made it)."""
    code = exc.code()
    kind, status = _ERRORS.get(code, (UsersServiceError, 502))
    retry_after = None
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if delay := retry_delay(exc):  # a throttled sign-in (google.rpc.RetryInfo)
            kind, status, retry_after = TooManyAttemptsError, 429, str(delay)
        else:  # a limit the users service names, or grpc's own
            status, retry_after = _limit(exc)
    reason = exc.details() or ""
    detail = _opaque_detail(code) if status in _OPAQUE else reason or HTTPStatus(status).phrase
    errors = field_violations(exc) if code == grpc.StatusCode.INVALID_ARGUMENT else None
    return kind(
        detail,
        status=status,
        code=code.name,
        reason=reason,
        errors=errors,
        retry_after=retry_after,
        credentials_sent=authorization_var.get() is not None,
    )


def _details(exc: grpc.aio.AioRpcError) -> list[Any]:
    """The google.rpc.Status details the call's trailers carry (none when they carry none)."""
    try:
        status = rpc_status.from_call(exc)
    except ValueError:
        logger.warning("inconsistent rich status from the users service", exc_info=True)
        return []
    return list(status.details) if status is not None else []


def field_violations(exc: grpc.aio.AioRpcError) -> list[dict[str, str]]:
    """The google.rpc.BadRequest field violations carried in the call's status details."""
    violations: list[dict[str, str]] = []
    for detail in _details(exc):
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations += [
                {"field": v.field, "message": v.description} for v in bad_request.field_violations
            ]
    return violations


def retry_delay(exc: grpc.aio.AioRpcError) -> int | None:
    """Whole seconds (at least 1) from a google.rpc.RetryInfo in the status details, or None."""
    for detail in _details(exc):
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            seconds: float = info.retry_delay.ToTimedelta().total_seconds()
            return max(1, math.ceil(seconds))
    return None


def _opaque_detail(code: grpc.StatusCode) -> str:
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "the users service did not answer within the request's time budget"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return "the users service is unavailable; retry shortly"
    return "the users service failed"
