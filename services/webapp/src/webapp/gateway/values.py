"""The webapp's values for what the users service returns: plain dicts ready to serve as JSON.

TypedDicts, so each is an ordinary dict at run time: the routes serve them as they are, with no
second conversion on the read path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from google.protobuf import timestamp_pb2
from users.v1 import users_pb2

EVENT_NAMES = {
    users_pb2.USER_EVENT_TYPE_CREATED: "created",
    users_pb2.USER_EVENT_TYPE_UPDATED: "updated",
    users_pb2.USER_EVENT_TYPE_DELETED: "deleted",
}


class User(TypedDict):
    """One user, as the JSON API serves it."""

    id: int
    username: str
    email: str
    display_name: str
    create_time: str  # RFC 3339 in UTC, e.g. 2026-11-22T01:02:03.456789Z
    update_time: str
    etag: str


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
    }


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
