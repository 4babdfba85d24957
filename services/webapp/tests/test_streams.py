"""NDJSON out (ExportUsers, GetUsers), NDJSON import into ImportUsers, the SSE feed (WatchUsers)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

NDJSON = {"content-type": "application/x-ndjson"}


async def test_ndjson_streams_the_named_users_and_skips_misses(
    http: httpx.AsyncClient, make_user: Any
) -> None:
    first, second = await make_user("nd"), await make_user("nd")
    params = {"id": [first["id"], 999999999], "username": [second["username"], "no-such-user"]}
    response = await http.get("/users/", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [first["id"], second["id"]]
    assert response.text.endswith("\n")


async def test_ndjson_with_no_match_is_an_empty_valid_body(http: httpx.AsyncClient) -> None:
    response = await http.get("/users/", params={"id": 999999999})
    assert response.status_code == 200
    assert response.content == b""


async def test_ndjson_streams_every_user_in_id_order(
    http: httpx.AsyncClient, make_user: Any
) -> None:
    created = await make_user("all")
    ids = []
    async with http.stream("GET", "/users/") as response:
        async for line in response.aiter_lines():
            ids.append(json.loads(line)["id"])
    assert ids == sorted(ids)
    assert created["id"] in ids


async def test_ndjson_of_everyone_is_byte_for_byte_the_named_users_lines(
    http: httpx.AsyncClient, make_user: Any
) -> None:
    """Every user comes from ExportUsers (batches), named ones from GetUsers (one a message):
    the same lines either way."""
    for _ in range(3):
        await make_user("same")
    everyone = (await http.get("/users/")).content
    lines = everyone.splitlines(keepends=True)[:1000]  # as many as a request may name
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) >= 3
    named = await http.get("/users/", params={"id": ids})
    assert named.content == b"".join(lines)


async def test_import_streams_rows_and_reports_each_rejection(
    http: httpx.AsyncClient, uname: Any, make_user: Any
) -> None:
    existing = await make_user("imp")
    new = [uname("imp") for _ in range(3)]

    async def body() -> AsyncIterator[bytes]:
        yield json.dumps({"username": new[0], "email": "a@example.com"}).encode() + b"\n"
        yield b"this is not json\n\n"  # malformed (index 1), then a blank line (not counted)
        yield json.dumps({"username": "x!"}).encode() + b"\n"  # invalid (index 2)
        yield json.dumps({"username": existing["username"]}).encode() + b"\n"  # existing
        yield (json.dumps({"username": new[1]}) + "\n" + json.dumps({"username": new[2]})).encode()

    response = await http.post("/api/v1/users:import", content=body(), headers=NDJSON)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["created_count"], summary["existing_count"]) == (3, 1)
    assert summary["rejected_count"] == 2
    malformed, invalid = summary["rejections"]
    assert (malformed["index"], malformed["field"]) == (1, "")
    assert "not a JSON object" in malformed["reason"]
    assert (invalid["index"], invalid["field"], invalid["username"]) == (2, "username", "x!")
    for name in new:
        assert (await http.get(f"/api/v1/users/by-username/{name}")).status_code == 200


async def test_import_requires_ndjson(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/users:import", json={"username": "nope"})
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"


async def _sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    name = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


async def test_sse_feed_reports_created_updated_deleted(
    http: httpx.AsyncClient, make_user: Any
) -> None:
    async with http.stream("GET", "/api/v1/users/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        events = _sse_events(response)
        user = await make_user("sse")
        path = f"/api/v1/users/{user['id']}"
        assert (await http.patch(path, json={"display_name": "Live"})).status_code == 200
        assert (await http.delete(path)).status_code == 204
        seen: list[tuple[str, str]] = []
        async with asyncio.timeout(10):
            async for name, data in events:
                if data["user"]["id"] == user["id"]:
                    assert data["type"] == name
                    seen.append((name, data["user"]["display_name"]))
                if len(seen) == 3:
                    break
    assert seen == [("created", ""), ("updated", "Live"), ("deleted", "Live")]
