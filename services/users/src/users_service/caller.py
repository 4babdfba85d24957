"""The identity a call was made with, once its token verified."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """A verified identity. `user_id` is set for this service's own accounts only.

    Example:
        >>> Caller("7", "userstack", "member", expires_at=1.7e9, user_id=7).is_admin
        False
    """

    subject: str
    issuer: str
    role: str | None  # "admin", "member", or None: no role (an external identity unmapped)
    expires_at: float
    user_id: int | None = None
    token_version: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# The current call's caller (None: anonymous, or enforcement off), set by the access check;
# each call runs in its own task, so it never leaks into another call.
caller_var: ContextVar[Caller | None] = ContextVar("caller", default=None)
