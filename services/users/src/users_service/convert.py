"""Conversions between store records and users.v1 messages."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from users.v1 import users_pb2

from users_service.store import ChangeKind, UserChange, UserRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The store's role names and the API's.
ROLES = {"member": users_pb2.ROLE_MEMBER, "admin": users_pb2.ROLE_ADMIN}
ROLE_NAMES = {value: name for name, value in ROLES.items()}


def timestamp(moment: datetime) -> Timestamp:
    """A protobuf Timestamp of an aware datetime (what Timestamp.FromDatetime gives, faster)."""
    stamp = Timestamp()
    _set(stamp, moment)
    return stamp


def timestamp_of(epoch_seconds: float) -> Timestamp:
    """A protobuf Timestamp of seconds since the epoch."""
    stamp = Timestamp()
    stamp.seconds = int(epoch_seconds)
    stamp.nanos = int((epoch_seconds - int(epoch_seconds)) * 1e9)
    return stamp


def _set(stamp: Timestamp, moment: datetime) -> None:
    delta = moment - _EPOCH
    stamp.seconds = delta.days * 86_400 + delta.seconds
    stamp.nanos = delta.microseconds * 1000


def user_message(user: UserRecord) -> users_pb2.User:
    """The users.v1.User of a stored user.

    Its timestamps are set in place: building Timestamps to pass in would copy each one (this
    runs for every user sent, 100,000 times in a full GetUsers stream).
    """
    message = users_pb2.User(
        id=user.id,
        username=user.username,
        email=user.email,
        display_name=user.display_name,
        etag=user.etag,
        role=ROLES[user.role],
        disabled=user.disabled,
    )
    _set(message.create_time, user.create_time)
    _set(message.update_time, user.update_time)
    return message


_EVENT_TYPES = {
    ChangeKind.CREATED: users_pb2.USER_EVENT_TYPE_CREATED,
    ChangeKind.UPDATED: users_pb2.USER_EVENT_TYPE_UPDATED,
    ChangeKind.DELETED: users_pb2.USER_EVENT_TYPE_DELETED,
}


def user_event(change: UserChange) -> users_pb2.UserEvent:
    """The users.v1.UserEvent of a committed change."""
    return users_pb2.UserEvent(
        type=_EVENT_TYPES[change.kind],
        user=user_message(change.user),
        event_time=timestamp(change.time),
    )
