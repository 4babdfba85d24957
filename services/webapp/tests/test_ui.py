"""The HTML UI without JavaScript: plain forms, POST-redirect-GET, CSRF protection."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

HTML = {"accept": "text/html"}


def csrf_token(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def etag_of(page: httpx.Response) -> str:
    match = re.search(r'name="etag" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


async def test_index_lists_users_with_a_create_form_and_a_csrf_cookie(
    http: httpx.AsyncClient, make_user: Any
) -> None:
    user = await make_user("idx")
    page = await http.get("/", params={"q": user["username"]}, headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'href="/ui/users/{user["id"]}"' in page.text
    assert http.cookies["csrftoken"] == csrf_token(page)
    assert "httponly" in page.headers["set-cookie"].lower()
    assert "samesite=strict" in page.headers["set-cookie"].lower()


async def test_create_form_redirects_then_the_list_shows_the_user(
    http: httpx.AsyncClient, uname: Any
) -> None:
    token = csrf_token(await http.get("/"))
    name = uname("form")
    form = {"csrf_token": token, "username": name, "email": "", "display_name": "Form User"}
    created = await http.post("/ui/users", data=form)
    assert created.status_code == 303
    assert created.headers["location"].startswith("/?created=")
    listed = await http.get("/", params={"q": name})
    assert name in listed.text
    assert "Form User" in listed.text


async def test_submitting_the_same_create_form_twice_creates_one_user(
    http: httpx.AsyncClient, uname: Any
) -> None:
    page = await http.get("/")
    request_id = re.search(r'name="request_id" value="([0-9a-f]{32})"', page.text)
    assert request_id
    form = {"csrf_token": csrf_token(page), "request_id": request_id[1], "username": uname("twice")}
    first = await http.post("/ui/users", data=form)
    second = await http.post("/ui/users", data=form)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]


async def test_create_form_shows_each_fields_error_next_to_it(http: httpx.AsyncClient) -> None:
    token = csrf_token(await http.get("/"))
    form = {"csrf_token": token, "username": "x", "email": "bad-address", "display_name": ""}
    page = await http.post("/ui/users", data=form, headers=HTML)
    assert page.status_code == 422
    assert 'data-field-error="username"' in page.text
    assert 'data-field-error="email"' in page.text
    assert 'value="bad-address"' in page.text  # what the user typed is kept


async def test_create_form_with_a_taken_username_is_409(
    http: httpx.AsyncClient, make_user: Any
) -> None:
    user = await make_user("formdup")
    token = csrf_token(await http.get("/"))
    page = await http.post("/ui/users", data={"csrf_token": token, "username": user["username"]})
    assert page.status_code == 409
    assert 'data-field-error="username"' in page.text


async def test_detail_edit_and_delete_through_forms(
    http: httpx.AsyncClient, make_user: Any, uname: Any
) -> None:
    user = await make_user("detail", display_name="Old")
    path = f"/ui/users/{user['id']}"
    page = await http.get(path)
    assert page.status_code == 200
    token, etag = csrf_token(page), etag_of(page)
    new_name = uname("renamed")
    edit = {"csrf_token": token, "etag": etag, "username": new_name, "display_name": "New"}
    saved = await http.post(f"{path}/edit", data=edit)
    assert saved.status_code == 303
    page = await http.get(saved.headers["location"])
    assert "Saved." in page.text
    assert new_name in page.text
    stale = await http.post(f"{path}/edit", data=edit)  # the etag it was sent with is now old
    assert stale.status_code == 412
    assert "someone else changed this user" in stale.text
    delete = {"csrf_token": token, "etag": etag_of(page), "username": new_name}
    asked = await http.post(f"{path}/delete", data=delete)  # without app.js: a page asks first
    assert asked.status_code == 200
    assert f"Delete {new_name}?" in asked.text
    assert (await http.get(path, headers=HTML)).status_code == 200  # still there
    gone = await http.post(f"{path}/delete", data={**delete, "confirmed": "yes"})
    assert gone.status_code == 303
    assert (await http.get(path, headers=HTML)).status_code == 404


@pytest.mark.parametrize(
    ("cookie", "field"),
    [
        (None, None),  # neither
        ("valid", None),  # the cookie without the form field
        ("valid", "other-valid"),  # two valid tokens that differ
        ("forged", "forged"),  # equal, but not signed with our key
    ],
)
async def test_form_posts_without_a_matching_signed_token_are_403(
    webapp: Any, cookie: str | None, field: str | None, uname: Any
) -> None:
    async with webapp.client() as client:
        valid = csrf_token(await client.get("/"))
        async with webapp.client() as other:
            other_valid = csrf_token(await other.get("/"))
        values = {"valid": valid, "other-valid": other_valid, "forged": "abc.def", None: None}
        client.cookies.clear()
        if values[cookie] is not None:
            client.cookies.set("csrftoken", values[cookie] or "")
        form = {"username": uname("csrf")}
        if values[field] is not None:
            form["csrf_token"] = values[field] or ""
        for path in ("/ui/users", "/ui/users/1/edit", "/ui/users/1/delete"):
            response = await client.post(path, data=form, headers=HTML)
            assert response.status_code == 403, path
            assert "CSRF" in response.text


async def test_missing_user_page_is_an_html_404(http: httpx.AsyncClient) -> None:
    page = await http.get("/ui/users/999999999", headers=HTML)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "not found" in page.text


async def test_static_assets_are_served_locally(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', page.text))
    for asset in ("/static/app.css", "/static/app.js", "/static/swagger/swagger-ui-bundle.js"):
        assert (await http.get(asset)).status_code == 200


async def test_the_deleted_notice_only_echoes_a_username(http: httpx.AsyncClient) -> None:
    shown = await http.get("/", params={"deleted": "old-name"}, headers=HTML)
    assert "User old-name deleted." in shown.text
    spoofed = await http.get("/", params={"deleted": "your account is locked"}, headers=HTML)
    assert spoofed.status_code == 422
    assert "your account is locked" not in spoofed.text


async def test_the_list_links_to_the_previous_page_as_well_as_the_next(
    http: httpx.AsyncClient, make_user: Any, uname: Any
) -> None:
    prefix = uname("pages")
    for i in range(45):
        await _create_at_the_write_rate(http, f"{prefix}-{i:02}")
    first = await http.get("/", params={"q": prefix}, headers=HTML)
    assert 'rel="prev"' not in first.text
    second = await http.get(_link(first.text, "next"), headers=HTML)
    third = await http.get(_link(second.text, "next"), headers=HTML)
    assert f"{prefix}-44" in third.text
    assert 'rel="next"' not in third.text
    back = await http.get(_link(third.text, "prev"), headers=HTML)
    assert _usernames(back.text) == _usernames(second.text)
    assert _usernames((await http.get(_link(back.text, "prev"), headers=HTML)).text) == (
        _usernames(first.text)
    )


async def _create_at_the_write_rate(http: httpx.AsyncClient, username: str) -> None:
    """45 creates can outrun the shared webapp's write burst (40) when other tests spent some of
    it: a refused one waits as its 429's Retry-After says, as a well-behaved client does."""
    for _ in range(10):
        made = await http.post("/api/v1/users", json={"username": username})
        if made.status_code != 429:
            break
        await asyncio.sleep(float(made.headers["retry-after"]))
    assert made.status_code == 201, made.text


