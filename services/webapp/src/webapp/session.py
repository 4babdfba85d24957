"""The caller's credentials from the HTTP request, and the UI's session cookie that holds a token.

API clients send `Authorization: Bearer <token>`; browsers carry the token the users service issued
at sign-in in an HttpOnly cookie. The cookie never authenticates an unsafe method on the JSON API
(`/api/`): those take the header only, so no other page can make a signed-in browser change data
through the API (the UI's own forms carry a CSRF token: csrf.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request, Response

from webapp.caller import bearer

COOKIE_NAME = "session"
# Over HTTPS the cookie is Secure and host-only: a __Host- cookie cannot be set by a subdomain or
# over plaintext, nor carry a Domain (browsers enforce the prefix's rules).
SECURE_COOKIE_NAME = "__Host-session"
# JWTs are a few hundred bytes; the users service's metadata limit is 8 KiB.
MAX_AUTHORIZATION_LENGTH = 4096
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CONTROL = bytes(range(0x20)) + b"\x7f"
MALFORMED = "the Authorization header is malformed: send `Authorization: Bearer <token>`"


class MalformedCredentialsError(ValueError):
    """The Authorization header cannot be passed on: not printable ASCII, or too long."""


def cookie_name(https: bool) -> str:
    """The session cookie's name: __Host-session over HTTPS, session otherwise."""
    return SECURE_COOKIE_NAME if https else COOKIE_NAME


def authorization(
    header: bytes | None, cookies: bytes | None, method: str, path: str, https: bool
) -> str | None:
    """The `authorization` value to send on: the header as given, else the cookie's token.

    None for an anonymous caller; MalformedCredentialsError for a header that cannot be sent.
    """
    if header is not None:
        if not _sendable(header):
            raise MalformedCredentialsError(MALFORMED)
        return header.decode("ascii").strip() or None
    if cookies is None or (method not in _SAFE_METHODS and path.startswith("/api/")):
        return None
    token = _cookie(cookies.decode("latin-1"), cookie_name(https))
    return bearer(token) if token and _sendable(token.encode("latin-1")) else None


def _sendable(value: bytes) -> bool:
    """Whether gRPC metadata can carry `value`: printable ASCII, not too long."""
    return (
        len(value) <= MAX_AUTHORIZATION_LENGTH
        and value.isascii()
        and len(value.translate(None, _CONTROL)) == len(value)  # a C loop: a regex took 2.5 us
    )


def _cookie(header: str, name: str) -> str:
    """One cookie's value from a Cookie header ("" when absent)."""
    if name not in header:  # the usual case for API clients: no parse at all
        return ""
    # A scan for the one name, not a full parse (starlette's cookie_parser took 8 us here).
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return ""


def had_session(request: Request) -> bool:
    """Whether the request carried a session cookie (one that may have expired)."""
    return cookie_name(request.url.scheme == "https") in request.cookies


def set_session(response: Response, request: Request, token: str, expires: datetime) -> None:
    """Stores the token in the session cookie, expiring with it.

    SameSite=Lax, not Strict: a link to the UI followed from elsewhere (an email, a chat) arrives
    signed in; a cross-site POST, PUT or DELETE still carries no cookie, and the forms check CSRF.
    """
    https = request.url.scheme == "https"
    seconds = max(0, int((expires - datetime.now(UTC)).total_seconds()))
    response.set_cookie(
        cookie_name(https),
        token,
        max_age=seconds,
        path="/",
        secure=https,
        httponly=True,
        samesite="lax",
    )


def clear_session(response: Response, request: Request) -> None:
    """Removes the session cookie."""
    https = request.url.scheme == "https"
    response.delete_cookie(
        cookie_name(https), path="/", secure=https, httponly=True, samesite="lax"
    )
