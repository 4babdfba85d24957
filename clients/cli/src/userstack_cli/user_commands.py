"""create, get, list, update, delete: one user at a time (list follows every page)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click
from google.protobuf import field_mask_pb2
from users.v1 import users_pb2

from userstack_cli.output import as_dict, chosen, json_line, print_fields, print_users
from userstack_cli.session import Session

MAX_PAGE_SIZE = 1000


def user_key(value: str) -> users_pb2.GetUserRequest:
    """GetUser's key: digits are an id, anything else a username."""
    if value.isdigit():
        return users_pb2.GetUserRequest(id=int(value))
    return users_pb2.GetUserRequest(username=value)


def resolve_id(session: Session, value: str) -> int:
    """The id of the user named by id or username (a username costs a GetUser)."""
    if value.isdigit():
        return int(value)
    user: users_pb2.User = session.users.GetUser(user_key(value))
    return user.id


@click.command()
@click.argument("username")
@click.option("--email", default="", help="an email address")
@click.option("--display-name", default="", help="a name for people")
@click.option("--request-id", default="", help="idempotency key: a retry returns the same user")
@click.pass_obj
def create(session: Session, username: str, email: str, display_name: str, request_id: str) -> None:
    """Create a user."""
    request = users_pb2.CreateUserRequest(
        username=username, email=email, display_name=display_name, request_id=request_id
    )
    print_users([as_dict(session.users.CreateUser(request))], session.output, many=False)


@click.command()
@click.argument("user")
@click.pass_obj
def get(session: Session, user: str) -> None:
    """Show one user, by ID or USERNAME."""
    print_users([as_dict(session.users.GetUser(user_key(user)))], session.output, many=False)


def pages(session: Session, prefix: str, page_size: int) -> Iterator[users_pb2.User]:
    """Every user (with the prefix), page after page, each page within the call deadline."""
    token = ""
    while True:
        request = users_pb2.ListUsersRequest(
            page_size=page_size, page_token=token, username_prefix=prefix
        )
        page: users_pb2.ListUsersResponse = session.users.ListUsers(request)
        yield from page.users
        token = page.next_page_token
        if not token:
            return


@click.command(name="list")
@click.option("--prefix", default="", help="only usernames starting with it (any case)")
@click.option("--limit", type=click.IntRange(min=1), help="at most this many users")
@click.option("--page-size", type=click.IntRange(1, MAX_PAGE_SIZE), default=200, show_default=True)
@click.pass_obj
def list_users(session: Session, prefix: str, limit: int | None, page_size: int) -> None:
    """List users in id order, following every page (a JSON array, or a table)."""
    users: list[dict[str, Any]] = []
    for user in pages(session, prefix, page_size):
        users.append(as_dict(user))
        if limit is not None and len(users) >= limit:
            break
    print_users(users, session.output, many=True)


@click.command()
@click.argument("user")
@click.option("--username", help="a new username")
@click.option("--email", help="a new email address ('' to clear it)")
@click.option("--display-name", help="a new display name ('' to clear it)")
@click.option("--etag", default="", help="only if the user still has this etag")
@click.pass_obj
def update(session: Session, /, user: str, etag: str, **changes: str | None) -> None:
    """Change fields of a user, by ID or USERNAME."""
    given = {name: value for name, value in changes.items() if value is not None}
    if not given:
        raise click.UsageError("nothing to change: give --username, --email or --display-name")
    changed = users_pb2.User(id=resolve_id(session, user))
    for name, value in given.items():
        setattr(changed, name, value)
    request = users_pb2.UpdateUserRequest(
        user=changed,
        update_mask=field_mask_pb2.FieldMask(paths=sorted(given)),
        etag=etag,
    )
    print_users([as_dict(session.users.UpdateUser(request))], session.output, many=False)


@click.command()
@click.argument("user")
@click.option("--etag", default="", help="only if the user still has this etag")
@click.pass_obj
def delete(session: Session, user: str, etag: str) -> None:
    """Delete a user, by ID or USERNAME."""
    user_id = resolve_id(session, user)
    session.users.DeleteUser(users_pb2.DeleteUserRequest(id=user_id, etag=etag))
    if chosen(session.output) == "json":
        click.echo(json_line({"deleted": user_id}))
    else:
        print_fields({"deleted": user_id}, session.output)


COMMANDS = [create, get, list_users, update, delete]
