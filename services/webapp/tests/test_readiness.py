"""/readyz when the users service hangs: the check keeps to the request's budget."""

from __future__ import annotations

import time
from typing import Any

import pytest

# A users service of the test's own, stalled for longer than the request budget.
pytestmark = pytest.mark.slow


async def test_readyz_checks_within_the_request_budget_and_caches_no_cut_short_verdict(
    in_process: Any, spawn_users: Any
) -> None:
    users = spawn_users()
    _, client = await in_process(users.address)
    assert (await client.get("/api/v1/users")).status_code == 200  # the channel is connected
    with users.stalled():  # connected, and never answering
        started = time.monotonic()
        response = await client.get("/readyz", headers={"x-request-timeout": "0.2"})
        assert time.monotonic() - started < 0.6, "the health check outlived the request's budget"
        assert response.status_code == 503
        assert "DEADLINE_EXCEEDED" in response.json()["detail"]
        # A verdict cut short by one caller's budget is not served to the next one from cache.
        started = time.monotonic()
        response = await client.get("/readyz")
        assert time.monotonic() - started > 0.8, "a cut-short verdict was cached"
        assert response.status_code == 503
