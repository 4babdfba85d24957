"""Access over the published port: anonymous calls refused, `make token`'s admin token accepted,
health anonymous, the token's lifetime and its revocation."""

from __future__ import annotations

import os
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from users.v1 import users_pb2, users_pb2_grpc

from tests.integration.stack import ADMIN_PASSWORD, ROOT, Stack, client_credentials, tls_channel


def make_token(stack: Stack) -> str:
    """`make -s token` against the stack's published port, as a developer runs it."""
    result = subprocess.run(
        ["make", "-s", "token", f"TARGET={stack.grpc_target}"],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_an_anonymous_create_is_unauthenticated(stack: Stack, unique: str) -> None:
    with tls_channel(stack.grpc_target, anonymous=True) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            users.CreateUser(users_pb2.CreateUserRequest(username=f"{unique}-anon"), timeout=10)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_health_answers_anonymously(stack: Stack) -> None:
    with tls_channel(stack.grpc_target, anonymous=True) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="users.v1.UserService")
        assert health.Check(request, timeout=10).status == health_pb2.HealthCheckResponse.SERVING


def test_make_token_gives_an_admin_token_that_creates(stack: Stack, unique: str) -> None:
    token = make_token(stack)
    assert ADMIN_PASSWORD not in token
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.secure_channel(stack.grpc_target, client_credentials()) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        made = users.CreateUser(
            users_pb2.CreateUserRequest(username=f"{unique}-tok"), metadata=metadata, timeout=10
        )
        who = users_pb2_grpc.AuthServiceStub(channel).WhoAmI(
            users_pb2.WhoAmIRequest(), metadata=metadata, timeout=10
        )
    assert made.id > 0
    assert (who.role, who.user.username) == (users_pb2.ROLE_ADMIN, "admin")


def test_a_members_token_is_revoked_by_sign_out_everywhere(stack: Stack, unique: str) -> None:
    with tls_channel(stack.grpc_target) as admin_channel:
        made = users_pb2_grpc.UserServiceStub(admin_channel).CreateUser(
            users_pb2.CreateUserRequest(username=f"{unique}-m"), timeout=10
        )
        users_pb2_grpc.AuthServiceStub(admin_channel).ResetPassword(
            users_pb2.ResetPasswordRequest(id=made.id, new_password="a member's password"),
            timeout=30,
        )
    with tls_channel(stack.grpc_target, anonymous=True) as channel:
        auth = users_pb2_grpc.AuthServiceStub(channel)
        signed = auth.SignIn(
            users_pb2.SignInRequest(username=made.username, password="a member's password"),
            timeout=30,
        )
        member = (("authorization", f"Bearer {signed.access_token}"),)
        assert (
            auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=member, timeout=10).user.id == made.id
        )
        auth.SignOutEverywhere(users_pb2.SignOutEverywhereRequest(), metadata=member, timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=member, timeout=10)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
