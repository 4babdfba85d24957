"""The webapp through its published HTTP port: JSON API, NDJSON stream, UI page, health."""

from __future__ import annotations

import json
import re

import httpx

from tests.integration.stack import ADMIN_PASSWORD, ADMIN_USERNAME, Stack


def create(http: httpx.Client, username: str) -> dict[str, object]:
    response = http.post("/api/v1/users", json={"username": username, "display_name": "Test"})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_api_create_answers_201_and_the_user_reads_back(http: httpx.Client, unique: str) -> None:
    created = create(http, f"{unique}-api")

    by_id = http.get(f"/api/v1/users/{created['id']}")
    by_name = http.get(f"/api/v1/users/by-username/{unique}-api")

    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == created
    assert created["display_name"] == "Test"


def test_api_duplicate_username_is_a_409_problem(http: httpx.Client, unique: str) -> None:
    create(http, f"{unique}-twice")
    response = http.post("/api/v1/users", json={"username": f"{unique}-twice"})
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")


def test_api_bad_username_is_a_client_error_naming_the_field(http: httpx.Client) -> None:
    response = http.post("/api/v1/users", json={"username": "NO SPACES!"})
    assert response.status_code in (400, 422)
    assert "username" in response.text


def test_api_missing_user_is_a_404_problem(http: httpx.Client) -> None:
    response = http.get(f"/api/v1/users/{2**62}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_api_lists_by_prefix_a_page_at_a_time(http: httpx.Client, unique: str) -> None:
    names = [str(create(http, f"{unique}-{n}")["username"]) for n in range(3)]
    first = http.get("/api/v1/users", params={"prefix": unique, "page_size": 2}).json()
    params = {"prefix": unique, "page_size": 2, "page_token": first["next_page_token"]}
    second = http.get("/api/v1/users", params=params).json()
    assert [user["username"] for user in first["users"] + second["users"]] == names
    assert second["next_page_token"] == ""


def test_ndjson_stream_carries_one_user_per_line(http: httpx.Client, unique: str) -> None:
    ids = [int(str(create(http, f"{unique}-nd{n}")["id"])) for n in range(3)]
    with http.stream("GET", "/users/", params={"id": ids}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert [user["id"] for user in lines] == ids


def test_ui_page_lists_users_as_html(http: httpx.Client, unique: str) -> None:
    create(http, f"{unique}-ui")
    response = http.get("/", params={"q": unique})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f"{unique}-ui" in response.text


def test_readyz_and_healthz_answer_200_while_users_serves(http: httpx.Client) -> None:
    ready = http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert http.get("/healthz").status_code == 200


def test_anonymous_api_calls_are_401_with_a_bearer_challenge(stack: Stack) -> None:
    with httpx.Client(base_url=stack.http_url, timeout=10) as anonymous:
        created = anonymous.post("/api/v1/users", json={"username": "nobody-anon"})
        assert created.status_code == 401, created.text
        assert created.headers["content-type"] == "application/problem+json"
        assert created.headers["www-authenticate"] == 'Bearer realm="userstack"'
        assert anonymous.get("/api/v1/users").status_code == 401
        page = anonymous.get("/", headers={"accept": "text/html"})
        assert (page.status_code, page.headers["location"]) == (303, "/signin?next=/")


def test_probes_answer_anonymously(stack: Stack) -> None:
    with httpx.Client(base_url=stack.http_url, timeout=10) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert anonymous.get("/.well-known/jwks.json").json()["keys"]


def test_the_first_admin_signs_in_through_the_ui_form(stack: Stack, unique: str) -> None:
    with httpx.Client(base_url=stack.http_url, timeout=10) as browser:
        page = browser.get("/signin", headers={"accept": "text/html"})
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, page.text
        form = {"csrf_token": token[1], "username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        signed_in = browser.post("/signin", data=form)
        assert signed_in.status_code == 303, signed_in.text
        assert "session" in browser.cookies
        listed = browser.get("/", headers={"accept": "text/html"})
        assert listed.status_code == 200
        assert 'id="role">admin<' in listed.text


def test_a_host_the_webapp_does_not_serve_is_refused(stack: Stack) -> None:
    """DNS rebinding: a page elsewhere reaching the published port under its own name."""
    with httpx.Client(base_url=stack.http_url, timeout=10) as client:
        refused = client.get("/api/v1/users", headers={"host": "rebind.attacker.example"})
        assert refused.status_code == 400
        served = client.get("/api/v1/users", headers={"host": f"localhost:{stack.http_port}"})
        assert served.status_code == 401  # served: the call needed a token
