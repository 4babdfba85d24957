"""The caller's credentials for this request: its `authorization` value, in a context variable.

Set once per request by the middleware (from `Authorization: Bearer`, or the session cookie) and
read by the gateway, which sends it to the users service with every call the request makes. The
webapp decides nothing with it: the users service verifies it and answers for it.
"""

from __future__ import annotations

from contextvars import ContextVar

AUTHORIZATION_KEY = "authorization"

# `Bearer <token>` as the users service expects it in its metadata; None: an anonymous caller.
authorization_var: ContextVar[str | None] = ContextVar("authorization", default=None)


def bearer(token: str) -> str:
    """The metadata value that carries `token`."""
    return f"Bearer {token}"


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """The caller's credentials as gRPC metadata; none for an anonymous caller."""
    authorization = authorization_var.get()
    return ((AUTHORIZATION_KEY, authorization),) if authorization else ()
