"""Conversions between users.v1 messages and the JSON shapes the webapp serves."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2
from users.v1 import users_pb2

EVENT_NAMES = {
    users_pb2.USER_EVENT_TYPE_CREATED: "created",
    users_pb2.USER_EVENT_TYPE_UPDATED: "updated",
    users_pb2.USER_EVENT_TYPE_DELETED: "deleted",
}


def timestamp(ts: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 in UTC, e.g. 2026-11-22T01:02:03.456789Z."""
    return ts.ToJsonString()


def user_json(user: users_pb2.User) -> dict[str, Any]:
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


def event_json(event: users_pb2.UserEvent) -> dict[str, Any]:
    """The JSON object of one change-feed event."""
    return {
        "type": EVENT_NAMES.get(event.type, "unspecified"),
        "user": user_json(event.user),
        "event_time": timestamp(event.event_time),
    }


def import_summary_json(summary: users_pb2.ImportUsersResponse) -> dict[str, Any]:
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


def etag_header(etag: str) -> str:
    """The HTTP ETag (a quoted string) for a user's etag."""
    return f'"{etag}"'


def etag_from_if_match(if_match: str | None) -> str:
    """The user etag an If-Match header names ('' for none or '*')."""
    if if_match is None or if_match.strip() == "*":
        return ""
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')
