"""Reads of one user by id, coalesced: the reads that arrive together share one BatchGetUsers.

A gRPC call costs the webapp more CPU than the rest of an HTTP request (docs/performance.md), so
under load each read waits for the end of the event loop's turn and goes out with the others that
arrived in it, as one call of up to MAX_BATCH ids. A read is never served from memory: its call
starts after it arrived, so it sees every write that finished before it, as a GetUser of its own
would. An idle webapp sends one id per call and adds no wait.

Only reads made with the same credentials share a call: the users service answers each call for
the identity it carries (a member sees no other member's email), so a batch is per caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
from plumbing.request_ids import REQUEST_ID_KEY, request_id_var
from users.v1 import users_pb2, users_pb2_grpc

from webapp.caller import AUTHORIZATION_KEY, authorization_var
from webapp.deadlines import DeadlineSpentError, remaining_budget
from webapp.gateway.errors import UserNotFoundError

logger = logging.getLogger(__name__)

MAX_BATCH = 100  # reads per call; the users service takes up to 1000 ids


@dataclass(frozen=True)
class _Read:
    user_id: int
    answer: asyncio.Future[users_pb2.User]
    deadline: float  # the loop's time after which this read's caller no longer waits
    request_id: str
    authorization: str | None  # the caller's credentials; None: anonymous


class UserReads:
    """Coalesces `user(id)` reads into BatchGetUsers calls on `stub`.

    >>> reads = UserReads(stub, timeout_seconds=5.0)  # doctest: +SKIP
    >>> user = await reads.user(42)  # UserNotFoundError, grpc.aio.AioRpcError, DeadlineSpentError
    """

    def __init__(
        self,
        stub: users_pb2_grpc.UserServiceStub,
        timeout_seconds: float,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._stub = stub
        self._timeout_seconds = timeout_seconds
        self._on_batch = on_batch  # hears the number of reads each call carries
        self._pending: dict[str | None, list[_Read]] = {}  # by credentials
        self._scheduled = False
        self._calls: set[asyncio.Task[None]] = set()  # strong references while they run

    async def user(self, user_id: int) -> users_pb2.User:
        """The user with this id, read by a call that starts after this one is made."""
        # No user has such an id; sent along, it would fail the reads it shares a call with.
        if user_id <= 0:
            raise UserNotFoundError(f"user {user_id} not found")
        budget = remaining_budget(self._timeout_seconds)
        if budget <= 0:
            raise DeadlineSpentError("the request's time budget is spent")
        loop = asyncio.get_running_loop()
        read = _Read(
            user_id,
            loop.create_future(),
            loop.time() + budget,
            request_id_var.get(),
            authorization_var.get(),
        )
        batch = self._pending.setdefault(read.authorization, [])
        batch.append(read)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send_all)  # after every read that arrives in this turn
        if len(batch) >= MAX_BATCH:
            self._send(read.authorization)
        return await read.answer

    def _send_all(self) -> None:
        self._scheduled = False
        for authorization in list(self._pending):
            self._send(authorization)

    def _send(self, authorization: str | None) -> None:
        batch = self._pending.pop(authorization)
        if self._on_batch is not None:
            self._on_batch(len(batch))
        call = asyncio.get_running_loop().create_task(self._call(batch))
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)

    async def _call(self, batch: list[_Read]) -> None:
        ids = list(dict.fromkeys(read.user_id for read in batch))
        if len(batch) > 1 and logger.isEnabledFor(logging.DEBUG):
            logger.debug("BatchGetUsers %s carries requests %s", batch[0].request_id, _ids(batch))
        loop = asyncio.get_running_loop()
        # The call may take as long as its most patient read; the others stop waiting on time.
        deadline = max(read.deadline for read in batch)
        expiries = [loop.call_at(r.deadline, _expire, r) for r in batch if r.deadline < deadline]
        try:
            await self._answer(batch, ids, deadline - loop.time())  # seconds left
        finally:
            for expiry in expiries:
                expiry.cancel()

    async def _answer(self, batch: list[_Read], ids: list[int], seconds: float) -> None:
        # The call's id is its first read's: a read alone on its call keeps its own (none
        # outside a request: the users service then draws one). Its credentials are all its reads'.
        first = batch[0]
        metadata: tuple[tuple[str, str], ...] = ()
        if first.request_id:
            metadata += ((REQUEST_ID_KEY, first.request_id),)
        if first.authorization:
            metadata += ((AUTHORIZATION_KEY, first.authorization),)
        try:
            reply = await self._stub.BatchGetUsers(
                users_pb2.BatchGetUsersRequest(ids=ids),
                timeout=seconds,
                metadata=metadata,
                wait_for_ready=False,
            )
        except grpc.aio.AioRpcError as error:
            if len(batch) > 1:
                logger.warning(
                    "BatchGetUsers %s failed with %s for requests %s",
                    batch[0].request_id,
                    error.code().name,
                    _ids(batch),
                )
            _fail(batch, error)
            return
        except asyncio.CancelledError:  # the loop is closing: nobody is left to answer
            for read in batch:
                read.answer.cancel()
            raise
        except Exception:  # a bug: logged once here; each caller answers 500 with its own error
            logger.exception("BatchGetUsers %s failed", batch[0].request_id)
            for read in _waiting(batch):
                read.answer.set_exception(RuntimeError("the coalesced read failed"))
            return
        found = {user.id: user for user in reply.users}
        for read in _waiting(batch):
            if (user := found.get(read.user_id)) is None:
                read.answer.set_exception(UserNotFoundError(f"user {read.user_id} not found"))
            else:
                read.answer.set_result(user)


def _expire(read: _Read) -> None:
    if not read.answer.done():
        read.answer.set_exception(
            DeadlineSpentError("the users service did not answer within the request's time budget")
        )


def _ids(batch: list[_Read]) -> str:
    return " ".join(read.request_id for read in batch)


def _waiting(batch: list[_Read]) -> Iterator[_Read]:
    """The reads whose callers still wait (one that timed out or went away is done already)."""
    return (read for read in batch if not read.answer.done())


def _fail(batch: list[_Read], error: grpc.aio.AioRpcError) -> None:
    for read in _waiting(batch):  # one status for all: each handler reads its code and details
        read.answer.set_exception(error)
