"""Group commit: each caller gets its own outcomes, or the shared commit's error, as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from users_service.store import CreateOutcome, CreateStatus, NewUser
from users_service.store.group_commit import GroupCommit


async def _commit(users: Sequence[NewUser]) -> list[CreateOutcome]:
    """Creates every user, unless one is named `fails`."""
    await asyncio.sleep(0)
    if any(user.username == "fails" for user in users):
        raise ValueError("the commit failed")
    return [CreateOutcome(CreateStatus.CREATED) for _ in users]


async def test_every_caller_of_a_failed_commit_gets_its_error_and_the_next_batch_runs() -> None:
    creates = GroupCommit(_commit)
    first = asyncio.create_task(creates.submit([NewUser("ada")]))
    await asyncio.sleep(0)  # the first batch is running: the next two share the second
    results = await asyncio.gather(
        creates.submit([NewUser("fails")]), creates.submit([NewUser("bob")]), return_exceptions=True
    )
    assert [type(result) for result in results] == [ValueError, ValueError]
    assert [o.status for o in await first] == [CreateStatus.CREATED]
    assert [o.status for o in await creates.submit([NewUser("cy"), NewUser("di")])] == [
        CreateStatus.CREATED
    ] * 2
