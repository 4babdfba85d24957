"""UsersGateway: the users service in the webapp's terms, over one long-lived channel."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterable, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from plumbing.tls import ReloadingChannel
from plumbing.tracing import Tracer
from users.v1 import users_pb2, users_pb2_grpc

from webapp.config import Settings
from webapp.gateway.accounts import Accounts
from webapp.gateway.channel import CHANNEL_OPTIONS, USERS_SERVICE, call_options, users_tls_files
from webapp.gateway.errors import users_error
from webapp.gateway.instrument import instrument_stub
from webapp.gateway.reads import UserReads
from webapp.gateway.streams import UserStream, UserWatch, import_rows
from webapp.gateway.values import ImportSummary, Page, User, user_json, user_json_bytes
from webapp.telemetry import WebappMetrics

logger = logging.getLogger(__name__)

T = TypeVar("T")
HEALTH_SERVICE = "grpc.health.v1.Health"
AUTH_SERVICE = "users.v1.AuthService"


@dataclass(frozen=True)
class HealthReport:
    """What the users service's health check said; `conclusive` is False for a check cut short
    by the caller's own time budget, which says nothing about the service to other callers."""

    ready: bool
    reason: str
    conclusive: bool = True


async def _answer(call: Awaitable[T]) -> T:
    """The call's reply; its failure as a UsersServiceError."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise users_error(exc) from exc


class UsersGateway:
    """Owns the channel and the stubs; opened at app start-up and closed at shutdown.

    Every call takes its deadline from the request's budget and carries its request id; every
    failure is a UsersServiceError with its HTTP status (or DeadlineSpentError, from
    webapp.deadlines, when the request's budget ran out before the call could start).

    >>> gateway = UsersGateway(Settings(secret_key="x" * 32))  # doctest: +SKIP
    >>> user = await gateway.get(42)  # doctest: +SKIP
    >>> user["username"]  # doctest: +SKIP
    'ada'
    """

    def __init__(
        self,
        settings: Settings,
        metrics: WebappMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._tracer = tracer  # calls are recorded (metrics) and traced through their stubs
        # TLS when a CA is set; a renewed client certificate moves new calls to a new channel.
        self._channels = ReloadingChannel(
            settings.users_target, users_tls_files(settings), CHANNEL_OPTIONS
        )
        self._use(self._channels.channel)
        # Set when the server starts draining: long-lived streams (SSE) end on it.
        self.stopping = asyncio.Event()

    def _use(self, channel: grpc.aio.Channel) -> None:
        """Calls from now on go over `channel` (the first, or one with renewed certificates)."""
        self.channel = channel
        self.users = users_pb2_grpc.UserServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)
        instrument_stub(self.users, USERS_SERVICE, self.metrics, self._tracer)
        instrument_stub(self.health, HEALTH_SERVICE, self.metrics, self._tracer)
        # Reads by id, coalesced (reads.py): the JSON API's and the UI's.
        on_batch = None if self.metrics is None else self.metrics.read_batch.observe
        self.reads = UserReads(self.users, self.settings.grpc_timeout_seconds, on_batch)
        # Sign-up, sign-in, the caller's identity, the keys (accounts.py).
        auth = users_pb2_grpc.AuthServiceStub(channel)
        instrument_stub(auth, AUTH_SERVICE, self.metrics, self._tracer)
        self.accounts = Accounts(auth, self.settings.grpc_timeout_seconds)

    def start(self) -> None:
        """Starts watching the TLS files (on the running loop)."""
        self._channels.start(self._use)

    def _unary(self) -> dict[str, Any]:
        return call_options(self.settings.grpc_timeout_seconds)

    def _streaming(self) -> dict[str, Any]:
        return call_options(self.settings.stream_timeout_seconds)

    async def get(self, user_id: int) -> User:
        """The user with this id (a read coalesced with those that arrive with it)."""
        return user_json(await self._read(user_id))

    async def get_json(self, user_id: int) -> tuple[bytes, str]:
        """The user with this id as the API's JSON document, and its etag (coalesced like get)."""
        user = await self._read(user_id)
        return user_json_bytes(user), user.etag

    async def _read(self, user_id: int) -> users_pb2.User:
        try:
            return await self.reads.user(user_id)
        except grpc.aio.AioRpcError as exc:
            raise users_error(exc) from exc

    async def get_by_username(self, username: str) -> User:
        """The user with this username (case-insensitively)."""
        message = users_pb2.GetUserRequest(username=username)
        return user_json(await _answer(self.users.GetUser(message, **self._unary())))

    async def list_page(self, size: int, token: str = "", prefix: str = "") -> Page:
        """One page of users in id order, by username prefix ("" for all)."""
        message = users_pb2.ListUsersRequest(
            page_size=size, page_token=token, username_prefix=prefix
        )
        page = await _answer(self.users.ListUsers(message, **self._unary()))
        users = [user_json(u) for u in page.users]
        return Page(users, page.next_page_token, page.prev_page_token)

    async def create(
        self, username: str, email: str = "", display_name: str = "", idempotency_key: str = ""
    ) -> User:
        """Creates a user; a retry with the same idempotency key returns the user the first
        attempt made (without one, a fresh key: each call is a new attempt)."""
        message = users_pb2.CreateUserRequest(
            username=username,
            email=email,
            display_name=display_name,
            request_id=idempotency_key or uuid.uuid4().hex,
        )
        return user_json(await _answer(self.users.CreateUser(message, **self._unary())))

    async def update(
        self,
        user_id: int,
        etag: str = "",
        *,
        username: str | None = None,
        email: str | None = None,
        display_name: str | None = None,
    ) -> User:
        """Changes the fields given (not None); with an etag, only if it is the user's current."""
        fields = {"username": username, "email": email, "display_name": display_name}
        changes = sorted(name for name, value in fields.items() if value is not None)
        # Fields left out go empty (proto3 does not encode them); the mask names those that count.
        user = users_pb2.User(
            id=user_id, username=username or "", email=email or "", display_name=display_name or ""
        )
        message = users_pb2.UpdateUserRequest(
            user=user,
            update_mask=field_mask_pb2.FieldMask(paths=changes),
            etag=etag,
        )
        return user_json(await _answer(self.users.UpdateUser(message, **self._unary())))

    async def delete(self, user_id: int, etag: str = "") -> None:
        """Deletes the user; with an etag, only if it is the user's current one."""
        message = users_pb2.DeleteUserRequest(id=user_id, etag=etag)
        await _answer(self.users.DeleteUser(message, **self._unary()))

    async def stream(self, ids: list[int], usernames: list[str]) -> UserStream:
        """Every user in id order, or only those named (misses skipped), as they arrive."""
        return await UserStream.open(self.users, ids, usernames, self._streaming())

    async def watch(self) -> UserWatch:
        """The change feed: users created, updated and deleted from now on."""
        return await UserWatch.open(self.users, self._streaming())

    async def import_rows(self, rows: AsyncIterable[Mapping[str, str]]) -> ImportSummary:
        """Creates users from rows as they come (streams.import_rows)."""
        return await import_rows(self.users, rows, self._streaming())

    async def check_health(self, limit: float) -> HealthReport:
        """Asks the users service's health service, within `limit` seconds (or the request's)."""
        if self.stopping.is_set():
            return HealthReport(False, "the webapp is shutting down")
        request = health_pb2.HealthCheckRequest(service=USERS_SERVICE)
        options = call_options(limit, anonymous=True)  # less when the request has less left
        try:
            reply = await self.health.Check(request, **options)
        except grpc.aio.AioRpcError as exc:
            reason = f"users service health check failed: {exc.code().name}"
            cut_short = options["timeout"] < limit
            timed_out = exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            return HealthReport(False, reason, conclusive=not (cut_short and timed_out))
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        reason = f"users service is {status}"
        return HealthReport(reply.status == health_pb2.HealthCheckResponse.SERVING, reason)

    async def close(self) -> None:
        """Closes the channel, cancelling whatever calls are still open."""
        self.stopping.set()
        await self._channels.close(grace=1.0)
        logger.info("users channel to %s closed", self.settings.users_target)
