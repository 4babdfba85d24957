"""The limit: a bare grpc.aio server answering GetUser and streaming GetUsers from memory.

No interceptor, no logging, no store: what grpc.aio itself costs per call (`--uvloop`: on uvloop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from users.v1 import users_pb2, users_pb2_grpc

from scripts.bench.peers.canned import canned_user, port_argument


class EchoService(users_pb2_grpc.UserServiceServicer):
    """GetUser and GetUsers over one canned user."""

    def __init__(self, stream_users: int) -> None:
        self._user = canned_user()
        self._stream_users = stream_users

    async def GetUser(
        self, request: users_pb2.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.User:
        return self._user

    async def GetUsers(
        self, request: users_pb2.GetUsersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[users_pb2.User]:
        for _ in range(self._stream_users):
            yield self._user


async def serve(port: int, stream_users: int) -> None:
    server = grpc.aio.server()
    service = EchoService(stream_users)  # type: ignore[abstract]  # the rest: UNIMPLEMENTED
    users_pb2_grpc.add_UserServiceServicer_to_server(service, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    args = port_argument(__doc__.splitlines()[0])
    if args.uvloop:
        import uvloop  # noqa: PLC0415 - only this variant needs it

        uvloop.run(serve(args.port, args.stream_users))
    else:
        asyncio.run(serve(args.port, args.stream_users))


if __name__ == "__main__":
    main()
