"""Cross-site request forgery protection for the HTML forms: a signed double-submit token.

The token is a random nonce and its HMAC-SHA256 under WEBAPP_SECRET_KEY. It lives in a SameSite
cookie and in a hidden form field; a form POST must carry both, equal, with a valid signature.
A cross-site page can neither read the cookie nor mint a token the signature check accepts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import HTTPException, Request, Response

COOKIE_NAME = "csrftoken"
# Over HTTPS the cookie is Secure and host-only: a __Host- cookie cannot be set by a subdomain
# or over plaintext, nor carry a Domain (browsers enforce the prefix's rules).
SECURE_COOKIE_NAME = "__Host-csrftoken"
FIELD_NAME = "csrf_token"


def _sign(secret: str, nonce: str) -> str:
    return hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()


def new_token(secret: str) -> str:
    """A fresh token: nonce.signature."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_sign(secret, nonce)}"


def is_signed(secret: str, token: str) -> bool:
    """Whether the token carries a valid signature under `secret`."""
    nonce, _, signature = token.partition(".")
    return bool(nonce) and hmac.compare_digest(_sign(secret, nonce), signature)


def cookie_name(request: Request) -> str:
    """The cookie's name for this request: __Host-csrftoken over HTTPS, csrftoken otherwise."""
    return SECURE_COOKIE_NAME if request.url.scheme == "https" else COOKIE_NAME


def token_for(request: Request, secret: str) -> str:
    """The token to embed in a page: the caller's cookie when valid, else a fresh one."""
    current = request.cookies.get(cookie_name(request), "")
    return current if is_signed(secret, current) else new_token(secret)


def set_cookie(response: Response, token: str, request: Request | None = None) -> None:
    """Stores the token in the cookie the next form POST must send back (Secure, __Host-,
    when `request` came over HTTPS)."""
    secure = request is not None and request.url.scheme == "https"
    response.set_cookie(
        SECURE_COOKIE_NAME if secure else COOKIE_NAME,
        token,
        httponly=True,
        samesite="strict",
        path="/",
        max_age=12 * 3600,
        secure=secure,
    )


def verify(request: Request, secret: str, submitted: str | None) -> None:
    """Raises 403 unless the form token equals the cookie token and is signed by us."""
    cookie = request.cookies.get(cookie_name(request), "")
    if not (
        cookie
        and submitted
        and hmac.compare_digest(cookie, submitted)
        and is_signed(secret, cookie)
    ):
        raise HTTPException(403, "the form's CSRF token is missing or invalid; reload the page")
