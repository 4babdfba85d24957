"""The grpc.io tutorial's design: a sync grpc.server on ThreadPoolExecutor(max_workers=10).

Same in-memory work as the aio echo (grpc.io Python basics tutorial, route_guide_server.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from users.v1 import users_pb2, users_pb2_grpc

from scripts.bench.peers.canned import canned_user, port_argument


class TutorialService(users_pb2_grpc.UserServiceServicer):
    """GetUser and GetUsers over one canned user, on the pool's threads."""

    def __init__(self, stream_users: int) -> None:
        self._user = canned_user()
        self._stream_users = stream_users

    def GetUser(self, request: users_pb2.GetUserRequest, context: Any) -> users_pb2.User:
        return self._user

    def GetUsers(
        self, request: users_pb2.GetUsersRequest, context: Any
    ) -> Iterator[users_pb2.User]:
        for _ in range(self._stream_users):
            yield self._user


def main() -> None:
    args = port_argument(__doc__.splitlines()[0])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    service = TutorialService(args.stream_users)  # type: ignore[abstract]  # the rest: UNIMPLEMENTED
    users_pb2_grpc.add_UserServiceServicer_to_server(service, server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
