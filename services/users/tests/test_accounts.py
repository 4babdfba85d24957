"""Accounts: sign-up, passwords, roles, disabling, revocation, the first admin, and what a member
may see (OWASP API3 property level), over a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from testkit.tokens import TestIssuer
from users.v1 import users_pb2, users_pb2_grpc
from users_service.server import UsersServer
from users_service.store import NewUser

from .accounts_kit import PASSWORD, Accounts, code_of
from .conftest import auth_settings

ROOT_PASSWORD = "root password for tests"


class Server:
    def __init__(self, server: UsersServer, channel: Any, operator: str) -> None:
        self.server = server
        self.accounts = Accounts(channel, operator)
        self.users = self.accounts.users
        self.auth = self.accounts.auth


@pytest.fixture
async def open_server(start_server: Any, test_issuer: TestIssuer) -> AsyncIterator[Server]:
    auth = auth_settings(
        test_issuer, signup_open=True, admin_username="root", admin_password=ROOT_PASSWORD
    )
    server, port = await start_server(auth=auth)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Server(server, channel, test_issuer.token("admin"))


async def test_sign_up_is_refused_while_closed(stub: Any, channel: Any) -> None:
    auth = users_pb2_grpc.AuthServiceStub(channel)
    request = users_pb2.SignUpRequest(username="ada", password=PASSWORD)
    assert await code_of(auth.SignUp(request)) == "PERMISSION_DENIED"


async def test_sign_up_signs_in_and_refuses_taken_names_and_short_passwords(
    open_server: Server,
) -> None:
    auth = open_server.auth
    signed = await auth.SignUp(
        users_pb2.SignUpRequest(username="Ada", password=PASSWORD, email="ada@example.com")
    )
    assert (signed.user.username, signed.user.role, signed.token_type) == (
        "ada",
        users_pb2.ROLE_MEMBER,
        "Bearer",
    )
    who = await auth.WhoAmI(
        users_pb2.WhoAmIRequest(), metadata=(("authorization", f"Bearer {signed.access_token}"),)
    )
    assert (who.subject, who.user.username) == (str(signed.user.id), "ada")
    again = users_pb2.SignUpRequest(username="ADA", password=PASSWORD)
    assert await code_of(auth.SignUp(again)) == "ALREADY_EXISTS"
    short = users_pb2.SignUpRequest(username="bea", password="short")
    assert await code_of(auth.SignUp(short)) == "INVALID_ARGUMENT"


async def test_the_first_admin_is_made_once_and_signs_in_as_admin(open_server: Server) -> None:
    root = await open_server.accounts.sign_in("root", ROOT_PASSWORD)
    who = await open_server.auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=root.metadata)
    assert who.role == users_pb2.ROLE_ADMIN
    from users_service.accounts import ensure_admin  # noqa: PLC0415

    server = open_server.server
    await ensure_admin(server.store, server.identity.passwords, "root", "another password!")
    assert (await open_server.accounts.sign_in("root", ROOT_PASSWORD)).id == root.id


async def test_a_member_cannot_change_its_own_role_or_disabled_state(open_server: Server) -> None:
    ada = await open_server.accounts.new()
    for path in ("role", "disabled"):
        request = users_pb2.UpdateUserRequest(
            user=users_pb2.User(id=ada.id, role=users_pb2.ROLE_ADMIN),
            update_mask=field_mask_pb2.FieldMask(paths=[path]),
        )
        assert await code_of(open_server.users.UpdateUser(request, metadata=ada.metadata)) == (
            "PERMISSION_DENIED"
        )
    stored = await open_server.server.store.get_user(ada.id)
    assert (stored.role, stored.disabled) == ("member", False)


async def test_a_member_sees_no_other_emails_in_any_read(open_server: Server) -> None:
    accounts, users = open_server.accounts, open_server.users
    ada, bob = await accounts.new(email="ada@example.com"), await accounts.new(email="bob@x.org")
    md = ada.metadata
    seen = {
        "GetUser": [await users.GetUser(users_pb2.GetUserRequest(id=bob.id), metadata=md)],
        "BatchGetUsers": list(
            (
                await users.BatchGetUsers(
                    users_pb2.BatchGetUsersRequest(ids=[ada.id, bob.id]), metadata=md
                )
            ).users
        ),
        "ListUsers": list((await users.ListUsers(users_pb2.ListUsersRequest(), metadata=md)).users),
        "GetUsers": [u async for u in users.GetUsers(users_pb2.GetUsersRequest(), metadata=md)],
        "ExportUsers": [
            u
            async for batch in users.ExportUsers(users_pb2.ExportUsersRequest(), metadata=md)
            for u in batch.users
        ],
        "LookupUsers": [
            r.user
            async for r in users.LookupUsers(
                iter([users_pb2.LookupUsersRequest(id=bob.id)]), metadata=md
            )
        ],
    }
    for method, found in seen.items():
        emails = {u.username: u.email for u in found}
        assert emails.get(bob.username, "") == "", method
        if ada.username in emails:
            assert emails[ada.username] == "ada@example.com", method
    admin = await accounts.new("admin")
    as_admin = await users.GetUser(users_pb2.GetUserRequest(id=bob.id), metadata=admin.metadata)
    assert as_admin.email == "bob@x.org"


async def test_disabling_revokes_and_blocks_sign_in_until_enabled(open_server: Server) -> None:
    accounts, auth = open_server.accounts, open_server.auth
    ada, admin = await accounts.new(), await accounts.new("admin")
    disable = users_pb2.SetDisabledRequest(id=ada.id, disabled=True)
    assert (await auth.SetDisabled(disable, metadata=admin.metadata)).disabled
    assert await code_of(auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=ada.metadata)) == (
        "UNAUTHENTICATED"
    )
    sign_in = users_pb2.SignInRequest(username=ada.username, password=PASSWORD)
    assert await code_of(auth.SignIn(sign_in)) == "PERMISSION_DENIED"
    enable = users_pb2.SetDisabledRequest(id=ada.id, disabled=False)
    await auth.SetDisabled(enable, metadata=admin.metadata)
    assert await code_of(auth.SignIn(sign_in)) == "OK"
    # Enabling again does not bring the old tokens back.
    assert await code_of(auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=ada.metadata)) == (
        "UNAUTHENTICATED"
    )


async def test_changing_the_password_needs_the_current_one_and_revokes(
    open_server: Server,
) -> None:
    accounts, auth = open_server.accounts, open_server.auth
    ada = await accounts.new()
    wrong = users_pb2.ChangePasswordRequest(current_password="not it at all", new_password="x" * 12)
    assert await code_of(auth.ChangePassword(wrong, metadata=ada.metadata)) == "INVALID_ARGUMENT"
    right = users_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password="y" * 16)
    await auth.ChangePassword(right, metadata=ada.metadata)
    assert await code_of(auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=ada.metadata)) == (
        "UNAUTHENTICATED"
    )
    old = users_pb2.SignInRequest(username=ada.username, password=PASSWORD)
    assert await code_of(auth.SignIn(old)) == "UNAUTHENTICATED"
    assert (await accounts.sign_in(ada.username, "y" * 16)).id == ada.id


async def test_a_deleted_users_token_stops_verifying(open_server: Server) -> None:
    ada = await open_server.accounts.new()
    await open_server.users.DeleteUser(
        users_pb2.DeleteUserRequest(id=ada.id), metadata=ada.metadata
    )
    who = open_server.auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=ada.metadata)
    assert await code_of(who) == "UNAUTHENTICATED"


async def test_a_role_change_revokes_the_old_tokens(open_server: Server) -> None:
    accounts, auth = open_server.accounts, open_server.auth
    ada, admin = await accounts.new(), await accounts.new("admin")
    promote = users_pb2.SetRoleRequest(id=ada.id, role=users_pb2.ROLE_ADMIN)
    assert (await auth.SetRole(promote, metadata=admin.metadata)).role == users_pb2.ROLE_ADMIN
    assert await code_of(auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=ada.metadata)) == (
        "UNAUTHENTICATED"
    )
    again = await accounts.sign_in(ada.username)
    who = await auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=again.metadata)
    assert who.role == users_pb2.ROLE_ADMIN
    bad = users_pb2.SetRoleRequest(id=ada.id, role=users_pb2.ROLE_UNSPECIFIED)
    assert await code_of(auth.SetRole(bad, metadata=admin.metadata)) == "INVALID_ARGUMENT"


async def test_an_outdated_hash_is_replaced_at_sign_in(open_server: Server) -> None:
    from argon2 import PasswordHasher  # noqa: PLC0415

    old = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    store = open_server.server.store
    [made] = await store.create_users([NewUser("legacy", password_hash=old)])
    assert made.user is not None
    await open_server.accounts.sign_in("legacy")
    _, stored = await store.get_credentials("legacy")
    assert stored != old
    assert "m=8192,t=1" in stored  # the server's parameters (conftest.auth_settings)
    assert (await open_server.accounts.sign_in("legacy")).id == made.user.id
