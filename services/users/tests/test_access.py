"""The authorization table, cell by cell (OWASP API1 object level, API5 function level, API3
property level): every method of every service, called anonymously, by a member on its own
resources and on another's, and by an admin, over a real server with real tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from testkit.tokens import TestIssuer
from users.v1 import users_pb2, users_pb2_grpc
from users_service.access import REFLECTION_METHODS, TABLE, Who, rule_for

from .accounts_kit import PASSWORD, Account, Accounts, code_of
from .conftest import auth_settings

NEW_PASSWORD = "a brand new secret"
OK, UNAUTH, DENIED, NA = "OK", "UNAUTHENTICATED", "PERMISSION_DENIED", "-"
WHO = ("anonymous", "member", "member on another's", "admin")
# method -> the code for each of WHO; NA where a method has no "another's" resource.
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    "UserService/CreateUser": (UNAUTH, DENIED, NA, OK),
    "UserService/GetUser": (UNAUTH, OK, OK, OK),
    "UserService/BatchGetUsers": (UNAUTH, OK, OK, OK),
    "UserService/UpdateUser": (UNAUTH, OK, DENIED, OK),
    "UserService/DeleteUser": (UNAUTH, OK, DENIED, OK),
    "UserService/ListUsers": (UNAUTH, OK, NA, OK),
    "UserService/GetUsers": (UNAUTH, OK, OK, OK),
    "UserService/ExportUsers": (UNAUTH, OK, NA, OK),
    "UserService/ImportUsers": (UNAUTH, DENIED, NA, OK),
    "UserService/LookupUsers": (UNAUTH, OK, OK, OK),
    "UserService/WatchUsers": (UNAUTH, DENIED, NA, OK),
    "AuthService/SignUp": (OK, OK, NA, OK),
    "AuthService/SignIn": (OK, OK, NA, OK),
    "AuthService/ChangePassword": (UNAUTH, OK, NA, OK),
    "AuthService/SignOutEverywhere": (UNAUTH, OK, NA, OK),
    "AuthService/WhoAmI": (UNAUTH, OK, NA, OK),
    "AuthService/SetRole": (UNAUTH, DENIED, DENIED, OK),
    "AuthService/SetDisabled": (UNAUTH, DENIED, DENIED, OK),
    "AuthService/ResetPassword": (UNAUTH, DENIED, DENIED, OK),
    "AuthService/GetJwks": (OK, OK, NA, OK),
    "Health/Check": (OK, OK, NA, OK),
    "Health/Watch": (OK, OK, NA, OK),
    # Anyone may call it; the health servicer does not implement it (yet).
    "Health/List": ("UNIMPLEMENTED", "UNIMPLEMENTED", NA, "UNIMPLEMENTED"),
    "ServerReflection/ServerReflectionInfo": (UNAUTH, OK, NA, OK),
}

Md = tuple[tuple[str, str], ...]
# (the stubs, the caller's metadata, the caller (None: anonymous), the target user) -> the call
Cell = Callable[["Stubs", Md, Account | None, Account], Awaitable[Any]]


class Stubs:
    def __init__(self, channel: Any) -> None:
        self.users = users_pb2_grpc.UserServiceStub(channel)
        self.auth = users_pb2_grpc.AuthServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)
        self.reflection = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )


async def _drain(stream: Any) -> list[Any]:
    return [message async for message in stream]


async def _first_or_open(stream: Any) -> None:
    """A stream that stays open (a watch) counts as OK; a refused one raises."""
    try:
        await asyncio.wait_for(stream.read(), 0.5)
    except TimeoutError:
        stream.cancel()


async def _sign_up(s: Stubs, md: Md, me: Account | None, target: Account) -> Any:
    name = f"new{target.id}{len(md)}{'x' if me is None else me.id}"
    return await s.auth.SignUp(
        users_pb2.SignUpRequest(username=name, password=PASSWORD), metadata=md
    )


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


CELLS: dict[str, Cell] = {
    "UserService/CreateUser": lambda s, md, me, t: s.users.CreateUser(
        users_pb2.CreateUserRequest(username=f"made{t.id}"), metadata=md
    ),
    "UserService/GetUser": lambda s, md, me, t: s.users.GetUser(
        users_pb2.GetUserRequest(id=t.id), metadata=md
    ),
    "UserService/BatchGetUsers": lambda s, md, me, t: s.users.BatchGetUsers(
        users_pb2.BatchGetUsersRequest(ids=[t.id]), metadata=md
    ),
    "UserService/UpdateUser": lambda s, md, me, t: s.users.UpdateUser(
        users_pb2.UpdateUserRequest(
            user=users_pb2.User(id=t.id, display_name="Changed"), update_mask=_mask("display_name")
        ),
        metadata=md,
    ),
    "UserService/DeleteUser": lambda s, md, me, t: s.users.DeleteUser(
        users_pb2.DeleteUserRequest(id=t.id), metadata=md
    ),
    "UserService/ListUsers": lambda s, md, me, t: s.users.ListUsers(
        users_pb2.ListUsersRequest(), metadata=md
    ),
    "UserService/GetUsers": lambda s, md, me, t: _drain(
        s.users.GetUsers(users_pb2.GetUsersRequest(ids=[t.id]), metadata=md)
    ),
    "UserService/ExportUsers": lambda s, md, me, t: _drain(
        s.users.ExportUsers(users_pb2.ExportUsersRequest(), metadata=md)
    ),
    "UserService/ImportUsers": lambda s, md, me, t: s.users.ImportUsers(
        iter([users_pb2.CreateUserRequest(username=f"imported{t.id}")]), metadata=md
    ),
    "UserService/LookupUsers": lambda s, md, me, t: _drain(
        s.users.LookupUsers(iter([users_pb2.LookupUsersRequest(id=t.id)]), metadata=md)
    ),
    "UserService/WatchUsers": lambda s, md, me, t: _first_or_open(
        s.users.WatchUsers(users_pb2.WatchUsersRequest(), metadata=md)
    ),
    "AuthService/SignUp": _sign_up,
    "AuthService/SignIn": lambda s, md, me, t: s.auth.SignIn(
        users_pb2.SignInRequest(username=t.username, password=PASSWORD), metadata=md
    ),
    "AuthService/ChangePassword": lambda s, md, me, t: s.auth.ChangePassword(
        users_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD),
        metadata=md,
    ),
    "AuthService/SignOutEverywhere": lambda s, md, me, t: s.auth.SignOutEverywhere(
        users_pb2.SignOutEverywhereRequest(), metadata=md
    ),
    "AuthService/WhoAmI": lambda s, md, me, t: s.auth.WhoAmI(
        users_pb2.WhoAmIRequest(), metadata=md
    ),
    "AuthService/SetRole": lambda s, md, me, t: s.auth.SetRole(
        users_pb2.SetRoleRequest(id=t.id, role=users_pb2.ROLE_ADMIN), metadata=md
    ),
    "AuthService/SetDisabled": lambda s, md, me, t: s.auth.SetDisabled(
        users_pb2.SetDisabledRequest(id=t.id, disabled=True), metadata=md
    ),
    "AuthService/ResetPassword": lambda s, md, me, t: s.auth.ResetPassword(
        users_pb2.ResetPasswordRequest(id=t.id, new_password=NEW_PASSWORD), metadata=md
    ),
    "AuthService/GetJwks": lambda s, md, me, t: s.auth.GetJwks(
        users_pb2.GetJwksRequest(), metadata=md
    ),
    "Health/Check": lambda s, md, me, t: s.health.Check(
        health_pb2.HealthCheckRequest(), metadata=md
    ),
    "Health/Watch": lambda s, md, me, t: _first_or_open(
        s.health.Watch(health_pb2.HealthCheckRequest(), metadata=md)
    ),
    "Health/List": lambda s, md, me, t: s.health.List(health_pb2.HealthListRequest(), metadata=md),
    "ServerReflection/ServerReflectionInfo": lambda s, md, me, t: _drain(
        s.reflection(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=md)
    ),
}


@pytest.fixture
async def open_server(
    start_server: Any, test_issuer: TestIssuer
) -> AsyncIterator[tuple[Accounts, Stubs]]:
    """A server with sign-up open, an anonymous channel to it, and an operator to make accounts."""
    _, port = await start_server(auth=auth_settings(test_issuer, signup_open=True))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Accounts(channel, test_issuer.token("admin")), Stubs(channel)


async def _cell(accounts: Accounts, stubs: Stubs, method: str, who: str) -> str:
    """One cell, with accounts of its own (some calls revoke or delete them): the caller, and
    the user it acts on (itself, or another for "member on another's" and "admin")."""
    me = None if who == "anonymous" else await accounts.new("admin" if who == "admin" else "member")
    on_another = who in ("anonymous", "member on another's", "admin")
    target = await accounts.new() if on_another or me is None else me
    md = () if me is None else me.metadata
    return await code_of(CELLS[method](stubs, md, me, target))


@pytest.mark.slow
async def test_every_method_answers_every_kind_of_caller_as_the_table_says(
    open_server: tuple[Accounts, Stubs],
) -> None:
    seen: dict[str, tuple[str, ...]] = {}
    for method, expected in EXPECTED.items():
        seen[method] = tuple(
            [
                NA if want == NA else await _cell(*open_server, method, who)
                for who, want in zip(WHO, expected, strict=True)
            ]
        )
    wrong = {m: (seen[m], EXPECTED[m]) for m in EXPECTED if seen[m] != EXPECTED[m]}
    assert not wrong, (
        "method: (seen, expected) per "
        + repr(WHO)
        + "\n"
        + "\n".join(f"{m}: {got}" for m, got in wrong.items())
    )


def _short(full: str) -> str:
    """'/users.v1.UserService/GetUser' -> 'UserService/GetUser'."""
    service, method = full.strip("/").split("/")
    return f"{service.split('.')[-1]}/{method}"


def test_the_table_has_a_row_for_every_method_of_every_service() -> None:
    services = [
        users_pb2.DESCRIPTOR.services_by_name["UserService"],
        users_pb2.DESCRIPTOR.services_by_name["AuthService"],
        health_pb2.DESCRIPTOR.services_by_name["Health"],
    ]
    methods = [f"/{s.full_name}/{m.name}" for s in services for m in s.methods]
    assert [m for m in methods if m not in TABLE] == []
    # ... and the test above calls each of them (reflection besides).
    assert sorted(map(_short, [*methods, REFLECTION_METHODS[1]])) == sorted(EXPECTED)
    # A method without a row is refused to everyone, admins included.
    missing = rule_for("/users.v1.UserService/NotYetWritten", anonymous_reflection=True)
    assert missing.who is Who.NOBODY
    for method in REFLECTION_METHODS:
        assert rule_for(method, anonymous_reflection=False).who is Who.SIGNED_IN
        assert rule_for(method, anonymous_reflection=True).who is Who.ANYONE


async def test_an_admitted_import_sends_its_headers_before_the_first_row(
    channel: Any, anonymous_channel: Any
) -> None:
    call = users_pb2_grpc.UserServiceStub(channel).ImportUsers()
    headers = dict(await asyncio.wait_for(call.initial_metadata(), 5))
    assert "x-request-id" in headers
    await call.write(users_pb2.CreateUserRequest(username="first"))
    await call.done_writing()
    assert (await call).created_count == 1
    refused = users_pb2_grpc.UserServiceStub(anonymous_channel).ImportUsers()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await refused
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
