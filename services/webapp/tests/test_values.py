"""The read endpoint's JSON bytes, made without json.dumps, are the bytes JSONResponse makes."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from users.v1 import users_pb2
from webapp.gateway.values import user_json, user_json_bytes

# Quotes, backslashes, control characters, non-ASCII, astral-plane and lone-surrogate-free text.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@given(
    user_id=st.integers(1, 2**63 - 1),
    username=TEXT,
    email=TEXT,
    display_name=TEXT,
    etag=TEXT,
    seconds=st.integers(0, 253402300799),
    nanos=st.sampled_from([0, 1, 120_000_000, 123_456_000, 999_999_999]),
    role=st.sampled_from([users_pb2.ROLE_UNSPECIFIED, users_pb2.ROLE_ADMIN, users_pb2.ROLE_MEMBER]),
    disabled=st.booleans(),
)
def test_user_json_bytes_are_jsonresponse_bytes(
    *,
    user_id: int,
    username: str,
    email: str,
    display_name: str,
    etag: str,
    seconds: int,
    nanos: int,
    role: users_pb2.Role.ValueType,
    disabled: bool,
) -> None:
    user = users_pb2.User(
        id=user_id,
        username=username,
        email=email,
        display_name=display_name,
        etag=etag,
        create_time=Timestamp(seconds=seconds, nanos=nanos),
        update_time=Timestamp(seconds=seconds // 2, nanos=nanos // 3),
        role=role,
        disabled=disabled,
    )
    assert user_json_bytes(user) == JSONResponse(user_json(user)).body
