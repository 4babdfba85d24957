"""The users service's AuthService in the webapp's terms: sign-up, sign-in, identity, keys.

Sign-up, sign-in and the keys are anonymous calls: the caller's credentials are not sent with
them. The others carry the caller's, like every UserService call.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
from users.v1 import users_pb2, users_pb2_grpc

from webapp.gateway.channel import call_options
from webapp.gateway.errors import users_error
from webapp.gateway.values import Identity, SignedIn, identity, signed_in

T = TypeVar("T")

# The users service believes it only from a peer with a verified client certificate (mTLS).
FORWARDED_FOR_KEY = "x-forwarded-for"


async def _answer(call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise users_error(exc) from exc


class Accounts:
    """Calls to AuthService over the gateway's channel.

    >>> session = await gateway.accounts.sign_in("ada", "correct horse battery")  # doctest: +SKIP
    >>> session.user["role"]  # doctest: +SKIP
    'member'
    """

    def __init__(self, stub: users_pb2_grpc.AuthServiceStub, timeout_seconds: float) -> None:
        self._stub = stub
        self._timeout_seconds = timeout_seconds

    def _options(self, *, anonymous: bool = False, client: str | None = None) -> dict[str, Any]:
        options = call_options(self._timeout_seconds, anonymous=anonymous)
        if client:  # the browser's address, for the users service's per-address throttle
            options["metadata"] += ((FORWARDED_FOR_KEY, client),)
        return options

    async def sign_up(
        self,
        username: str,
        password: str,
        email: str = "",
        display_name: str = "",
        *,
        client: str | None = None,
    ) -> SignedIn:
        """Creates a member account and signs it in (403 when sign-up is closed); `client` is
        the caller's address."""
        message = users_pb2.SignUpRequest(
            username=username, password=password, email=email, display_name=display_name
        )
        options = self._options(anonymous=True, client=client)
        return signed_in(await _answer(self._stub.SignUp(message, **options)))

    async def sign_in(self, username: str, password: str, *, client: str | None = None) -> SignedIn:
        """A token for the account (401 for a wrong username or password; 429 when throttled);
        `client` is the caller's address."""
        message = users_pb2.SignInRequest(username=username, password=password)
        options = self._options(anonymous=True, client=client)
        return signed_in(await _answer(self._stub.SignIn(message, **options)))

    async def who_am_i(self) -> Identity:
        """The caller's identity, as the users service sees it (401 without a valid token)."""
        reply = await _answer(self._stub.WhoAmI(users_pb2.WhoAmIRequest(), **self._options()))
        return identity(reply)

    async def sign_out_everywhere(self) -> None:
        """Makes every token issued to the caller so far stop verifying."""
        message = users_pb2.SignOutEverywhereRequest()
        await _answer(self._stub.SignOutEverywhere(message, **self._options()))

    async def change_password(self, current: str, new: str) -> None:
        """Changes the caller's password; its older tokens stop verifying."""
        message = users_pb2.ChangePasswordRequest(current_password=current, new_password=new)
        await _answer(self._stub.ChangePassword(message, **self._options()))

    async def jwks(self) -> str:
        """The JSON Web Key Set that verifies the users service's tokens, as JSON text."""
        message = users_pb2.GetJwksRequest()
        reply = await _answer(self._stub.GetJwks(message, **self._options(anonymous=True)))
        jwks: str = reply.jwks_json
        return jwks
