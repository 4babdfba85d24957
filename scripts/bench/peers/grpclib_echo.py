"""A grpclib server (pure-Python HTTP/2) doing the same in-memory work as the aio echo.

grpclib needs no generated stubs of its own: the handler mapping is written out here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from grpclib.const import Cardinality, Handler
from grpclib.server import Server, Stream
from users.v1 import users_pb2

from scripts.bench.peers.canned import canned_user, port_argument

_PREFIX = "/users.v1.UserService/"


class EchoService:
    """GetUser and GetUsers over one canned user."""

    def __init__(self, stream_users: int) -> None:
        self._user = canned_user()
        self._stream_users = stream_users

    async def get_user(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(self._user)

    async def get_users(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        for _ in range(self._stream_users):
            await stream.send_message(self._user)

    def __mapping__(self) -> dict[str, Handler]:
        return {
            _PREFIX + "GetUser": Handler(
                self.get_user, Cardinality.UNARY_UNARY, users_pb2.GetUserRequest, users_pb2.User
            ),
            _PREFIX + "GetUsers": Handler(
                self.get_users, Cardinality.UNARY_STREAM, users_pb2.GetUsersRequest, users_pb2.User
            ),
        }


async def serve(port: int, stream_users: int) -> None:
    server = Server([EchoService(stream_users)])
    await server.start("127.0.0.1", port)
    await server.wait_closed()


def main() -> None:
    args = port_argument(__doc__.splitlines()[0])
    asyncio.run(serve(args.port, args.stream_users))


if __name__ == "__main__":
    main()
