"""The webapp's values for what the users service returns: plain dicts ready to serve as JSON.

TypedDicts, so each is an ordinary dict at run time: the routes serve them as they are, with no
second conversion on the read path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring  # C, as json.dumps uses
from typing import TypedDict

from google.protobuf import timestamp_pb2
from users.v1 import users_pb2

EVENT_NAMES = {
    users_pb2.USER_EVENT_TYPE_CREATED: "created",
    users_pb2.USER_EVENT_TYPE_UPDATED: "updated",
    users_pb2.USER_EVENT_TYPE_DELETED: "deleted",
}
# A user created before accounts existed has no role yet: it reads as a member.
ROLE_NAMES: dict[int, str] = {users_pb2.ROLE_ADMIN: "admin", users_pb2.ROLE_MEMBER: "member"}


class User(TypedDict):
    """One user, as the JSON API serves it."""

    id: int
    username: str
    email: str
    display_name: str
    create_time: str  # RFC 3339 in UTC, e.g. 2026-11-22T01:02:03.456789Z
    update_time: str
    etag: str
    role: str  # admin or member
    disabled: bool


class UserEvent(TypedDict):
    """One change-feed event: `type` is created, updated or deleted."""

    type: str
    user: User
    event_time: str


class Rejection(TypedDict):
    """An import row the users service refused, by its index among the rows sent."""

    index: int
    username: str
    field: str
    reason: str


class ImportSummary(TypedDict):
    """What an import did."""

    created_count: int
    existing_count: int
    rejected_count: int
    rejections: list[Rejection]


@dataclass(frozen=True)
class SignedIn:
    """An access token the users service issued, and its account."""

    access_token: str
    expires: datetime  # aware, UTC
    user: User


@dataclass(frozen=True)
class Identity:
    """Who the users service says the caller is; `user` is None for an external issuer's token."""

    subject: str
    issuer: str
    role: str  # admin or member
    user: User | None


@dataclass(frozen=True)
class Page:
    """One page of users; `next_page_token` is empty on the last, `prev_page_token` on the first."""

    users: list[User]
    next_page_token: str
    prev_page_token: str = ""


def timestamp(ts: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 in UTC, e.g. 2026-11-22T01:02:03.456789Z."""
    return ts.ToJsonString()


def user_json(user: users_pb2.User) -> User:
    """The JSON object of one user."""
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "create_time": timestamp(user.create_time),
        "update_time": timestamp(user.update_time),
        "etag": user.etag,
        "role": role_name(user.role),
        "disabled": user.disabled,
    }


def user_json_bytes(user: users_pb2.User) -> bytes:
    """The JSON document of one user, as the API serves it: the same bytes as JSONResponse makes
    of user_json(user) (compact, UTF-8, non-ASCII unescaped), without the dict and the encoder
    json.dumps builds for each call (the read endpoint's hot path: docs/performance.md)."""
    disabled = "true" if user.disabled else "false"
    return (
        f'{{"id":{user.id},"username":{encode_basestring(user.username)},'
        f'"email":{encode_basestring(user.email)},'
        f'"display_name":{encode_basestring(user.display_name)},'
        f'"create_time":"{timestamp(user.create_time)}",'
        f'"update_time":"{timestamp(user.update_time)}",'
        f'"etag":{encode_basestring(user.etag)},"role":"{role_name(user.role)}",'
        f'"disabled":{disabled}}}'
    ).encode()


def role_name(role: users_pb2.Role.ValueType) -> str:
    """admin or member."""
    return ROLE_NAMES.get(role, "member")


def signed_in(reply: users_pb2.SignInResponse) -> SignedIn:
    """The token and account of a SignIn or SignUp reply."""
    expires = reply.expire_time.ToDatetime(tzinfo=UTC)
    return SignedIn(reply.access_token, expires, user_json(reply.user))


def identity(reply: users_pb2.WhoAmIResponse) -> Identity:
    """The caller's identity from a WhoAmI reply."""
    user = user_json(reply.user) if reply.HasField("user") else None
    return Identity(reply.subject, reply.issuer, role_name(reply.role), user)


def event_json(event: users_pb2.UserEvent) -> UserEvent:
    """The JSON object of one change-feed event."""
    return {
        "type": EVENT_NAMES.get(event.type, "unspecified"),
        "user": user_json(event.user),
        "event_time": timestamp(event.event_time),
    }


def import_summary_json(summary: users_pb2.ImportUsersResponse) -> ImportSummary:
    """The JSON object of an ImportUsers summary."""
    return {
        "created_count": summary.created_count,
        "existing_count": summary.existing_count,
        "rejected_count": summary.rejected_count,
        "rejections": [
            {"index": r.index, "username": r.username, "field": r.field, "reason": r.reason}
            for r in summary.rejections
        ],
    }
