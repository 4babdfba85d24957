"""The JSON API against a real users service: every operation and every error mapping."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


async def test_create_user_answers_201_with_location_and_etag(
    http: httpx.AsyncClient, uname: Any
) -> None:
    name = uname("ada")
    response = await http.post(
        "/api/v1/users",
        json={"username": name.upper(), "email": "ada@example.com", "display_name": "Ada"},
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["username"] == name
    assert user["email"] == "ada@example.com"
    assert user["display_name"] == "Ada"
    assert user["create_time"].endswith("Z")
    assert response.headers["location"] == f"/api/v1/users/{user['id']}"
    assert response.headers["etag"] == f'"{user["etag"]}"'


async def test_create_user_with_idempotency_key_returns_the_first_user(
    http: httpx.AsyncClient, uname: Any
) -> None:
    body = {"username": uname("idem")}
    headers = {"Idempotency-Key": uname("key")}
    first = await http.post("/api/v1/users", json=body, headers=headers)
    again = await http.post("/api/v1/users", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]


async def test_invalid_input_is_422_with_field_violations(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/users", json={"username": "a!", "email": "not-an-email"})
    body = assert_problem(response, 422)
    fields = {error["field"] for error in body["errors"]}
    assert {"username", "email"} <= fields
    assert all(error["message"] for error in body["errors"])


async def test_malformed_json_body_is_422_problem(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/users", json={"email": 3})
    body = assert_problem(response, 422)
    assert {"username", "email"} <= {error["field"] for error in body["errors"]}


async def test_duplicate_username_is_409(http: httpx.AsyncClient, make_user: Any) -> None:
    user = await make_user("dup")
    response = await http.post("/api/v1/users", json={"username": user["username"].upper()})
    assert_problem(response, 409)


async def test_get_user_by_id_and_by_username(http: httpx.AsyncClient, make_user: Any) -> None:
    user = await make_user("get", display_name="Grace")
    by_id = await http.get(f"/api/v1/users/{user['id']}")
    by_name = await http.get(f"/api/v1/users/by-username/{user['username'].upper()}")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == user
    assert by_id.headers["etag"] == f'"{user["etag"]}"'


@pytest.mark.parametrize(
    "path", ["/api/v1/users/999999999", "/api/v1/users/by-username/nobody-here"]
)
async def test_missing_user_is_404(http: httpx.AsyncClient, path: str) -> None:
    body = assert_problem(await http.get(path), 404)
    assert "not found" in body["detail"]


@pytest.mark.parametrize(
    "path", [f"/api/v1/users/{2**63}", f"/users/?id={2**63}", f"/ui/users/{2**63}"]
)
async def test_out_of_range_id_is_422_not_a_crash(http: httpx.AsyncClient, path: str) -> None:
    assert_problem(await http.get(path), 422)


async def test_patch_changes_only_the_fields_sent(http: httpx.AsyncClient, make_user: Any) -> None:
    user = await make_user("patch", email="p@example.com", display_name="Before")
    response = await http.patch(
        f"/api/v1/users/{user['id']}",
        json={"display_name": "After"},
        headers={"If-Match": f'"{user["etag"]}"'},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["display_name"] == "After"
    assert changed["email"] == "p@example.com"
    assert changed["etag"] != user["etag"]
    assert response.headers["etag"] == f'"{changed["etag"]}"'


async def test_patch_with_stale_etag_is_412(http: httpx.AsyncClient, make_user: Any) -> None:
    user = await make_user("stale")
    path = f"/api/v1/users/{user['id']}"
    first = await http.patch(path, json={"display_name": "one"}, headers={"If-Match": user["etag"]})
    assert first.status_code == 200
    second = await http.patch(
        path, json={"display_name": "two"}, headers={"If-Match": f'"{user["etag"]}"'}
    )
    assert_problem(second, 412)


async def test_patch_with_nothing_to_change_is_422(http: httpx.AsyncClient, make_user: Any) -> None:
    user = await make_user("empty")
    assert_problem(await http.patch(f"/api/v1/users/{user['id']}", json={}), 422)


async def test_patch_to_a_taken_username_is_409(http: httpx.AsyncClient, make_user: Any) -> None:
    first, second = await make_user("taken"), await make_user("taker")
    response = await http.patch(
        f"/api/v1/users/{second['id']}", json={"username": first["username"]}
    )
    assert_problem(response, 409)


async def test_delete_answers_204_then_404(http: httpx.AsyncClient, make_user: Any) -> None:
    user = await make_user("del")
    path = f"/api/v1/users/{user['id']}"
    stale = await http.delete(path, headers={"If-Match": '"not-the-etag"'})
    assert_problem(stale, 412)
    deleted = await http.delete(path, headers={"If-Match": f'"{user["etag"]}"'})
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await http.get(path), 404)
    assert_problem(await http.delete(path), 404)


async def test_list_pages_through_a_prefix_in_id_order(
    http: httpx.AsyncClient, make_user: Any, uname: Any
) -> None:
    prefix = uname("page")
    created = [await make_user(prefix) for _ in range(5)]
    await make_user("other")
    seen: list[dict[str, Any]] = []
    params = {"prefix": prefix, "page_size": "2"}
    for _ in range(10):
        response = await http.get("/api/v1/users", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["users"]
        if not page["next_page_token"]:
            assert 'rel="next"' not in response.headers["link"]
            break
        assert 'rel="next"' in response.headers["link"]
        assert ('rel="prev"' in response.headers["link"]) == ("page_token" in params)
        params["page_token"] = page["next_page_token"]
    assert [u["id"] for u in seen] == [u["id"] for u in created]
    back = await http.get("/api/v1/users", params={**params, "page_token": page["prev_page_token"]})
    assert [u["id"] for u in back.json()["users"]] == [u["id"] for u in created[2:4]]


async def test_list_rejects_a_token_of_another_filter_and_a_negative_size(
    http: httpx.AsyncClient, make_user: Any, uname: Any
) -> None:
    prefix = uname("tok")
    for _ in range(3):
        await make_user(prefix)
    page = (await http.get("/api/v1/users", params={"prefix": prefix, "page_size": 1})).json()
    other = {"prefix": "zz", "page_token": page["next_page_token"]}
    assert_problem(await http.get("/api/v1/users", params=other), 422)
    body = assert_problem(await http.get("/api/v1/users", params={"page_size": -1}), 422)
    assert body["errors"][0]["field"] == "page_size"


async def test_spent_request_budget_is_504(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/users", headers={"X-Request-Timeout": "0.000001"})
    assert_problem(response, 504)


async def test_malformed_request_budget_is_400(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/api/v1/users", headers={"X-Request-Timeout": "soon"}), 400)


@pytest.mark.slow
async def test_grpc_deadline_exceeded_is_504(users: Any, spawn_webapp: Any) -> None:
    # A budget so small the users service cannot answer in it: gRPC's own DEADLINE_EXCEEDED.
    app = spawn_webapp(users.address, WEBAPP_GRPC_TIMEOUT_SECONDS="0.0000001")
    async with app.client() as client:
        response = await client.get("/api/v1/users/1")
    body = assert_problem(response, 504)
    assert "time budget" in body["detail"]
    assert app.process.wait_for_line("DEADLINE_EXCEEDED")


async def test_request_id_is_echoed_and_reaches_the_users_service(
    http: httpx.AsyncClient, users: Any, uname: Any
) -> None:
    request_id = uname("rid")
    response = await http.post(
        "/api/v1/users", json={"username": uname("rid")}, headers={"X-Request-ID": request_id}
    )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == request_id
    # The users service logs a call as it ends, racing its answer to us: wait for the line.
    assert users.process.wait_for_line(request_id, "CreateUser")


async def test_a_malformed_request_id_is_replaced(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32


async def test_security_headers_on_every_response(http: httpx.AsyncClient) -> None:
    for path in ("/", "/api/v1/users", "/healthz", "/api/v1/users/0"):
        headers = (await http.get(path)).headers
        csp = headers["content-security-policy"]
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"


async def test_health_endpoints(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_openapi_documents_the_api(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    for path in ("/api/v1/users", "/api/v1/users/{user_id}", "/api/v1/users:import", "/users/"):
        assert path in schema["paths"]
    docs = await http.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
