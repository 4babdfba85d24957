"""The HTML UI: user list with search and paging, create, detail, edit, delete (PRG forms)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from webapp import csrf
from webapp.gateway import (
    ForbiddenError,
    InvalidInputError,
    StaleEtagError,
    UsernameTakenError,
    UsersGateway,
    UsersServiceError,
)
from webapp.routes.api import UserId
from webapp.routes.deps import app_settings, users_gateway
from webapp.routes.viewer import load_viewer

# Each page first asks who the viewer is (its name in the header; a session that expired goes
# back to sign-in from here).
router = APIRouter(include_in_schema=False, dependencies=[Depends(load_viewer)])
templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")

PAGE_SIZE = 20
STALE = "someone else changed this user meanwhile: this is the current version, edit it again"


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Renders a page with a CSRF token for its forms (and the cookie that goes with it), and
    the signed-in viewer (None when anonymous: routes.viewer)."""
    secret = request.app.state.settings.secret_key
    token = csrf.token_for(request, secret)
    viewer = getattr(request.state, "viewer", None)
    response = templates.TemplateResponse(
        request,
        name,
        {"csrf_token": token, "viewer": viewer, **context},
        status_code=status_code,
        headers=headers,
    )
    csrf.set_cookie(response, token, request)
    return response


async def check_csrf(request: Request, csrf_token: Annotated[str, Form()] = "") -> None:
    """Dependency of every form POST."""
    csrf.verify(request, app_settings(request).secret_key, csrf_token)


Csrf = Depends(check_csrf)


def form_errors(exc: UsersServiceError) -> dict[str, str] | None:
    """Field -> message for errors a form can show, or None for errors it cannot."""
    if isinstance(exc, InvalidInputError):
        errors = {v["field"].rpartition(".")[2]: v["message"] for v in exc.errors or []}
        return errors or {"": exc.reason or "invalid input"}
    if isinstance(exc, UsernameTakenError):
        return {"username": "this username is taken"}
    if isinstance(exc, StaleEtagError):
        return {"": STALE}
    if isinstance(exc, ForbiddenError):
        return {"": f"not allowed: {exc.reason or 'you may not do this'}"}
    return None


@router.get("/", response_class=HTMLResponse)
async def index(
    request: Request,
    *,
    q: Annotated[str, Query(max_length=64)] = "",
    page_token: Annotated[str, Query(max_length=4096)] = "",
    created: Annotated[int | None, Query()] = None,
    deleted: Annotated[str, Query(pattern=r"^[a-z0-9._-]{0,64}$")] = "",  # shown as text
) -> Response:
    """The user list, one page at a time, filtered by username prefix."""
    return await _index(
        request,
        users_gateway(request),
        q=q,
        page_token=page_token,
        created=created,
        deleted=deleted,
    )


async def _index(
    request: Request,
    gateway: UsersGateway,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    **params: Any,
) -> Response:
    page = await gateway.list_page(PAGE_SIZE, params.get("page_token", ""), params.get("q", ""))
    context = {
        "users": page.users,
        "next_page_token": page.next_page_token,
        "prev_page_token": page.prev_page_token,
        "page_size": PAGE_SIZE,
        "form": form or {},
        "errors": errors or {},
        "create_request_id": uuid.uuid4().hex,
        **params,
    }
    return render(request, "index.html", context, status_code)


@router.post("/ui/users", dependencies=[Csrf])
async def create(
    request: Request,
    *,
    username: Annotated[str, Form(max_length=1024)] = "",
    email: Annotated[str, Form(max_length=1024)] = "",
    display_name: Annotated[str, Form(max_length=1024)] = "",
    request_id: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Creates a user from the form; on bad input shows the form again with each field's error."""
    gateway = users_gateway(request)
    form = {"username": username, "email": email, "display_name": display_name}
    try:
        user = await gateway.create(**form, idempotency_key=request_id)
    except UsersServiceError as exc:
        if (errors := form_errors(exc)) is None:
            raise
        return await _index(request, gateway, form=form, errors=errors, status_code=exc.status)
    return RedirectResponse(f"/?created={user['id']}", status_code=303)


async def _detail(
    request: Request,
    gateway: UsersGateway,
    user_id: int,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    notice: str = "",
) -> Response:
    shown = await gateway.get(user_id)
    context = {"user": shown, "form": form or shown, "errors": errors or {}, "notice": notice}
    return render(request, "user.html", context, status_code)


@router.get("/ui/users/{user_id:int}", response_class=HTMLResponse)
async def detail(request: Request, user_id: UserId, updated: bool = False) -> Response:
    """One user, with the edit and delete forms."""
    return await _detail(
        request, users_gateway(request), user_id, notice="Saved." if updated else ""
    )


@router.post("/ui/users/{user_id:int}/edit", dependencies=[Csrf])
async def edit(
    request: Request,
    user_id: UserId,
    *,
    etag: Annotated[str, Form(max_length=256)] = "",
    username: Annotated[str, Form(max_length=1024)] = "",
    email: Annotated[str, Form(max_length=1024)] = "",
    display_name: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Saves the edit form, conditional on the etag the form was rendered with."""
    gateway = users_gateway(request)
    form = {"username": username, "email": email, "display_name": display_name}
    try:
        await gateway.update(user_id, etag, **form)
    except UsersServiceError as exc:
        if (errors := form_errors(exc)) is None:
            raise
        shown_form = None if isinstance(exc, StaleEtagError) else form
        return await _detail(
            request, gateway, user_id, form=shown_form, errors=errors, status_code=exc.status
        )
    return RedirectResponse(f"/ui/users/{user_id}?updated=1", status_code=303)


@router.post("/ui/users/{user_id:int}/delete", dependencies=[Csrf])
async def delete(
    request: Request,
    user_id: UserId,
    etag: Annotated[str, Form(max_length=256)] = "",
    username: Annotated[str, Form(max_length=64)] = "",
    confirmed: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Deletes the user, conditional on the etag the page was rendered with, once confirmed
    (app.js asks in the page; without it, this asks on a page of its own)."""
    gateway = users_gateway(request)
    if confirmed != "yes":
        user = await gateway.get(user_id)
        return render(request, "confirm_delete.html", {"user": user, "etag": etag})
    try:
        await gateway.delete(user_id, etag)
    except (StaleEtagError, ForbiddenError) as exc:
        errors = form_errors(exc)
        return await _detail(request, gateway, user_id, errors=errors, status_code=exc.status)
    return RedirectResponse(f"/?deleted={quote(username)}", status_code=303)
