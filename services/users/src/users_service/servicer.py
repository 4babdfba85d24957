"""The users.v1.UserService handlers: validate, call the store, stream the store's changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import TypeAlias

import grpc
from google.protobuf import empty_pb2
from users.v1 import users_pb2, users_pb2_grpc

from users_service import validation
from users_service.convert import user_message
from users_service.events import Broadcaster
from users_service.export import batches, export_query
from users_service.importer import DEFAULT_MAX_ROWS, import_rows
from users_service.lifecycle import ShuttingDown
from users_service.pagination import Cursor, decode_cursor, encode_token
from users_service.reply_cache import ReplyCache, UserReply
from users_service.store import AlreadyExists as UsernameTaken
from users_service.store import (
    CreateOutcome,
    CreateStatus,
    IdempotencyKeyReused,
    NotFound,
    UserRecord,
    UserStore,
)
from users_service.stream_headers import send_request_id, sends_own_headers
from users_service.stretches import converted
from users_service.validation import FieldViolation, InvalidArgument

logger = logging.getLogger(__name__)

STREAM_BATCH_SIZE = 500
YIELD_EVERY = 100
Context: TypeAlias = grpc.aio.ServicerContext


class UserService(users_pb2_grpc.UserServiceServicer):
    """users.v1.UserService over a UserStore; domain errors become status codes in calls.py.

    Example:
        >>> users_pb2_grpc.add_UserServiceServicer_to_server(UserService(store, feed), server)
    """

    def __init__(
        self,
        store: UserStore,
        feed: Broadcaster,
        cutoff: asyncio.Event | None = None,
        *,
        max_import_rows: int = DEFAULT_MAX_ROWS,
        replies: ReplyCache | None = None,
    ) -> None:
        self._store = store
        self._replies = replies  # GetUser's by id (reply_cache.py); None: off
        self._feed = feed
        self._max_import_rows = max_import_rows
        # Set by the drain when its grace is nearly spent: long streams then end UNAVAILABLE.
        self._cutoff = cutoff or asyncio.Event()

    async def CreateUser(
        self, request: users_pb2.CreateUserRequest, context: Context
    ) -> users_pb2.User:
        [outcome] = await self._store.create_users([validation.new_user(request)])
        return user_message(self._created(outcome, request))

    def _created(self, outcome: CreateOutcome, request: users_pb2.CreateUserRequest) -> UserRecord:
        if outcome.status in (CreateStatus.CREATED, CreateStatus.REPLAYED) and outcome.user:
            return outcome.user
        if outcome.status is CreateStatus.TAKEN:
            raise UsernameTaken(f"username {request.username.lower()!r} is already taken")
        if outcome.status is CreateStatus.KEY_REUSED:
            raise IdempotencyKeyReused("was already used to create a different user")
        raise NotFound(f"the user created with request_id {request.request_id!r} was deleted")

    async def GetUser(  # type: ignore[override] # a UserReply is sent as the User it holds
        self, request: users_pb2.GetUserRequest, context: Context
    ) -> users_pb2.User | UserReply:
        replies = self._replies
        user_id = request.id  # 0 unless the key is an id (a username, none, or an invalid 0)
        if replies is None or user_id <= 0:
            return user_message(await self._get(request))
        reply = replies.get(user_id)
        if reply is not None:
            return reply
        generation = replies.generation  # before the read: a change heard meanwhile voids it
        return replies.put(await self._get(request), generation)

    async def _get(
        self, key: users_pb2.GetUserRequest | users_pb2.LookupUsersRequest
    ) -> UserRecord:
        which = key.WhichOneof("key")
        if which == "id":
            return await self._store.get_user(validation.user_id(key.id, "id"))
        if which == "username":
            return await self._store.get_user_by_username(
                validation.lookup_username(key.username, "username")
            )
        raise InvalidArgument([FieldViolation("key", "set either id or username")])

    async def BatchGetUsers(
        self, request: users_pb2.BatchGetUsersRequest, context: Context
    ) -> users_pb2.BatchGetUsersResponse:
        users = await self._store.get_users(validation.batch_ids(request.ids))
        return users_pb2.BatchGetUsersResponse(users=await converted(users, user_message))

    async def UpdateUser(
        self, request: users_pb2.UpdateUserRequest, context: Context
    ) -> users_pb2.User:
        changes = validation.user_changes(request)
        etag = validation.etag(request.etag)
        user = await self._store.update_user(request.user.id, changes, etag)
        return user_message(user)

    async def DeleteUser(
        self, request: users_pb2.DeleteUserRequest, context: Context
    ) -> empty_pb2.Empty:
        user_id = validation.user_id(request.id, "id")
        await self._store.delete_user(user_id, validation.etag(request.etag))
        return empty_pb2.Empty()

    async def ListUsers(
        self, request: users_pb2.ListUsersRequest, context: Context
    ) -> users_pb2.ListUsersResponse:
        size = validation.page_size(request.page_size)
        prefix = validation.username_prefix(request.username_prefix)
        cursor = decode_cursor(request.page_token, prefix)
        if cursor.backwards:
            users = await self._store.list_users_before(cursor.id, size + 1, prefix)
            if users:  # else nothing is left before: the first page instead
                earlier = len(users) > size
                return await _page(users[-size:], prefix, more_before=earlier, more_after=True)
            cursor = Cursor(0)
        users = await self._store.list_users(cursor.id, size + 1, prefix)
        more_after = len(users) > size
        return await _page(users[:size], prefix, more_before=cursor.id > 0, more_after=more_after)

    async def GetUsers(
        self, request: users_pb2.GetUsersRequest, context: Context
    ) -> AsyncIterator[users_pb2.User]:
        if not request.ids and not request.usernames:
            async for user in self._all_users():
                yield user_message(user)
            return
        validation.get_users_keys(request.ids, request.usernames)  # before any work
        for count, key in enumerate(_get_users_keys(request), 1):
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a long list of misses yields nothing: let others run
            try:
                yield user_message(await self._get(key))
            except (NotFound, InvalidArgument):
                continue  # names that match no user are skipped, per the contract

    async def _all_users(self) -> AsyncIterator[UserRecord]:
        # Keyset pagination: one bounded batch in memory at a time; a cancelled call stops here.
        after = 0
        while batch := await self._store.list_users(after, STREAM_BATCH_SIZE, ""):
            for user in batch:
                if self._cutoff.is_set():
                    raise ShuttingDown(
                        f"the server stopped before the stream ended (after id {after})"
                    )
                yield user
                after = user.id

    async def ExportUsers(
        self, request: users_pb2.ExportUsersRequest, context: Context
    ) -> AsyncIterator[users_pb2.UserBatch]:
        query = export_query(request)  # before any work
        async for batch in batches(self._store, query, self._cutoff):
            yield batch

    async def ImportUsers(
        self, request_iterator: AsyncIterator[users_pb2.CreateUserRequest], context: Context
    ) -> users_pb2.ImportUsersResponse:
        summary = await import_rows(self._store, request_iterator, self._max_import_rows)
        logger.info(
            "import done",
            extra={
                "created_count": summary.created_count,
                "existing_count": summary.existing_count,
                "rejected_count": summary.rejected_count,
            },
        )
        return summary

    async def LookupUsers(
        self, request_iterator: AsyncIterator[users_pb2.LookupUsersRequest], context: Context
    ) -> AsyncIterator[users_pb2.LookupUsersResponse]:
        async for lookup in request_iterator:
            yield await self._lookup(lookup)

    async def _lookup(self, lookup: users_pb2.LookupUsersRequest) -> users_pb2.LookupUsersResponse:
        try:
            user = await self._get(lookup)
        except NotFound as error:
            failure = users_pb2.LookupError(
                code=grpc.StatusCode.NOT_FOUND.value[0], message=str(error)
            )
        except InvalidArgument as error:
            failure = users_pb2.LookupError(
                code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=str(error)
            )
        else:
            return users_pb2.LookupUsersResponse(request=lookup, user=user_message(user))
        return users_pb2.LookupUsersResponse(request=lookup, error=failure)

    @sends_own_headers
    async def WatchUsers(
        self, request: users_pb2.WatchUsersRequest, context: Context
    ) -> AsyncIterator[users_pb2.UserEvent]:
        subscription = self._feed.subscribe()  # before the headers: no change falls in between
        if subscription.ended:
            # The feed closed as the drain began: an empty stream ending OK would invite the
            # client to call again here at once; UNAVAILABLE sends it to another replica.
            raise ShuttingDown("the server is draining: watch on another replica")
        try:
            await send_request_id(context)
            async for event in subscription.events():
                yield event
        finally:
            subscription.cancel()


async def _page(
    users: list[UserRecord], prefix: str, *, more_before: bool, more_after: bool
) -> users_pb2.ListUsersResponse:
    """A ListUsers page with its tokens: next after the last user, previous before the first."""
    return users_pb2.ListUsersResponse(
        users=await converted(users, user_message),
        next_page_token=encode_token(users[-1].id, prefix) if more_after and users else "",
        prev_page_token=(
            encode_token(users[0].id, prefix, before=True) if more_before and users else ""
        ),
    )


def _get_users_keys(request: users_pb2.GetUsersRequest) -> Iterator[users_pb2.GetUserRequest]:
    """One key at a time: no list of every key built up front."""
    for user_id in request.ids:
        yield users_pb2.GetUserRequest(id=user_id)
    for name in request.usernames:
        yield users_pb2.GetUserRequest(username=name)
