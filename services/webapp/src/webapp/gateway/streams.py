"""The users service's streams in the webapp's terms: users as they come, the change feed, imports.

Each wraps one gRPC call; its failures come out as UsersServiceError (gateway/errors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any

import grpc
from users.v1 import users_pb2, users_pb2_grpc

from webapp.gateway.errors import users_error
from webapp.gateway.values import (
    ImportSummary,
    User,
    UserEvent,
    event_json,
    import_summary_json,
    user_json,
)

# How long a watch waits for the users service to confirm it is subscribed (its headers).
SUBSCRIBE_WAIT_SECONDS = 0.5


class UserStream:
    """Users from one call, a batch at a time as they arrive: `first` (the first batch, read
    already; None when there is no user), then the rest. Every user comes from ExportUsers (many
    users a message, in id order); named users from GetUsers (one a message).

    >>> stream = await UserStream.open(stub, [1, 2], [], options)  # doctest: +SKIP
    >>> rest = [user async for batch in stream for user in batch]  # doctest: +SKIP
    """

    def __init__(self, call: grpc.aio.UnaryStreamCall, first: list[User] | None) -> None:
        self._call = call
        self.first = first

    @classmethod
    async def open(
        cls,
        stub: users_pb2_grpc.UserServiceStub,
        ids: list[int],
        usernames: list[str],
        options: dict[str, Any],
    ) -> UserStream:
        """Starts the call and reads its first batch, so an early failure raises here."""
        call: grpc.aio.UnaryStreamCall
        if ids or usernames:
            request = users_pb2.GetUsersRequest(ids=ids, usernames=usernames)
            call = stub.GetUsers(request, **options)
        else:
            call = stub.ExportUsers(users_pb2.ExportUsersRequest(), **options)
        try:
            return cls(call, await _next_batch(call))
        except BaseException:
            call.cancel()
            raise

    def __aiter__(self) -> AsyncIterator[list[User]]:
        return self

    async def __anext__(self) -> list[User]:
        if (users := await _next_batch(self._call)) is None:
            raise StopAsyncIteration
        return users

    def close(self) -> None:
        """Ends the call (a no-op once it is done)."""
        self._call.cancel()


async def _next_batch(call: grpc.aio.UnaryStreamCall) -> list[User] | None:
    """The users of the call's next message (a UserBatch, or one User), None at its end."""
    try:
        message = await call.read()
    except grpc.aio.AioRpcError as exc:
        raise users_error(exc) from exc
    if message is grpc.aio.EOF:
        return None
    if isinstance(message, users_pb2.UserBatch):
        return [user_json(user) for user in message.users]
    return [user_json(message)]


class UserWatch:
    """The WatchUsers change feed, from the moment it is opened.

    >>> watch = await UserWatch.open(stub, options)  # doctest: +SKIP
    >>> event = await watch.next()  # None when the users service ends the feed
    """

    def __init__(self, call: grpc.aio.UnaryStreamCall) -> None:
        self._call = call

    @classmethod
    async def open(cls, stub: users_pb2_grpc.UserServiceStub, options: dict[str, Any]) -> UserWatch:
        """Subscribes; a users service that is down raises here, not as an empty feed."""
        call = stub.WatchUsers(users_pb2.WatchUsersRequest(), **options)
        try:
            await call.wait_for_connection()
            # The users service sends its headers as the watch starts: once they are here, events
            # made after this call began are in the feed. (Bounded: other servers may not.)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(call.initial_metadata()), SUBSCRIBE_WAIT_SECONDS
                )
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            raise users_error(exc) from exc
        except BaseException:
            call.cancel()
            raise
        return cls(call)

    async def next(self) -> UserEvent | None:
        """The next event, or None when the feed ends (the users service drains)."""
        try:
            message = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise users_error(exc) from exc
        return None if message is grpc.aio.EOF else event_json(message)

    def close(self) -> None:
        """Ends the call (a no-op once it is done)."""
        self._call.cancel()


async def _refusal(
    stub: users_pb2_grpc.UserServiceStub, options: dict[str, Any]
) -> grpc.aio.AioRpcError | None:
    """The users service's refusal of ImportUsers for this caller (401, 403), if it refuses.

    A row written into a call the users service has just refused races the refusal, and grpc
    then reports INTERNAL ("Internal error from Core") instead of the refusal's own status. An
    import of no rows, which creates nothing, asks again without that race.
    """
    call = stub.ImportUsers(**options)
    try:
        await call.done_writing()
        await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return exc
    return None


async def import_rows(
    stub: users_pb2_grpc.UserServiceStub,
    rows: AsyncIterable[Mapping[str, str]],
    options: dict[str, Any],
) -> ImportSummary:
    """Streams the rows (username, email, display_name, request_id) into one ImportUsers call.

    A row that names none is sent as an empty create: the users service rejects it, and it keeps
    its index among the rows.
    """
    call = stub.ImportUsers(**options)
    try:
        async for row in rows:
            try:
                await call.write(users_pb2.CreateUserRequest(**row))
            except asyncio.InvalidStateError:
                break  # the call ended early; awaiting it below raises its status
        await call.done_writing()
        summary = await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INTERNAL:
            raise users_error(await _refusal(stub, options) or exc) from exc
        raise users_error(exc) from exc
    finally:
        call.cancel()  # a no-op once done; stops the import when the uploader went away
    return import_summary_json(summary)
