"""Brute force and enumeration: failed sign-ins throttled per account and per address, with a
retry delay; an unknown username and a wrong password answer alike, in the same time."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from testkit.tokens import TestIssuer
from users.v1 import users_pb2

from .accounts_kit import PASSWORD, Accounts
from .conftest import auth_settings

ServerWith = Callable[..., Any]


@pytest.fixture
async def server_with(start_server: Any, test_issuer: TestIssuer) -> AsyncIterator[ServerWith]:
    channels: list[Any] = []

    async def start(**auth: Any) -> Accounts:
        _, port = await start_server(auth=auth_settings(test_issuer, **auth))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return Accounts(channel, test_issuer.token("admin"))

    yield start
    for channel in channels:
        await channel.close()


async def _sign_in(accounts: Accounts, username: str, password: str) -> grpc.aio.AioRpcError | None:
    try:
        await accounts.auth.SignIn(users_pb2.SignInRequest(username=username, password=password))
    except grpc.aio.AioRpcError as error:
        return error
    return None


def _retry_delay(error: grpc.aio.AioRpcError) -> tuple[float, str]:
    """The RetryInfo delay (seconds) and the retry-after trailer of a throttled call."""
    status = rpc_status.from_call(error)
    assert status is not None
    [detail] = status.details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info)
    trailers = dict(error.trailing_metadata() or ())
    return info.retry_delay.ToMilliseconds() / 1000, str(trailers["retry-after"])


async def test_the_n_plus_first_failure_for_an_account_waits_for_the_window(
    server_with: ServerWith,
) -> None:
    accounts = await server_with(signin_account_failures=3, signin_window_seconds=1.5)
    ada = await accounts.new()
    for _ in range(3):
        error = await _sign_in(accounts, ada.username, "wrong password!")
        assert error is not None
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    refused = await _sign_in(accounts, ada.username, PASSWORD)  # even the right password
    assert refused is not None
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    delay, header = _retry_delay(refused)
    assert 0 < delay <= 1.5
    assert header in ("1", "2")
    await asyncio.sleep(delay)  # the window itself: time has to pass
    assert await _sign_in(accounts, ada.username, PASSWORD) is None


async def test_failures_from_one_address_across_accounts_are_throttled(
    server_with: ServerWith,
) -> None:
    accounts = await server_with(signin_address_failures=4, signin_account_failures=100)
    for index in range(4):
        error = await _sign_in(accounts, f"nobody{index}", "wrong password!")
        assert error is not None
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    refused = await _sign_in(accounts, "somebody", "wrong password!")
    assert refused is not None
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "address" in str(refused.details())


async def _timed(accounts: Accounts, username: str) -> tuple[float, str]:
    started = time.perf_counter()
    error = await _sign_in(accounts, username, "not the password")
    assert error is not None
    return time.perf_counter() - started, f"{error.code().name}: {error.details()}"


@pytest.mark.slow
async def test_an_unknown_username_and_a_wrong_password_answer_alike_in_the_same_time(
    server_with: ServerWith,
) -> None:
    # The hashing of the service's own parameters, so that the check dominates the call.
    accounts = await server_with(
        signin_account_failures=1000, signin_address_failures=1000, hash_memory_kib=19_456
    )
    ada = await accounts.new()
    unknown, wrong = [], []
    for index in range(25):  # interleaved, so that load changes touch both alike
        unknown.append(await _timed(accounts, f"ghost{index}"))
        wrong.append(await _timed(accounts, ada.username))
    assert {answer for _, answer in unknown} == {answer for _, answer in wrong}
    unknown_median = statistics.median(t for t, _ in unknown)
    wrong_median = statistics.median(t for t, _ in wrong)
    assert 0.67 < unknown_median / wrong_median < 1.5, (unknown_median, wrong_median)
