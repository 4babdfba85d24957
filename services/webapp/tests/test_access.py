"""Who may do what, through the webapp: the users service decides, the webapp passes its answer on
(401 with a Bearer challenge, 403, 429), and a member never sees another member's email."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import jwt
import pytest

from .conftest import ADMIN_HEADERS, ISSUER, PASSWORD, Webapp, unique

PROBLEM = "application/problem+json"
CHALLENGE = 'Bearer realm="userstack"'
INVALID = 'Bearer realm="userstack", error="invalid_token"'
HTML = {"accept": "text/html"}
NDJSON = {"content-type": "application/x-ndjson"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# Every API route, as (method, path, body); {id} and {username} are a user's.
API_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {"username": "nobody-here"}),
    ("GET", "/api/v1/users/{id}", None),
    ("GET", "/api/v1/users/by-username/{username}", None),
    ("PATCH", "/api/v1/users/{id}", {"display_name": "x"}),
    ("DELETE", "/api/v1/users/{id}", None),
    ("GET", "/users/", None),
    ("GET", "/api/v1/users/events", None),
    ("POST", "/api/v1/users:import", b'{"username": "nobody-here"}\n'),
    ("GET", "/api/v1/auth/whoami", None),
]


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: Any, user: dict[str, Any]
) -> Any:
    url = path.format(id=user["id"], username=user["username"])
    if isinstance(body, bytes):
        return await client.request(method, url, content=body, headers=NDJSON)
    return await client.request(method, url, json=body)


@pytest.fixture
async def victim(make_user: Any) -> dict[str, Any]:
    """A user with an email, made by the admin."""
    user: dict[str, Any] = await make_user("victim", email=f"{unique('v')}@example.com")
    return user


@pytest.fixture
def member(webapp: Webapp) -> tuple[dict[str, Any], str]:
    """A member who signed up through the webapp: (its user, its token)."""
    return webapp.sign_up(unique("member"), email=f"{unique('m')}@example.com")


@pytest.mark.parametrize(("method", "path", "body"), API_CALLS)
async def test_anonymous_api_calls_are_401_problems_with_a_bearer_challenge(
    webapp: Webapp, victim: dict[str, Any], method: str, path: str, body: Any
) -> None:
    async with webapp.client(None) as anonymous:
        response = await call(anonymous, method, path, body, victim)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == CHALLENGE


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        ISSUER.token("admin", ttl=-60),  # expired
        ISSUER.token("admin", aud="someone-else"),
        ISSUER.token("admin")[:-4] + "AAAA",  # tampered signature
    ],
    ids=["malformed", "expired", "wrong-audience", "tampered"],
)
async def test_a_refused_token_is_401_with_invalid_token(webapp: Webapp, token: str) -> None:
    async with webapp.client(token) as client:
        for path in ("/api/v1/users", "/users/", "/api/v1/users/events"):
            response = await client.get(path)
            assert_problem(response, 401)
            assert response.headers["www-authenticate"] == INVALID


async def test_probes_and_keys_answer_anonymously(webapp: Webapp) -> None:
    async with webapp.client(None) as anonymous:
        for path in ("/healthz", "/readyz", "/.well-known/jwks.json"):
            assert (await anonymous.get(path)).status_code == 200, path


@pytest.mark.parametrize(("method", "path", "body"), API_CALLS[:-1])
async def test_a_member_gets_403_for_anything_but_reads_and_itself(
    webapp: Webapp,
    victim: dict[str, Any],
    member: tuple[dict[str, Any], str],
    *,
    method: str,
    path: str,
    body: Any,
) -> None:
    async with webapp.client(member[1]) as client:
        response = await call(client, method, path, body, victim)
    if method == "GET" and not path.endswith("/events"):
        assert response.status_code == 200, response.text  # the directory, without emails
    else:
        assert_problem(response, 403)
        assert "www-authenticate" not in response.headers


async def test_a_member_reads_updates_and_deletes_itself(
    webapp: Webapp, member: tuple[dict[str, Any], str]
) -> None:
    user, token = member
    async with webapp.client(token) as client:
        me = await client.get("/api/v1/auth/whoami")
        assert me.json()["role"] == "member"
        assert me.json()["user"]["username"] == user["username"]
        mine = await client.get(f"/api/v1/users/{user['id']}")
        assert mine.json()["email"] == user["email"]  # its own email, it sees
        patched = await client.patch(
            f"/api/v1/users/{user['id']}", json={"display_name": "Me", "role": "admin"}
        )
        assert patched.status_code == 200, patched.text
        assert (patched.json()["display_name"], patched.json()["role"]) == ("Me", "member")
        assert (await client.delete(f"/api/v1/users/{user['id']}")).status_code == 204
        assert_problem(await client.get("/api/v1/auth/whoami"), 401)  # its tokens died with it


async def test_a_member_never_sees_another_members_email_in_any_representation(
    webapp: Webapp, victim: dict[str, Any], member: tuple[dict[str, Any], str]
) -> None:
    email, name = victim["email"], victim["username"]
    async with webapp.client(member[1]) as client:
        answers = {
            "JSON list": await client.get("/api/v1/users", params={"prefix": name}),
            "JSON by id": await client.get(f"/api/v1/users/{victim['id']}"),
            "JSON by username": await client.get(f"/api/v1/users/by-username/{name}"),
            "NDJSON": await client.get("/users/", params={"id": victim["id"]}),
            "HTML list": await client.get("/", params={"q": name}, headers=HTML),
            "HTML detail": await client.get(f"/ui/users/{victim['id']}", headers=HTML),
        }
        async with client.stream("GET", "/api/v1/users/events") as sse:  # the feed: admins only
            assert sse.status_code == 403
            answers["SSE"] = httpx.Response(403, content=await sse.aread())
    for kind, answer in answers.items():
        assert name in answer.text or kind == "SSE", kind  # the user is there...
        assert email not in answer.text, kind  # ...without its email
    assert json.loads(answers["NDJSON"].text.splitlines()[0])["email"] == ""
    async with webapp.client() as admin:  # the admin sees it, by the same routes
        assert (await admin.get(f"/api/v1/users/{victim['id']}")).json()["email"] == email
        assert email in (await admin.get("/users/", params={"id": victim["id"]})).text


async def test_the_session_cookie_never_authenticates_a_write_through_the_json_api(
    webapp: Webapp, member: tuple[dict[str, Any], str]
) -> None:
    user, token = member
    async with webapp.client(None) as browser:
        browser.cookies.set("session", token)
        assert (await browser.get(f"/api/v1/users/{user['id']}")).status_code == 200
        write = await browser.patch(f"/api/v1/users/{user['id']}", json={"display_name": "csrf"})
        assert_problem(write, 401)
        assert_problem(await browser.delete(f"/api/v1/users/{user['id']}"), 401)


async def test_jwks_serves_the_keys_that_verify_the_tokens_the_webapp_hands_out(
    webapp: Webapp, member: tuple[dict[str, Any], str]
) -> None:
    async with webapp.client(None) as anonymous:
        response = await anonymous.get("/.well-known/jwks.json")
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert response.headers["cache-control"] == "public, max-age=60"
    keys = jwt.PyJWKSet.from_dict(response.json())
    token = member[1]
    key = next(k for k in keys.keys if k.key_id == jwt.get_unverified_header(token)["kid"])
    claims = jwt.decode(token, key, algorithms=["EdDSA", "ES256"], audience="userstack")
    assert claims["sub"] == str(member[0]["id"])
    assert '"d"' not in response.text  # public keys only


async def test_sign_in_through_the_api_gives_a_token_wrong_credentials_a_401(
    webapp: Webapp, member: tuple[dict[str, Any], str]
) -> None:
    username = member[0]["username"]
    async with webapp.client(None) as anonymous:
        good = await anonymous.post(
            "/api/v1/auth/signin", json={"username": username, "password": PASSWORD}
        )
        assert good.status_code == 200, good.text
        assert good.json()["token_type"] == "Bearer"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", good.json()["expire_time"])
        for wrong in ({"username": username, "password": "x" * 12}, {"username": "nobody"}):
            body = {"password": PASSWORD, **wrong}
            refused = await anonymous.post("/api/v1/auth/signin", json=body)
            assert_problem(refused, 401)
            assert refused.json()["detail"] == "wrong username or password"


async def test_reads_with_different_credentials_never_share_a_call(
    users: Any, in_process: Any, victim: dict[str, Any], member: tuple[dict[str, Any], str]
) -> None:
    """Coalesced reads (gateway/reads.py) are answered for the caller who made each one."""
    _, client = await in_process(users.address)
    member_headers = {"authorization": f"Bearer {member[1]}"}
    path = f"/api/v1/users/{victim['id']}"
    answers = await asyncio.gather(
        *(client.get(path, headers=h) for h in [ADMIN_HEADERS, member_headers] * 10)
    )
    emails = [answer.json()["email"] for answer in answers]
    assert emails == [victim["email"], ""] * 10
