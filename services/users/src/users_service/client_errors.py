"""Errors a client can cause: statuses with short fixed details, logged compactly and sparingly.

A request that does not parse is the client's fault, not a crash of ours: grpc would answer it
UNKNOWN ("Unexpected <class DecodeError>") and log a traceback per call. Here the deserializer
never raises; it hands the handler a `Malformed` marker, and the call ends INVALID_ARGUMENT.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from users_service.validation import FieldViolation, InvalidArgument

logger = logging.getLogger(__name__)

# At most one WARNING line per interval for client errors; the others are counted in the next.
WARNING_INTERVAL_SECONDS = 1.0


def clip(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters (an error detail's whole length)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Malformed:
    """What the deserializer returns for bytes that are not a valid message."""

    __slots__ = ("message_name",)

    def __init__(self, message_name: str) -> None:
        self.message_name = message_name

    def error(self) -> InvalidArgument:
        return InvalidArgument(
            [FieldViolation("request", f"is not a valid {self.message_name} message")]
        )


class WarningLimiter:
    """One compact WARNING line per interval at most; lines held back are counted in the next.

    Example:
        >>> limiter = WarningLimiter(logger)
        >>> limiter.warn("malformed request", "/users.v1.UserService/GetUser")
    """

    def __init__(self, log: logging.Logger, interval: float = WARNING_INTERVAL_SECONDS) -> None:
        self._log = log
        self._interval = interval
        self._next = 0.0
        self._held = 0

    def warn(self, what: str, method: str) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return
        self._next = now + self._interval
        held, self._held = self._held, 0
        self._log.warning("%s in %s (%d more held back)", what, method, held)


warnings = WarningLimiter(logger)


def lenient(deserializer: Callable[[bytes], Any] | None, method: str) -> Any:
    """`deserializer` made to return a `Malformed` marker instead of raising."""
    if deserializer is None:
        return None
    name = _message_name(deserializer)

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:  # noqa: BLE001 - any failure to parse is the client's bytes' fault
            warnings.warn("malformed request", method)
            return Malformed(name)

    return deserialize


def _message_name(deserializer: Callable[[bytes], Any]) -> str:
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request"))


def checked(request: Any, *, stream: bool) -> Any:
    """The request, or (`stream`: a stream of requests) one that raises InvalidArgument at a bad
    one. Told, not probed: hasattr(message, "__aiter__") raises and catches an AttributeError
    inside protobuf on every unary call."""
    if stream:
        return _checked_stream(request)
    if isinstance(request, Malformed):
        raise request.error()
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Malformed):
            raise request.error()
        yield request