def _link(page: str, rel: str) -> str:
    match = re.search(rf'<a rel="{rel}" href="([^"]+)"', page)
    assert match is not None, f"no {rel} link"
    return match.group(1).replace("&amp;", "&")


def _usernames(page: str) -> list[str]:
    return re.findall(r'<td class="username"><a href="/ui/users/\d+">([^<]+)</a>', page)


async def test_the_empty_list_says_how_to_add_the_first_user(
    own_stack: tuple[Any, Any],
) -> None:
    async with own_stack[1].client() as client:  # as the tests' admin
        page = await client.get("/", headers=HTML)
        assert "No users yet." in page.text
        assert "userstack create NAME" in page.text
        assert 'href="#f-username"' in page.text
        searched = await client.get("/", params={"q": "zzz"}, headers=HTML)
        assert "No users starting with" in searched.text


async def test_a_failed_submit_focuses_the_first_field_in_error(http: httpx.AsyncClient) -> None:
    token = csrf_token(await http.get("/"))
    form = {"csrf_token": token, "username": "ok-name-x", "email": "bad-address"}
    page = await http.post("/ui/users", data=form, headers=HTML)
    assert page.status_code == 422
    focused = re.findall(r'<input id="f-(\w+)"[^>]* autofocus', page.text)
    assert focused == ["email"]
