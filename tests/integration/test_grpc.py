"""The users service via its published gRPC port: each kind of RPC, errors, reflection, health."""

from __future__ import annotations

import subprocess
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from users.v1 import users_pb2, users_pb2_grpc

from tests.integration.stack import GRPCURL_TLS, ROOT, Stack, admin_token

TIMEOUT = 10
SERVING = health_pb2.HealthCheckResponse.SERVING


def create(users: users_pb2_grpc.UserServiceStub, username: str) -> users_pb2.User:
    request = users_pb2.CreateUserRequest(username=username, email=f"{username}@example.com")
    user: users_pb2.User = users.CreateUser(request, timeout=TIMEOUT)
    return user


def code_of(error: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    code: grpc.StatusCode = error.value.code()
    return code


def test_create_then_get_by_id_and_by_username(
    users: users_pb2_grpc.UserServiceStub, unique: str
) -> None:
    created = create(users, f"{unique}-ada")

    by_id = users.GetUser(users_pb2.GetUserRequest(id=created.id), timeout=TIMEOUT)
    by_name = users.GetUser(users_pb2.GetUserRequest(username=f"{unique}-ADA"), timeout=TIMEOUT)

    assert created.id > 0
    assert by_id == created == by_name
    assert created.email == f"{unique}-ada@example.com"


def test_create_rejects_a_duplicate_username_with_already_exists(
    users: users_pb2_grpc.UserServiceStub, unique: str
) -> None:
    create(users, f"{unique}-dup")
    with pytest.raises(grpc.RpcError) as error:
        create(users, f"{unique}-dup")
    assert code_of(error) == grpc.StatusCode.ALREADY_EXISTS


def test_create_rejects_a_bad_username_with_invalid_argument(
    users: users_pb2_grpc.UserServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        users.CreateUser(users_pb2.CreateUserRequest(username="no spaces!"), timeout=TIMEOUT)
    assert code_of(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert "username" in error.value.details()


def test_get_of_a_missing_user_is_not_found(users: users_pb2_grpc.UserServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as error:
        users.GetUser(users_pb2.GetUserRequest(id=2**62), timeout=TIMEOUT)
    assert code_of(error) == grpc.StatusCode.NOT_FOUND


def test_list_users_pages_through_a_username_prefix(
    users: users_pb2_grpc.UserServiceStub, unique: str
) -> None:
    expected = [create(users, f"{unique}-{n}").username for n in range(5)]
    seen: list[str] = []
    token = ""
    for _ in range(5):
        request = users_pb2.ListUsersRequest(page_size=2, page_token=token, username_prefix=unique)
        page = users.ListUsers(request, timeout=TIMEOUT)
        seen += [user.username for user in page.users]
        token = page.next_page_token
        if not token:
            break
    assert seen == expected


def test_get_users_streams_the_named_users_and_skips_misses(
    users: users_pb2_grpc.UserServiceStub, unique: str
) -> None:
    first, second = create(users, f"{unique}-a"), create(users, f"{unique}-b")
    request = users_pb2.GetUsersRequest(
        ids=[first.id, 2**62], usernames=[second.username, "nobody"]
    )

    streamed = list(users.GetUsers(request, timeout=TIMEOUT))

    assert sorted(user.id for user in streamed) == [first.id, second.id]


def test_import_users_answers_one_summary(
    users: users_pb2_grpc.UserServiceStub, unique: str
) -> None:
    create(users, f"{unique}-old")
    rows = [f"{unique}-new1", f"{unique}-old", "x", f"{unique}-new2"]
    requests = iter(users_pb2.CreateUserRequest(username=name) for name in rows)

    summary = users.ImportUsers(requests, timeout=TIMEOUT)

    assert (summary.created_count, summary.existing_count, summary.rejected_count) == (2, 1, 1)
    assert [(r.index, r.field) for r in summary.rejections] == [(2, "username")]


def test_lookup_users_answers_each_lookup_in_order_without_ending_on_a_miss(
    users: users_pb2_grpc.UserServiceStub, unique: str
) -> None:
    user = create(users, f"{unique}-look")
    lookups = [
        users_pb2.LookupUsersRequest(username="nobody-here"),
        users_pb2.LookupUsersRequest(id=user.id),
        users_pb2.LookupUsersRequest(username=user.username),
    ]

    answers = list(users.LookupUsers(iter(lookups), timeout=TIMEOUT))

    assert [answer.WhichOneof("result") for answer in answers] == ["error", "user", "user"]
    assert answers[0].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert answers[1].user == answers[2].user == user


def test_watch_users_streams_a_created_event(
    users: users_pb2_grpc.UserServiceStub, unique: str
) -> None:
    events = users.WatchUsers(users_pb2.WatchUsersRequest(), timeout=TIMEOUT)
    first: list[users_pb2.UserEvent] = []
    reader = threading.Thread(target=lambda: first.append(next(events)))
    reader.start()
    # The feed starts "from the moment of the call": create until the watcher sees one (bounded).
    created = set()
    for n in range(25):
        created.add(create(users, f"{unique}-w{n}").username)
        reader.join(timeout=0.2)
        if first:
            break
    events.cancel()
    reader.join(timeout=TIMEOUT)
    assert first, "WatchUsers delivered no event"
    assert first[0].type == users_pb2.USER_EVENT_TYPE_CREATED
    assert first[0].user.username in created


def grpcurl(stack: Stack, *args: str) -> str:
    """grpcurl with the dev certificates and the first admin's token (reflection needs one)."""
    token = ["-H", f"authorization: Bearer {admin_token(stack.grpc_target)}"]
    binary = str(ROOT / ".venv" / "bin" / "grpcurl")
    command = [binary, *GRPCURL_TLS, *token, stack.grpc_target, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout


def test_reflection_lists_the_services_to_grpcurl(stack: Stack) -> None:
    listing = grpcurl(stack, "list").split()
    assert {"users.v1.UserService", "grpc.health.v1.Health"} <= set(listing)
    assert any(name.startswith("grpc.reflection.") for name in listing)


def test_reflection_describes_the_api_with_the_proto_comments(stack: Stack) -> None:
    # The image's descriptor set (protos/compile.sh) carries the comments into reflection.
    description = grpcurl(stack, "describe", "users.v1.UserService")
    assert "rpc GetUser ( .users.v1.GetUserRequest ) returns ( .users.v1.User );" in description
    assert "Reads one user by id or by username." in description


@pytest.mark.parametrize("service", ["", "users.v1.UserService"])
def test_health_check_is_serving(channel: grpc.Channel, service: str) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
    assert reply.status == SERVING


@pytest.mark.parametrize("service", ["", "users.v1.UserService"])
def test_health_watch_reports_serving(channel: grpc.Channel, service: str) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    updates = health.Watch(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
    first = next(updates)
    updates.cancel()
    assert first.status == SERVING
