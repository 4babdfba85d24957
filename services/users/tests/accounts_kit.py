"""Accounts for the access tests: real sign-ups and sign-ins against a real server."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
from users.v1 import users_pb2, users_pb2_grpc

PASSWORD = "correct horse battery"
_names = itertools.count(1)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that carries `token`."""
    return (("authorization", f"Bearer {token}"),)


@dataclass(frozen=True)
class Account:
    """A signed-in account: its id, name and token."""

    id: int
    username: str
    token: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.token)


class Accounts:
    """Makes accounts through the API, as an operator (the tests' issuer's admin) would.

    Example:
        >>> accounts = Accounts(channel, operator_token)
        >>> ada = await accounts.new("member")
    """

    def __init__(self, channel: Any, operator_token: str) -> None:
        self.users = users_pb2_grpc.UserServiceStub(channel)
        self.auth = users_pb2_grpc.AuthServiceStub(channel)
        self.operator = bearer(operator_token)

    async def new(self, role: str = "member", email: str = "") -> Account:
        """A new account with PASSWORD and `role`, signed in."""
        name = f"acct{next(_names)}"
        user = await self.users.CreateUser(
            users_pb2.CreateUserRequest(username=name, email=email or f"{name}@example.com"),
            metadata=self.operator,
        )
        await self.auth.ResetPassword(
            users_pb2.ResetPasswordRequest(id=user.id, new_password=PASSWORD),
            metadata=self.operator,
        )
        if role == "admin":
            await self.auth.SetRole(
                users_pb2.SetRoleRequest(id=user.id, role=users_pb2.ROLE_ADMIN),
                metadata=self.operator,
            )
        return await self.sign_in(name)

    async def sign_in(self, username: str, password: str = PASSWORD) -> Account:
        signed = await self.auth.SignIn(
            users_pb2.SignInRequest(username=username, password=password)
        )
        return Account(signed.user.id, signed.user.username, signed.access_token)


async def code_of(call: Awaitable[Any]) -> str:
    """The status code name a call ends with."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return str(error.code().name)
    return "OK"
