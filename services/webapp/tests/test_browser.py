"""A real headless Chromium drives the UI: bad username, create, live list, screenshots; a member
signs up, edits itself, fails to delete someone else, signs out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    async_playwright,
    expect,
)

from .conftest import ADMIN_TOKEN, PASSWORD, UsersService, Webapp, unique

ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


@pytest.fixture
def fresh_users(own_stack: tuple[UsersService, Webapp]) -> UsersService:
    """An empty users service of the test's own."""
    return own_stack[0]


@pytest.fixture
def fresh_webapp(own_stack: tuple[UsersService, Webapp]) -> Webapp:
    """A webapp over an empty users service, so the list's first page is predictable."""
    return own_stack[1]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


async def open_page(
    browser: Browser,
    url: str,
    problems: list[str],
    token: str | None = ADMIN_TOKEN,
    expected: tuple[int, ...] = (422,),
) -> Page:
    """A page that records console errors (CSP violations among them) and failed requests; its
    browser carries `token` in the session cookie (default: the admin's; None: signed out)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    if token is not None:
        # For the whole site: a cookie added for the page's URL would get that URL's directory
        # as its path (/ui/users/), and the event stream and the list would go without it.
        origin = urlsplit(url)._replace(path="/", query="", fragment="").geturl()
        await context.add_cookies([{"name": "session", "value": token, "url": origin}])
    page = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        # Forms answered with these statuses on purpose; anything else (CSP violations...) is a
        # problem.
        if message.type == "error" and not any(f"status of {s}" in message.text for s in expected):
            problems.append(message.text)

    page.on("console", on_console)

    def on_failed(request: Request) -> None:
        # Leaving a page aborts its EventSource: expected, not a problem.
        if not (request.url.endswith("/events") and request.failure == "net::ERR_ABORTED"):
            problems.append(f"failed: {request.url} {request.failure}")

    page.on("requestfailed", on_failed)
    await page.goto(url)
    return page


async def test_create_a_user_through_the_form_and_see_it_listed(
    browser: Browser, fresh_webapp: Any, uname: Any
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    async with fresh_webapp.client() as client:
        for name, display in [("ada", "Ada Lovelace"), ("grace", "Grace Hopper")]:
            await client.post("/api/v1/users", json={"username": name, "display_name": display})
    page = await open_page(browser, fresh_webapp.url + "/", problems)
    await expect(page.locator("#live")).to_be_visible()  # app.js subscribed to the event feed

    await page.fill("#f-username", "No Good!")
    await page.fill("#f-display_name", "Bad Name")
    await page.click("button:has-text('Create user')")
    error = page.locator('[data-field-error="username"]')
    await expect(error).to_be_visible()
    await expect(page.locator("#f-display_name")).to_have_value("Bad Name")
    await page.screenshot(path=ARTIFACTS / "webapp-field-error.png", full_page=True)

    name = uname("browser")
    await page.fill("#f-username", name)
    await page.fill("#f-email", "browser@example.com")
    await page.fill("#f-display_name", "Browser User")
    await page.click("button:has-text('Create user')")
    await expect(page.locator(".notice")).to_contain_text("created")
    await expect(page.locator("#users")).to_contain_text(name)
    await page.screenshot(path=ARTIFACTS / "webapp-list.png", full_page=True)

    await page.click(f"a:has-text('{name}')")
    await expect(page.locator("h1")).to_contain_text(name)
    await page.screenshot(path=ARTIFACTS / "webapp-detail.png", full_page=True)
    assert problems == []


async def test_the_list_updates_live_when_another_client_creates_a_user(
    browser: Browser, webapp: Any, uname: Any
) -> None:
    problems: list[str] = []
    prefix = uname("live")
    page = await open_page(browser, f"{webapp.url}/?q={prefix}", problems)
    await expect(page.locator("#live")).to_be_visible()
    async with webapp.client() as client:
        created = await client.post("/api/v1/users", json={"username": f"{prefix}-x"})
        assert created.status_code == 201
    row = page.locator(f'tr[data-user-id="{created.json()["id"]}"]')
    await expect(row).to_contain_text(f"{prefix}-x")
    assert problems == []


async def test_api_docs_render_from_local_assets_under_the_csp(
    browser: Browser, webapp: Any
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    page = await open_page(browser, webapp.url + "/docs", problems)
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("userstack webapp")
    await expect(page.get_by_text("/api/v1/users:import").first).to_be_visible()
    await page.screenshot(path=ARTIFACTS / "webapp-docs.png")
    assert problems == []


async def test_live_updates_resume_after_the_users_service_restarts(
    browser: Browser, fresh_users: Any, fresh_webapp: Any, spawn_users: Any
) -> None:
    problems: list[str] = []
    page = await open_page(browser, fresh_webapp.url + "/", problems)
    live = page.locator("#live")
    await expect(live).to_be_visible()
    fresh_users.stop()
    await expect(live).to_be_hidden()
    spawn_users(port=fresh_users.port)
    await expect(live).to_be_visible(timeout=15_000)  # app.js reconnected by itself
    async with fresh_webapp.client() as client:
        created = await client.post("/api/v1/users", json={"username": "after-restart"})
        assert created.status_code == 201
    await expect(page.locator("#users")).to_contain_text("after-restart")
    # While the service was down, the reconnects were answered 503: the console shows that.
    assert all("503" in problem or "events" in problem for problem in problems), problems


async def test_a_member_signs_up_edits_itself_fails_to_delete_another_and_signs_out(
    browser: Browser, fresh_webapp: Webapp
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    async with fresh_webapp.client() as admin:
        other = await admin.post(
            "/api/v1/users", json={"username": "grace", "email": "grace@example.com"}
        )
        assert other.status_code == 201
    page = await open_page(
        browser, fresh_webapp.url + "/signup", problems, token=None, expected=(403,)
    )

    name = unique("member")
    await page.fill("#f-username", name)
    await page.fill("#f-password", PASSWORD)
    await page.fill("#f-display_name", "First Name")
    await page.click("button:has-text('Sign up')")
    await expect(page.locator("#me")).to_have_text(name)  # signed in, on its own profile
    await expect(page.locator("#role")).to_have_text("member")
    await expect(page.locator("h1")).to_contain_text(name)

    await page.fill("#f-display_name", "Second Name")
    await page.click("button:has-text('Save')")
    await expect(page.get_by_text("Saved.")).to_be_visible()
    await expect(page.locator(".facts")).to_contain_text("Second Name")
    await page.screenshot(path=ARTIFACTS / "webapp-member-profile.png", full_page=True)

    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))  # "Delete...?"
    await page.goto(f"{fresh_webapp.url}/ui/users/{other.json()['id']}")
    await expect(page.locator(".facts")).not_to_contain_text("grace@example.com")  # hidden
    await page.click("button:has-text('Delete user')")
    await expect(page.locator("[role=alert]")).to_contain_text("not allowed")
    await page.screenshot(path=ARTIFACTS / "webapp-member-refused.png", full_page=True)
    async with fresh_webapp.client() as admin:
        still = await admin.get(f"/api/v1/users/{other.json()['id']}")
        assert still.status_code == 200  # the users service refused: grace is still there

    await page.click("#sign-out")
    await expect(page.locator("#auth-notice")).to_have_text("You are signed out.")
    cookies = await page.context.cookies()
    assert [c["name"] for c in cookies if "session" in c["name"]] == []
    await page.goto(fresh_webapp.url + "/")
    await expect(page).to_have_url(fresh_webapp.url + "/signin?next=/")  # the session is gone
    await expect(page.locator("#auth-notice")).to_have_text("Sign in to continue.")
    await page.screenshot(path=ARTIFACTS / "webapp-signed-out.png", full_page=True)
    assert problems == []
