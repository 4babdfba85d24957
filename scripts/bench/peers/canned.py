"""The one user every peer serves from memory, shaped like the users the benchmark seeds."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from users.v1 import users_pb2

STREAM_USERS = 100_000
_MOMENT = datetime(2026, 11, 22, 3, 4, 5, 678901, UTC)


def seeded_username(index: int) -> str:
    """The username of the index-th user the benchmark seeds (and of the canned user)."""
    return f"user{index:07d}"


def canned_user(user_id: int = 4242) -> users_pb2.User:
    """A users.v1.User the size of a seeded one."""
    stamp = Timestamp()
    stamp.FromDatetime(_MOMENT)
    name = seeded_username(user_id)
    return users_pb2.User(
        id=user_id,
        username=name,
        email=f"{name}@example.com",
        display_name=f"User {user_id}",
        create_time=stamp,
        update_time=stamp,
        etag="0123456789abcdef",
    )


def port_argument(description: str) -> argparse.Namespace:
    """Parses `--port N` (and `--stream-users N`) for a peer program."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stream-users", type=int, default=STREAM_USERS)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    parser.add_argument("--users-target", default="", help="host:port of the users service")
    return parser.parse_args()
