"""Hostile input: malformed bytes, oversized fields, forged page tokens. Each ends a clear status
with a short detail, never UNKNOWN, and the server logs no traceback."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from testkit.channels import aio_channel
from users.v1 import users_pb2, users_pb2_grpc
from users_service.server import UsersServer

from .conftest import ServerFactory

UNARY = ("CreateUser", "GetUser", "BatchGetUsers", "UpdateUser", "DeleteUser", "ListUsers")
# Not messages of any of the six: truncated, a wrong wire type, invalid UTF-8, an end-group
# tag with no group, deep nesting of unknown groups.
MALFORMED = (
    b"\x0a\x05ab",  # field 1, length 5, 2 bytes follow
    b"\x0d\x01",  # field 1 as fixed32, truncated
    b"\x0a\x02\xff\xfe",  # username: invalid UTF-8
    b"\x0c",  # an end-group tag with no group
    b"\x0b" * 5000 + b"\x0c" * 5000,  # 5,000 nested groups
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # a varint tag too long
)
MAX_DETAIL = 200
CLIENT_ERRORS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OK)


def raw_call(channel: Any, method: str) -> Any:
    """A unary call that sends bytes as they are and returns the raw response bytes."""
    return channel.unary_unary(f"/users.v1.UserService/{method}")


async def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("method", UNARY)
async def test_malformed_messages_end_invalid_argument_without_a_traceback(
    channel: Any, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    malformed = 0
    for payload in MALFORMED:
        code, details = await code_of(raw_call(channel, method)(payload))
        # Some of these parse as one message or another (a wrong wire type is an unknown
        # field): those end as any invalid request would.
        assert code in CLIENT_ERRORS, (payload[:20], code, details)
        assert len(details) <= MAX_DETAIL
        malformed += "is not a valid users.v1." in details
    assert malformed >= 3
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    warnings = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert len(warnings) <= 1, "client errors are logged at most once a second"


async def test_malformed_stream_messages_end_invalid_argument(channel: Any) -> None:
    for method in ("ImportUsers", "LookupUsers"):
        call = channel.stream_stream(f"/users.v1.UserService/{method}")(iter([b"\x12\x02\xff\xfe"]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method


async def test_a_long_username_lookup_is_refused_and_never_echoed(stub: Any) -> None:
    huge = "x" * 60_000  # under the request size cap (a 100 KB one is refused by size)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetUser(users_pb2.GetUserRequest(username=huge))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 32 characters" in (caught.value.details() or "")
    trailers = b"".join(
        v if isinstance(v, bytes) else v.encode() for _, v in caught.value.trailing_metadata()
    )
    assert len(trailers) < 1000


async def test_update_mask_paths_are_quoted_short(stub: Any) -> None:
    request = users_pb2.UpdateUserRequest(
        user=users_pb2.User(id=1, username="ok"),
        update_mask=field_mask_pb2.FieldMask(paths=["p" * 50_000]),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateUser(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(caught.value.details() or "") <= MAX_DETAIL


def forged(payload: object) -> str:
    raw = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


NO_FILTER = hashlib.sha256(b"").hexdigest()[:16]  # what a token for no username_prefix holds
FORGED_TOKENS = {
    "deep nesting": forged(b"[" * 40_000),  # RecursionError in json, were it parsed
    "deep nesting, short": forged(b"[" * 140),
    "nested json": forged(b'{"v": 1, "after": ' + b"[" * 100 + b"]" * 100 + b', "filter": ""}'),
    "id of 2^63": forged({"v": 1, "after": 2**63, "filter": NO_FILTER}),
    "id of 2^64": forged({"v": 1, "after": 2**64, "filter": NO_FILTER}),
    "a float": forged({"v": 1, "after": 1.5, "filter": NO_FILTER}),
    "a bool": forged({"v": 1, "after": True, "filter": NO_FILTER}),
    "a list": forged([1, 2, 3]),
    "not base64": "!!!",
    "huge": "A" * 60_000,
    "filter not a string": forged({"v": 1, "after": 3, "filter": 7}),
}


@pytest.mark.parametrize("kind", FORGED_TOKENS)
async def test_forged_page_tokens_end_invalid_argument(
    stub: Any, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = users_pb2.ListUsersRequest(page_token=FORGED_TOKENS[kind])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListUsers(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert "page_token" in (caught.value.details() or "")
    assert not [r for r in caplog.records if r.exc_info]


async def test_get_users_names_at_most_1000_of_each(stub: Any) -> None:
    for request in (
        users_pb2.GetUsersRequest(ids=[1] * 1001),
        users_pb2.GetUsersRequest(usernames=["abc"] * 1001),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.GetUsers(request):
                pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 1000 users, not 1001" in (caught.value.details() or "")


async def test_a_request_over_the_size_cap_is_refused_before_it_is_parsed(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.GetUsers(users_pb2.GetUsersRequest(ids=[0] * 100_000)):
            pass
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "65536" in (caught.value.details() or "")  # the cap, named


async def test_reflection_can_be_turned_off(start_server: ServerFactory, admin_token: str) -> None:
    _, port = await start_server(reflection=False)
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")(
            iter([b"\x3a\x00"])
        )  # list_services
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_reflection_answers_by_default(
    server: tuple[UsersServer, int], admin_token: str
) -> None:
    async with aio_channel(f"127.0.0.1:{server[1]}", token=admin_token) as channel:
        call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")(
            iter([b"\x3a\x00"])
        )
        answers = [answer async for answer in call]
    assert b"users.v1.UserService" in answers[0]


async def test_stubs_still_work(stub: Any) -> None:
    user = await stub.CreateUser(users_pb2.CreateUserRequest(username="fine"))
    assert (await stub.GetUser(users_pb2.GetUserRequest(username="FINE"))).id == user.id
    assert users_pb2_grpc  # the stubs the other tests use
