"""Errors as RFC 9457 problem details: gRPC status codes mapped to precise HTTP statuses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from plumbing.request_ids import request_id_var
from starlette.exceptions import HTTPException

from webapp.context import DeadlineSpentError
from webapp.reads import UserNotFoundError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "1"

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.CANCELLED: 503,
}


class StreamAbortedError(Exception):
    """A streamed body failed after its 200 went out: the connection is dropped, not completed."""


# Statuses whose gRPC message is the server's business, not the HTTP caller's.
_OPAQUE = {502, 503, 504}


def problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Builds an application/problem+json response (RFC 9457) tagged with the request id."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "request_id": request_id_var.get(),
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def http_status_for(code: grpc.StatusCode) -> int:
    """The HTTP status a gRPC status code maps to (502 for codes that mean a broken backend)."""
    return GRPC_TO_HTTP.get(code, 502)


def field_violations(exc: grpc.aio.AioRpcError) -> list[dict[str, str]]:
    """The google.rpc.BadRequest field violations carried in the call's status details."""
    try:
        status = rpc_status.from_call(exc)
    except ValueError:
        logger.warning("inconsistent rich status from the users service", exc_info=True)
        return []
    violations: list[dict[str, str]] = []
    for detail in status.details if status is not None else []:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations += [
                {"field": v.field, "message": v.description} for v in bad_request.field_violations
            ]
    return violations


def _grpc_parts(
    exc: grpc.aio.AioRpcError,
) -> tuple[int, str, list[dict[str, str]] | None, dict[str, str] | None]:
    code = exc.code()
    status = http_status_for(code)
    if status in _OPAQUE:
        detail = _opaque_detail(code)
    else:
        detail = exc.details() or HTTPStatus(status).phrase
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    errors = field_violations(exc) if code == grpc.StatusCode.INVALID_ARGUMENT else None
    return status, detail, errors, headers


def _opaque_detail(code: grpc.StatusCode) -> str:
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "the users service did not answer within the request's time budget"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return "the users service is unavailable; retry shortly"
    return "the users service failed"


def _field(error: dict[str, Any]) -> str:
    """The field a validation error names: a dotted path, or "body" for a body that is not JSON."""
    if error["type"] == "json_invalid":
        return "body"  # its loc is ("body", <character offset>), which names no field
    return ".".join(str(p) for p in error["loc"][1:]) or str(error["loc"][0])


HtmlRenderer = Callable[[Request, int, str, dict[str, str] | None], Response]


def _responder(html: HtmlRenderer | None) -> Callable[..., Response]:
    def respond(
        request: Request,
        status: int,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if html is not None and wants_html(request):
            return html(request, status, detail, headers)
        return problem(status, detail, errors=errors, headers=headers)

    return respond


def wants_html(request: Request) -> bool:
    """Whether the caller is a browser on a UI page (not an API, stream or probe client)."""
    path = request.url.path
    api = path.startswith(("/api/", "/users/", "/healthz", "/readyz", "/openapi"))
    return not api and "text/html" in request.headers.get("accept", "")


def install(app: FastAPI, html: HtmlRenderer | None = None) -> None:
    """Registers the problem-details handlers (HTML pages for browsers on the UI)."""
    respond = _responder(html)

    async def on_grpc_error(request: Request, exc: Exception) -> Response:
        rpc_error = cast(grpc.aio.AioRpcError, exc)
        status, detail, errors, headers = _grpc_parts(rpc_error)
        logger.info("users service answered %s: %s", rpc_error.code().name, rpc_error.details())
        return respond(request, status, detail, errors, headers)

    async def on_deadline_spent(request: Request, exc: Exception) -> Response:
        return respond(request, 504, str(exc))

    async def on_user_not_found(request: Request, exc: Exception) -> Response:
        return respond(request, 404, str(exc))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        http_error = cast(HTTPException, exc)
        return respond(
            request, http_error.status_code, str(http_error.detail), None, http_error.headers
        )

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        errors = [
            {"field": _field(e), "message": e["msg"]}
            for e in cast(RequestValidationError, exc).errors()
        ]
        return respond(request, 422, "the request is malformed", errors)

    app.add_exception_handler(grpc.aio.AioRpcError, on_grpc_error)
    app.add_exception_handler(DeadlineSpentError, on_deadline_spent)
    app.add_exception_handler(UserNotFoundError, on_user_not_found)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
