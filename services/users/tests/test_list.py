"""ListUsers: pages, filter-bound tokens and stability under concurrent inserts."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import grpc
import pytest
from users.v1 import users_pb2
from users_service.server import UsersServer
from users_service.store import NewUser


async def seed(server: UsersServer, names: list[str]) -> None:
    await server.store.create_users([NewUser(name) for name in names])


def flat(pages: list[list[str]]) -> list[str]:
    return [name for page in pages for name in page]


async def all_pages(stub: Any, page_size: int, prefix: str = "") -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    while True:
        page = await stub.ListUsers(
            users_pb2.ListUsersRequest(
                page_size=page_size, page_token=token, username_prefix=prefix
            )
        )
        pages.append([user.username for user in page.users])
        token = page.next_page_token
        if not token:
            return pages


async def test_list_users_pages_through_everyone_in_id_order(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], [f"user{i:03}" for i in range(25)])
    pages = await all_pages(stub, page_size=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [name for page in pages for name in page] == [f"user{i:03}" for i in range(25)]


async def test_list_users_default_and_maximum_page_size(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], [f"u{i:05}" for i in range(1100)])
    first = await stub.ListUsers(users_pb2.ListUsersRequest())
    assert len(first.users) == 50
    capped = await stub.ListUsers(users_pb2.ListUsersRequest(page_size=5000))
    assert len(capped.users) == 1000
    assert capped.next_page_token


async def test_list_users_filters_by_prefix_case_insensitively(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], ["ann", "anna", "bob", "an_x", "anxious", "annie"])
    assert flat(await all_pages(stub, 2, prefix="ANN")) == ["ann", "anna", "annie"]
    # '_' is a literal in a prefix, not a LIKE wildcard.
    assert flat(await all_pages(stub, 2, prefix="an_")) == ["an_x"]


async def test_concurrent_inserts_never_shift_earlier_pages(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], [f"early{i:03}" for i in range(30)])
    seen: list[str] = []
    token = ""
    inserted = 0

    async def insert_more() -> None:
        nonlocal inserted
        for _ in range(5):
            await stub.CreateUser(users_pb2.CreateUserRequest(username=f"late{inserted:03}"))
            inserted += 1
            await asyncio.sleep(0)

    while True:
        page, _ = await asyncio.gather(
            stub.ListUsers(users_pb2.ListUsersRequest(page_size=7, page_token=token)),
            insert_more(),
        )
        seen += [user.username for user in page.users]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)), "a user showed up twice"
    assert seen[:30] == [f"early{i:03}" for i in range(30)]
    assert seen[30:] == [f"late{i:03}" for i in range(len(seen) - 30)]
    assert len(seen) > 30, "inserts made while paging show up on later pages"


async def test_page_token_from_another_filter_is_invalid_argument(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], ["anna", "annie", "bob"])
    page = await stub.ListUsers(users_pb2.ListUsersRequest(page_size=1, username_prefix="ann"))
    assert page.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListUsers(
            users_pb2.ListUsersRequest(page_size=1, page_token=page.next_page_token)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "different username_prefix" in (caught.value.details() or "")


forged = base64.urlsafe_b64encode(json.dumps({"v": 1, "after": "x", "filter": ""}).encode())


@pytest.mark.parametrize(
    "request_",
    [
        users_pb2.ListUsersRequest(page_token="garbage!!"),
        users_pb2.ListUsersRequest(page_token=base64.urlsafe_b64encode(b"[1,2]").decode()),
        users_pb2.ListUsersRequest(page_token=forged.decode()),
        users_pb2.ListUsersRequest(page_size=-1),
        users_pb2.ListUsersRequest(username_prefix="no spaces"),
    ],
)
async def test_list_users_rejects_bad_requests(stub: Any, request_: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListUsers(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_users_on_empty_store_is_one_empty_page(stub: Any) -> None:
    page = await stub.ListUsers(users_pb2.ListUsersRequest())
    assert list(page.users) == []
    assert page.next_page_token == ""


async def test_list_users_pages_backwards_with_prev_page_tokens(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], [f"back{i:02}" for i in range(25)] + ["other"])

    async def page(token: str) -> Any:
        return await stub.ListUsers(
            users_pb2.ListUsersRequest(page_size=10, page_token=token, username_prefix="BACK")
        )

    first = await page("")
    assert first.prev_page_token == ""
    second = await page(first.next_page_token)
    last = await page(second.next_page_token)
    assert [u.username for u in last.users] == [f"back{i:02}" for i in range(20, 25)]
    assert last.next_page_token == ""
    # Backwards from the last page: the ten before it, then the ten before those.
    before_last = await page(last.prev_page_token)
    assert [u.username for u in before_last.users] == [u.username for u in second.users]
    assert before_last.next_page_token  # and forwards again from there
    assert [u.username for u in (await page(before_last.next_page_token)).users] == [
        u.username for u in last.users
    ]
    back_to_first = await page(before_last.prev_page_token)
    assert [u.username for u in back_to_first.users] == [u.username for u in first.users]
    assert back_to_first.prev_page_token == ""


async def test_a_prev_page_token_is_bound_to_its_filter_and_survives_deletes(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], [f"gone{i}" for i in range(4)])
    first = await stub.ListUsers(users_pb2.ListUsersRequest(page_size=2, username_prefix="gone"))
    second = await stub.ListUsers(
        users_pb2.ListUsersRequest(
            page_size=2, page_token=first.next_page_token, username_prefix="gone"
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListUsers(
            users_pb2.ListUsersRequest(page_token=second.prev_page_token, username_prefix="g")
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for user in first.users:  # everything before the second page is deleted
        await stub.DeleteUser(users_pb2.DeleteUserRequest(id=user.id))
    back = await stub.ListUsers(
        users_pb2.ListUsersRequest(
            page_size=2, page_token=second.prev_page_token, username_prefix="gone"
        )
    )
    assert [u.username for u in back.users] == ["gone2", "gone3"]  # the first page now
    assert back.prev_page_token == ""
