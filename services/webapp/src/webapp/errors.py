"""Errors as RFC 9457 problem details: the users service's, the request's and the framework's."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from plumbing.request_ids import request_id_var
from starlette.exceptions import HTTPException

from webapp.deadlines import DeadlineSpentError
from webapp.gateway import UsersServiceError, www_authenticate

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class StreamAbortedError(Exception):
    """A streamed body failed after its 200 went out: the connection is dropped, not completed."""


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


def unauthorized(detail: str, *, credentials_sent: bool = True) -> JSONResponse:
    """A 401 problem with its Bearer challenge (RFC 6750)."""
    return problem(401, detail, headers={"WWW-Authenticate": www_authenticate(credentials_sent)})


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

    async def on_users_error(request: Request, exc: Exception) -> Response:
        error = cast(UsersServiceError, exc)
        if error.code:  # an answer from the users service, not one made in the gateway
            logger.info("users service answered %s: %s", error.code, error.reason)
        return respond(request, error.status, error.detail, error.errors, error.headers)

    async def on_deadline_spent(request: Request, exc: Exception) -> Response:
        return respond(request, 504, str(exc))

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

    app.add_exception_handler(UsersServiceError, on_users_error)
    app.add_exception_handler(DeadlineSpentError, on_deadline_spent)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
