"""The JSON API under /api/v1/users: one endpoint per users operation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from webapp.gateway import User, UsersGateway
from webapp.routes.deps import users_gateway

router = APIRouter(prefix="/api/v1/users", tags=["users"])

MAX_USER_ID = 2**63 - 1
UserId = Annotated[int, Path(ge=1, le=MAX_USER_ID, description="The user's id.")]
PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, **PROBLEM}
    for code, text in [
        (401, "No valid access token (`WWW-Authenticate: Bearer`)."),
        (403, "The token's identity may not do this."),
        (404, "No such user."),
        (409, "The username is taken."),
        (412, "The If-Match etag is stale."),
        (422, "Invalid input, with field violations."),
        (429, "Too many failed sign-ins (`Retry-After`)."),
        (503, "The users service is unavailable."),
        (504, "The users service did not answer in time."),
    ]
}


class UserIn(BaseModel):
    """A new user."""

    username: str = Field(max_length=1024, examples=["ada"])
    email: str = Field("", max_length=1024, examples=["ada@example.com"])
    display_name: str = Field("", max_length=1024, examples=["Ada Lovelace"])


class UserPatch(BaseModel):
    """The fields to change; those left out stay as they are."""

    username: str | None = Field(None, max_length=1024)
    email: str | None = Field(None, max_length=1024)
    display_name: str | None = Field(None, max_length=1024)


class UserOut(BaseModel):
    """A user as the API returns it."""

    id: int
    username: str
    email: str
    display_name: str
    create_time: str
    update_time: str
    etag: str
    role: str = Field(examples=["member"], description="admin or member")
    disabled: bool


class UserPage(BaseModel):
    """One page of users."""

    users: list[UserOut]
    next_page_token: str
    prev_page_token: str = ""


def etag_header(etag: str) -> str:
    """The HTTP ETag (a quoted string) for a user's etag."""
    return f'"{etag}"'


def etag_from_if_match(if_match: str | None) -> str:
    """The user etag an If-Match header names ('' for none or '*')."""
    if if_match is None or if_match.strip() == "*":
        return ""
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _user_response(user: User, status_code: int = 200) -> JSONResponse:
    headers = {"ETag": etag_header(user["etag"])}
    if status_code == 201:
        headers["Location"] = f"/api/v1/users/{user['id']}"
    return JSONResponse(user, status_code=status_code, headers=headers)


@router.post("", status_code=201, response_model=UserOut, responses=ERRORS)
async def create_user(
    request: Request,
    body: UserIn,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> JSONResponse:
    """Creates a user. Send an `Idempotency-Key` header to make retries safe."""
    user = await users_gateway(request).create(
        **body.model_dump(), idempotency_key=idempotency_key or ""
    )
    return _user_response(user, 201)


@router.get("", response_model=UserPage, responses=ERRORS)
async def list_users(
    request: Request,
    response: Response,
    *,
    page_size: Annotated[int, Query(ge=-(2**31), le=2**31 - 1)] = 0,
    page_token: Annotated[str, Query(max_length=4096)] = "",
    prefix: Annotated[str, Query(max_length=64)] = "",
) -> dict[str, Any]:
    """Lists users in id order, a page at a time, optionally by username prefix."""
    page = await users_gateway(request).list_page(page_size, page_token, prefix)
    links = [
        (rel, token)
        for rel, token in (("next", page.next_page_token), ("prev", page.prev_page_token))
        if token
    ]
    if links:
        urls = [(rel, request.url.include_query_params(page_token=t)) for rel, t in links]
        response.headers["Link"] = ", ".join(f'<{u.path}?{u.query}>; rel="{r}"' for r, u in urls)
    return {
        "users": page.users,
        "next_page_token": page.next_page_token,
        "prev_page_token": page.prev_page_token,
    }


async def get_user(request: Request, user_id: UserId) -> JSONResponse:
    """Reads one user by id."""
    return _user_response(await users_gateway(request).get(user_id))


class ReadRoute(APIRoute):
    """The read endpoint's route: a GET of an id in range is answered here, with the gateway's
    JSON bytes, skipping FastAPI's per-request work for it (a parameter solve and validation, a
    sub-response, a JSON encoder: docs/performance.md). The answer is the one get_user gives:
    same body, ETag and content type; failures raise to the same exception handlers. Anything
    else (HEAD, an id out of range: 422) goes through get_user as declared, which also documents
    the endpoint in the OpenAPI schema.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        user_id = scope["path_params"]["user_id"]  # an int: the path's convertor
        if scope["method"] != "GET" or not 1 <= user_id <= MAX_USER_ID:
            await super().handle(scope, receive, send)
            return
        gateway: UsersGateway = scope["app"].state.gateway
        body, etag = await gateway.get_json(user_id)
        headers = [
            (b"etag", etag_header(etag).encode("latin-1")),
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


router.add_api_route(
    "/{user_id:int}",
    get_user,
    methods=["GET"],
    response_model=UserOut,
    responses=ERRORS,
    route_class_override=ReadRoute,
)


@router.get("/by-username/{username}", response_model=UserOut, responses=ERRORS)
async def get_user_by_username(
    request: Request, username: Annotated[str, Path(max_length=256)]
) -> JSONResponse:
    """Reads one user by username (case-insensitively)."""
    return _user_response(await users_gateway(request).get_by_username(username))


@router.patch("/{user_id:int}", response_model=UserOut, responses=ERRORS)
async def update_user(
    request: Request,
    user_id: UserId,
    body: UserPatch,
    if_match: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Changes the fields present in the body; with `If-Match`, only if the etag is current."""
    fields = body.model_dump(exclude_unset=True, exclude_none=True)
    etag = etag_from_if_match(if_match)
    return _user_response(await users_gateway(request).update(user_id, etag, **fields))


@router.delete("/{user_id:int}", status_code=204, responses=ERRORS)
async def delete_user(
    request: Request,
    user_id: UserId,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Deletes a user; with `If-Match`, only if the etag is current."""
    await users_gateway(request).delete(user_id, etag_from_if_match(if_match))
    return Response(status_code=204)
