"""The UI's session: sign-in, sign-up and sign-out pages, the cookie that holds the token, and a
session the users service no longer accepts (expired, revoked) sending the browser to sign-in."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ADMIN_ENV, ISSUER, PASSWORD, UsersService, Webapp, unique
from .test_ui import csrf_token

HTML = {"accept": "text/html"}


async def sign_in_form(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """Fills in and posts the sign-in form, as a browser does."""
    token = csrf_token(await client.get("/signin", headers=HTML))
    form = {"csrf_token": token, "username": username, "password": password, "next": "/"}
    return await client.post("/signin", data=form, headers=HTML)


def cookie_attributes(response: httpx.Response, name: str) -> dict[str, str]:
    """The attributes of the Set-Cookie header for `name` (lowercased keys)."""
    header = next(v for v in response.headers.get_list("set-cookie") if v.startswith(f"{name}="))
    parts = [part.strip() for part in header.split(";")]
    attributes = {"value": parts[0].partition("=")[2]}
    attributes.update((k.lower(), v) for k, _, v in (p.partition("=") for p in parts[1:]))
    return attributes


@pytest.fixture
def member(webapp: Webapp) -> dict[str, Any]:
    """A member who signed up (its password: PASSWORD)."""
    return webapp.sign_up(unique("session"))[0]


async def test_signing_in_sets_an_httponly_samesite_session_cookie_then_pages_know_the_member(
    webapp: Webapp, member: dict[str, Any]
) -> None:
    async with webapp.client(None) as browser:
        signed_in = await sign_in_form(browser, member["username"], PASSWORD)
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/"
        cookie = cookie_attributes(signed_in, "session")
        assert {"httponly", "path", "samesite", "max-age"} <= cookie.keys()
        assert (cookie["path"], cookie["samesite"]) == ("/", "lax")
        assert "secure" not in cookie  # plaintext HTTP: a Secure cookie would never come back
        assert 7000 < int(cookie["max-age"]) <= 7200  # the token's own lifetime
        page = await browser.get("/", headers=HTML)
        assert page.status_code == 200
        assert f'id="me" href="/ui/users/{member["id"]}">{member["username"]}<' in page.text
        assert 'id="role">member<' in page.text
        assert 'action="/ui/users"' not in page.text  # members create no users: no form


async def test_a_wrong_password_shows_the_form_again_with_a_401(
    webapp: Webapp, member: dict[str, Any]
) -> None:
    async with webapp.client(None) as browser:
        page = await sign_in_form(browser, member["username"], "wrong password!")
        assert page.status_code == 401
        assert "wrong username or password" in page.text
        assert f'value="{member["username"]}"' in page.text  # the username is kept
        assert "session" not in browser.cookies


async def test_an_anonymous_page_view_goes_to_sign_in_and_back(
    webapp: Webapp, member: dict[str, Any]
) -> None:
    async with webapp.client(None) as browser:
        page = await browser.get(f"/ui/users/{member['id']}", headers=HTML)
        assert page.status_code == 303
        assert page.headers["location"] == f"/signin?next=/ui/users/{member['id']}"
        shown = await browser.get(page.headers["location"], headers=HTML)
        assert "Sign in to continue." in shown.text
        token = csrf_token(shown)
        form = {"csrf_token": token, "username": member["username"], "password": PASSWORD}
        back = await browser.post("/signin", data={**form, "next": f"/ui/users/{member['id']}"})
        assert back.headers["location"] == f"/ui/users/{member['id']}"
        evil = await browser.post("/signin", data={**form, "next": "//evil.example/x"})
        assert evil.headers["location"] == "/"  # no open redirect


async def test_an_expired_session_goes_back_to_sign_in_with_a_clear_message(
    webapp: Webapp,
) -> None:
    async with webapp.client(None) as browser:
        browser.cookies.set("session", ISSUER.token("member", ttl=-60))
        page = await browser.get("/", headers=HTML)
        assert page.status_code == 303
        assert page.headers["location"] == "/signin?next=/&reason=expired"
        cleared = cookie_attributes(page, "session")
        assert cleared["max-age"] == "0"
        shown = await browser.get(page.headers["location"], headers=HTML)
        assert "Your session has expired or was revoked: sign in again." in shown.text


async def test_sign_out_everywhere_revokes_the_other_sessions_too(
    webapp: Webapp, member: dict[str, Any]
) -> None:
    async with webapp.client(None) as laptop, webapp.client(None) as phone:
        for device in (laptop, phone):
            assert (await sign_in_form(device, member["username"], PASSWORD)).status_code == 303
        page = await phone.get("/", headers=HTML)
        form = {"csrf_token": csrf_token(page), "everywhere": "1"}
        signed_out = await phone.post("/signout", data=form, headers=HTML)
        assert signed_out.headers["location"] == "/signin?reason=signed-out"
        assert cookie_attributes(signed_out, "session")["max-age"] == "0"
        started = time.monotonic()
        while (page := await laptop.get("/", headers=HTML)).status_code == 200:
            assert time.monotonic() - started < 10, "the revoked session still works"
            await asyncio.sleep(0.2)
        assert page.headers["location"] == "/signin?next=/&reason=expired"


async def test_sign_out_removes_the_session_from_the_browser(
    webapp: Webapp, member: dict[str, Any]
) -> None:
    async with webapp.client(None) as browser:
        await sign_in_form(browser, member["username"], PASSWORD)
        page = await browser.get("/", headers=HTML)
        signed_out = await browser.post(
            "/signout", data={"csrf_token": csrf_token(page)}, headers=HTML
        )
        assert signed_out.status_code == 303
        assert "session" not in browser.cookies
        shown = await browser.get(signed_out.headers["location"], headers=HTML)
        assert "You are signed out." in shown.text
        assert (await browser.get("/", headers=HTML)).headers["location"] == "/signin?next=/"


async def test_sign_up_creates_a_member_and_shows_its_profile(webapp: Webapp) -> None:
    username = unique("newbie")
    async with webapp.client(None) as browser:
        token = csrf_token(await browser.get("/signup", headers=HTML))
        form = {"csrf_token": token, "username": username, "password": PASSWORD}
        short = await browser.post("/signup", data={**form, "password": "short"}, headers=HTML)
        assert short.status_code == 422
        assert 'data-field-error="password"' in short.text or "password" in short.text
        made = await browser.post("/signup", data=form, headers=HTML)
        assert made.status_code == 303
        assert re.fullmatch(r"/ui/users/\d+", made.headers["location"])
        profile = await browser.get(made.headers["location"], headers=HTML)
        assert f'id="me" href="{made.headers["location"]}">{username}<' in profile.text


@pytest.fixture(scope="module")
def strict_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webapp]:
    """A users service with sign-up closed and two failed sign-ins allowed per account."""
    users = UsersService(
        Path(tmp_path_factory.mktemp("strict")),
        None,
        **ADMIN_ENV,
        USERS_SIGNUP_OPEN="false",
        USERS_SIGNIN_ACCOUNT_FAILURES="2",
        USERS_SIGNIN_WINDOW_SECONDS="60",
    ).start()
    app = Webapp(users.address)
    app.wait_ready()
    yield app
    app.stop()
    users.stop()


async def test_throttled_sign_ins_are_429_with_retry_after_in_the_api_and_the_form(
    strict_stack: Webapp,
) -> None:
    async with strict_stack.client(None) as client:
        wrong = {"username": "admin", "password": "not the password"}
        statuses = [
            (await client.post("/api/v1/auth/signin", json=wrong)).status_code for _ in range(2)
        ]
        assert statuses == [401, 401]
        throttled = await client.post("/api/v1/auth/signin", json=wrong)
        assert throttled.status_code == 429, throttled.text
        assert throttled.headers["content-type"] == "application/problem+json"
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        page = await sign_in_form(client, "admin", "not the password")
        assert page.status_code == 429
        assert "too many sign-in attempts: try again in" in page.text
        assert 1 <= int(page.headers["retry-after"]) <= 60


async def test_closed_sign_up_says_so(strict_stack: Webapp) -> None:
    async with strict_stack.client(None) as client:
        token = csrf_token(await client.get("/signup", headers=HTML))
        form = {"csrf_token": token, "username": unique("late"), "password": PASSWORD}
        page = await client.post("/signup", data=form, headers=HTML)
        assert page.status_code == 403
        assert "sign-up is closed here" in page.text
        body = {"username": form["username"], "password": PASSWORD}
        api = await client.post("/api/v1/auth/signup", json=body)
        assert api.status_code == 403
