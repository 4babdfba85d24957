"""Chromium drives what people expect of the UI: pages both ways, a confirmation before delete,
a case-insensitive search in live updates, the list refreshed after the event stream comes back,
an empty state, focus on the first error, links with enough contrast."""

from __future__ import annotations

import sys
from typing import Any

import grpc
import pytest
from playwright.async_api import Browser, Dialog, expect
from testkit.processes import LoggedProcess
from testkit.waiting import wait_for_port
from users.v1 import users_pb2, users_pb2_grpc

from .conftest import ADMIN_TOKEN, UsersService, Webapp
from .test_browser import browser, open_page

__all__ = ["browser"]  # the fixture, shared with test_browser.py

pytestmark = pytest.mark.browser


async def _create(webapp: Webapp, *names: str) -> list[dict[str, Any]]:
    async with webapp.client() as client:
        users = []
        for name in names:
            response = await client.post("/api/v1/users", json={"username": name})
            assert response.status_code == 201, response.text
            users.append(response.json())
        return users


async def test_pages_go_forwards_and_backwards(
    browser: Browser, own_stack: tuple[UsersService, Webapp]
) -> None:
    webapp = own_stack[1]
    await _create(webapp, *(f"pager-{i:02}" for i in range(45)))  # 20 + 20 + 5
    problems: list[str] = []
    page = await open_page(browser, webapp.url + "/", problems)
    first_row = page.locator("#users tbody tr").first
    await expect(page.locator("a[rel=prev]")).to_have_count(0)
    await page.click("a[rel=next]")
    await expect(first_row).to_contain_text("pager-20")
    await page.click("a[rel=next]")
    await expect(first_row).to_contain_text("pager-40")
    await expect(page.locator("#users tbody tr")).to_have_count(5)
    await expect(page.locator("a[rel=next]")).to_have_count(0)
    await page.click("a[rel=prev]")
    await expect(first_row).to_contain_text("pager-20")
    await expect(page.locator("#users tbody tr")).to_have_count(20)
    await page.click("a[rel=prev]")
    await expect(first_row).to_contain_text("pager-00")
    await expect(page.locator("a[rel=prev]")).to_have_count(0)
    assert problems == []


async def test_delete_asks_first(browser: Browser, webapp: Webapp, uname: Any) -> None:
    (user,) = await _create(webapp, uname("doomed"))
    problems: list[str] = []
    page = await open_page(browser, f"{webapp.url}/ui/users/{user['id']}", problems)
    asked: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", dismiss)
    await page.click("button:has-text('Delete user')")
    await expect(page.locator("h1")).to_contain_text(user["username"])
    assert asked == [f"Delete {user['username']}? This cannot be undone."]
    async with webapp.client() as client:
        assert (await client.get(f"/api/v1/users/{user['id']}")).status_code == 200

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.once("dialog", accept)
    await page.click("button:has-text('Delete user')")
    await expect(page.locator(".notice")).to_contain_text(f"User {user['username']} deleted.")
    async with webapp.client() as client:
        assert (await client.get(f"/api/v1/users/{user['id']}")).status_code == 404
    assert problems == []


async def test_a_search_in_capitals_keeps_matching_live_updates(
    browser: Browser, webapp: Webapp, uname: Any
) -> None:
    prefix = uname("caps")
    problems: list[str] = []
    page = await open_page(browser, f"{webapp.url}/?q={prefix.upper()}", problems)
    await expect(page.locator("#live")).to_be_visible()
    (user,) = await _create(webapp, f"{prefix}-new")
    row = page.locator(f'tr[data-user-id="{user["id"]}"]')
    await expect(row).to_contain_text(f"{prefix}-new")  # a create shows up
    async with webapp.client() as client:
        changed = await client.patch(
            f"/api/v1/users/{user['id']}", json={"display_name": "Changed Live"}
        )
        assert changed.status_code == 200
    await expect(row).to_contain_text("Changed Live")  # an update keeps the row
    assert problems == []


async def test_the_list_is_refreshed_after_the_event_stream_reconnects(
    browser: Browser, own_stack: tuple[UsersService, Webapp]
) -> None:
    users, webapp = own_stack
    problems: list[str] = []
    page = await open_page(browser, webapp.url + "/", problems)
    live = page.locator("#live")
    await expect(live).to_be_visible()
    webapp.stop()  # the event stream drops; the page keeps trying
    await expect(live).to_be_hidden()
    with grpc.insecure_channel(users.address) as channel:  # a change while it is away
        created = users_pb2_grpc.UserServiceStub(channel).CreateUser(
            users_pb2.CreateUserRequest(username="made-while-away"),
            timeout=5,
            metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),),
        )
    again = LoggedProcess([sys.executable, "-m", "webapp"], webapp.env)
    try:
        assert wait_for_port(webapp.port, 20, alive=again.running), again.log()
        await expect(live).to_be_visible(timeout=15_000)
        row = page.locator(f'tr[data-user-id="{created.id}"]')
        await expect(row).to_contain_text("made-while-away")
    finally:
        again.stop()
    # While the webapp was gone, the reconnects failed: the console and the network show that.
    assert all("ERR_CONNECTION_REFUSED" in problem for problem in problems), problems


async def test_an_empty_list_says_how_to_add_the_first_user_and_errors_get_focus(
    browser: Browser, own_stack: tuple[UsersService, Webapp]
) -> None:
    problems: list[str] = []
    page = await open_page(browser, own_stack[1].url + "/", problems)
    empty = page.locator("#empty")
    await expect(empty).to_contain_text("No users yet.")
    await expect(empty).to_contain_text("userstack create NAME")
    await page.fill("#f-username", "fine-name")
    await page.fill("#f-email", "not-an-email")
    await page.click("button:has-text('Create user')")
    await expect(page.locator('[data-field-error="email"]')).to_be_visible()
    await expect(page.locator("#f-email")).to_be_focused()
    assert problems == []


# The contrast of each link's colour with the background behind it (WCAG 2 relative luminance).
_CONTRASTS = """() => {
  const rgb = (css) => css.match(/[\\d.]+/g).map(Number);
  const channel = (c) => {
    c /= 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const luminance = ([r, g, b]) =>
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const color = rgb(getComputedStyle(e).backgroundColor);
      if (color.length < 4 || color[3] > 0) return color;
    }
    return [255, 255, 255];
  };
  return [...document.querySelectorAll("a")].filter((a) => a.offsetParent !== null).map((a) => {
    const [light, dark] = [luminance(rgb(getComputedStyle(a).color)), luminance(background(a))]
      .sort((x, y) => y - x);
    return { text: a.textContent.trim(), ratio: (light + 0.05) / (dark + 0.05),
             underlined: getComputedStyle(a).textDecorationLine.includes("underline"),
             inMain: a.closest("main") !== null };
  });
}"""


async def test_links_have_enough_contrast_and_stand_out_from_text(
    browser: Browser, webapp: Webapp, uname: Any
) -> None:
    (user,) = await _create(webapp, uname("contrast"))
    problems: list[str] = []
    for path in ("/", f"/?created={user['id']}", f"/ui/users/{user['id']}"):
        page = await open_page(browser, webapp.url + path, problems)
        links = await page.evaluate(_CONTRASTS)
        assert links
        for link in links:
            assert link["ratio"] >= 4.5, link  # WCAG AA for text
            assert link["underlined"] or not link["inMain"], link  # not by colour alone
        await page.close()
    assert problems == []
