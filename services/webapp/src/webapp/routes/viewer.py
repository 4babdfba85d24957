"""Who is looking at a UI page: the users service's answer for the caller's credentials."""

from __future__ import annotations

from fastapi import Request

from webapp.caller import authorization_var
from webapp.gateway import Identity
from webapp.routes.deps import users_gateway


async def load_viewer(request: Request) -> None:
    """Puts the caller's identity in `request.state.viewer` (None when anonymous).

    A page uses it for what it shows (the name in the header, the forms the viewer can use); what
    the viewer may do is the users service's decision on each call. A token it refuses raises
    NotSignedInError: the page answers with the sign-in page (routes.auth.to_sign_in).
    """
    viewer: Identity | None = None
    if authorization_var.get() is not None:
        viewer = await users_gateway(request).accounts.who_am_i()
    request.state.viewer = viewer
