"""Sign-up, sign-in and sign-out pages, and the keys that verify the users service's tokens.

The pages ask the users service (AuthService) and keep the token it issues in the session cookie
(session.py); every form carries the CSRF token (csrf.py), sign-in's included.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from webapp import session
from webapp.gateway import (
    ForbiddenError,
    NotSignedInError,
    SignedIn,
    TooManyAttemptsError,
    UsersGateway,
    UsersServiceError,
)
from webapp.routes.deps import client_address, users_gateway
from webapp.routes.ui import Csrf, form_errors, render

router = APIRouter(include_in_schema=False)

REASONS = {
    "expired": "Your session has expired or was revoked: sign in again.",
    "signed-out": "You are signed out.",
    "": "Sign in to continue.",
}
WRONG = "wrong username or password"
CLOSED = "sign-up is closed here: ask an administrator for an account"
Next = Annotated[str, Query(max_length=512)]
Reason = Annotated[str, Query(pattern=r"^(expired|signed-out|)$")]


def safe_next(target: str) -> str:
    """`target` if it is a path on this site, else "/" (no open redirect)."""
    local = target.startswith("/") and not target.startswith(("//", "/\\"))
    return target if local and target.isprintable() else "/"


def to_sign_in(request: Request) -> Response:
    """The answer to a browser whose page needs a valid session: the sign-in page, saying why;
    a session cookie it carried (expired, or revoked) is removed."""
    expired = session.had_session(request)
    target = request.url.path if request.method == "GET" else "/"
    query = f"?next={quote(target)}" + ("&reason=expired" if expired else "")
    response = RedirectResponse(f"/signin{query}", status_code=303)
    if expired:
        session.clear_session(response, request)
    return response


def _signed_in(request: Request, issued: SignedIn, target: str) -> Response:
    response = RedirectResponse(safe_next(target), status_code=303)
    session.set_session(response, request, issued.access_token, issued.expires)
    return response


@router.get("/signin", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: Next = "/", reason: Reason = "") -> Response:
    """The sign-in form."""
    context = {"next": safe_next(next), "notice": REASONS[reason], "form": {}, "errors": {}}
    return render(request, "signin.html", context)


@router.post("/signin", dependencies=[Csrf])
async def sign_in(
    request: Request,
    *,
    username: Annotated[str, Form(max_length=1024)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=512)] = "/",
) -> Response:
    """Signs in: the session cookie, then the page asked for; the form again on a refusal."""
    try:
        accounts = users_gateway(request).accounts
        issued = await accounts.sign_in(username, password, client=client_address(request))
    except (NotSignedInError, TooManyAttemptsError) as exc:
        error = WRONG if isinstance(exc, NotSignedInError) else _throttled(exc)
        context = {"next": safe_next(next), "form": {"username": username}, "errors": {"": error}}
        return render(request, "signin.html", context, exc.status, exc.headers)
    return _signed_in(request, issued, next)


def _throttled(exc: UsersServiceError) -> str:
    return f"too many sign-in attempts: try again in {exc.retry_after} s"


@router.get("/signup", response_class=HTMLResponse)
async def sign_up_page(request: Request) -> Response:
    """The sign-up form."""
    return render(request, "signup.html", {"form": {}, "errors": {}})


@router.post("/signup", dependencies=[Csrf])
async def sign_up(
    request: Request,
    *,
    username: Annotated[str, Form(max_length=1024)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    email: Annotated[str, Form(max_length=1024)] = "",
    display_name: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Creates a member account and signs it in, then shows its profile."""
    form = {"username": username, "email": email, "display_name": display_name}
    try:
        accounts = users_gateway(request).accounts
        issued = await accounts.sign_up(password=password, client=client_address(request), **form)
    except UsersServiceError as exc:
        errors = {"": CLOSED} if isinstance(exc, ForbiddenError) else form_errors(exc)
        if errors is None:
            raise
        context = {"form": form, "errors": errors}
        return render(request, "signup.html", context, exc.status, exc.headers)
    return _signed_in(request, issued, f"/ui/users/{issued.user['id']}")


@router.post("/signout", dependencies=[Csrf])
async def sign_out(
    request: Request, everywhere: Annotated[str, Form(max_length=8)] = ""
) -> Response:
    """Removes the session cookie; with `everywhere`, first revokes every token of the caller."""
    if everywhere:
        # A token it refuses is signed out already, as far as the users service is concerned.
        with contextlib.suppress(NotSignedInError):
            await users_gateway(request).accounts.sign_out_everywhere()
    response = RedirectResponse("/signin?reason=signed-out", status_code=303)
    session.clear_session(response, request)
    return response


class KeyCache:
    """The users service's JWKS, asked at most once per CACHE_SECONDS.

    >>> jwks = await KeyCache().get(gateway)  # doctest: +SKIP
    """

    CACHE_SECONDS = 5.0  # a floor under the users service's load, not a delay on new keys

    def __init__(self) -> None:
        self._jwks = ""
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, gateway: UsersGateway) -> str:
        async with self._lock:
            if not self._jwks or time.monotonic() - self._at >= self.CACHE_SECONDS:
                self._jwks = await gateway.accounts.jwks()
                self._at = time.monotonic()
            return self._jwks


# How long clients may keep the keys: short, so a verifier sees a new signing key soon (and one
# that meets a token with an unknown key id should ask again anyway).
JWKS_MAX_AGE_SECONDS = 60


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> Response:
    """The public keys that verify the users service's access tokens (RFC 7517)."""
    cache: KeyCache = request.app.state.key_cache
    body = await cache.get(users_gateway(request))
    headers = {"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"}
    return Response(body, media_type="application/jwk-set+json", headers=headers)
