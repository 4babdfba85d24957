"""/api/v1/auth: sign up and sign in for a bearer token, and who the token says you are."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from webapp.gateway import Identity, SignedIn
from webapp.routes.api import ERRORS, UserOut
from webapp.routes.deps import client_address, users_gateway

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
ANONYMOUS: dict[str, Any] = {"security": []}  # OpenAPI: no token needed


class Credentials(BaseModel):
    """A username and its password."""

    username: str = Field(max_length=1024, examples=["ada"])
    password: str = Field(max_length=1024, examples=["correct horse battery staple"])


class NewAccount(Credentials):
    """A member account to create."""

    email: str = Field("", max_length=1024, examples=["ada@example.com"])
    display_name: str = Field("", max_length=1024, examples=["Ada Lovelace"])


class Token(BaseModel):
    """An access token: send it as `Authorization: Bearer <access_token>`."""

    access_token: str
    token_type: str
    expire_time: str
    user: UserOut


class WhoAmI(BaseModel):
    """The caller, as the users service sees it."""

    subject: str
    issuer: str
    role: str
    user: UserOut | None


def _token(issued: SignedIn) -> dict[str, Any]:
    expire_time = issued.expires.isoformat().replace("+00:00", "Z")
    return {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expire_time": expire_time,
        "user": issued.user,
    }


@router.post("/signin", response_model=Token, responses=ERRORS, openapi_extra=ANONYMOUS)
async def sign_in(request: Request, body: Credentials) -> dict[str, Any]:
    """Exchanges a username and password for an access token (401 if either is wrong; 429 with
    `Retry-After` after too many failed attempts)."""
    accounts = users_gateway(request).accounts
    client = client_address(request)
    return _token(await accounts.sign_in(body.username, body.password, client=client))


@router.post(
    "/signup", response_model=Token, status_code=201, responses=ERRORS, openapi_extra=ANONYMOUS
)
async def sign_up(request: Request, body: NewAccount) -> dict[str, Any]:
    """Creates a member account and signs it in (403 when self-service sign-up is off)."""
    accounts = users_gateway(request).accounts
    return _token(await accounts.sign_up(**body.model_dump(), client=client_address(request)))


@router.get("/whoami", response_model=WhoAmI, responses=ERRORS)
async def who_am_i(request: Request) -> dict[str, Any]:
    """The caller's identity: subject, issuer, role, and account."""
    identity: Identity = await users_gateway(request).accounts.who_am_i()
    return {
        "subject": identity.subject,
        "issuer": identity.issuer,
        "role": identity.role,
        "user": identity.user,
    }
