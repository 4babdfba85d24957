"""The database lives on a named volume: restarts and down/up keep every user."""

from __future__ import annotations

import httpx
from users.v1 import users_pb2, users_pb2_grpc

from tests.integration.stack import Stack, tls_channel

TIMEOUT = 10


def create_many(stack: Stack, prefix: str, count: int) -> list[users_pb2.User]:
    with tls_channel(stack.grpc_target) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        return [
            users.CreateUser(users_pb2.CreateUserRequest(username=f"{prefix}-{n}"), timeout=TIMEOUT)
            for n in range(count)
        ]


def read_back(stack: Stack, created: list[users_pb2.User]) -> list[users_pb2.User]:
    """The users as a new client reads them now (waiting for the service to be reachable)."""
    with tls_channel(stack.grpc_target) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        request = users_pb2.GetUsersRequest(ids=[user.id for user in created])
        found = users.GetUsers(request, timeout=TIMEOUT, wait_for_ready=True)
        return sorted(found, key=lambda user: user.id)


def test_users_survive_a_restart_of_the_users_container(stack: Stack, unique: str) -> None:
    created = create_many(stack, unique, 20)

    stack.compose("restart", "users")
    stack.wait_health("users", "healthy")

    assert read_back(stack, created) == created


def test_users_survive_down_and_up_with_the_volume_kept(stack: Stack, unique: str) -> None:
    created = create_many(stack, unique, 20)

    stack.compose("down")
    stack.compose("up", "--wait", "--no-build")

    assert read_back(stack, created) == created
    with httpx.Client(base_url=stack.http_url, timeout=10, headers=stack.admin_headers) as http:
        response = http.get(f"/api/v1/users/by-username/{unique}-7")
    assert response.status_code == 200
    assert response.json()["id"] == created[7].id
