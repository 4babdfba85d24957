"""Request validation: each rule names the field at fault, for google.rpc.BadRequest details."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from users.v1 import users_pb2

from users_service.store import NewUser, UserChanges

USERNAME_RE = re.compile(r"[a-z0-9._-]{3,32}")
USERNAME_PREFIX_RE = re.compile(r"[a-z0-9._-]{0,32}")
MAX_EMAIL = 254
MAX_LOCAL_PART = 64
# RFC 5322's dot-atom in ASCII: what most addresses look like before the @ (email_validator
# accepts every local part this matches: it is its own first check, DOT_ATOM_TEXT).
_ASCII_LOCAL_PART = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)
MAX_DISPLAY_NAME = 64
MAX_REQUEST_ID = 128
UPDATABLE_PATHS = ("username", "email", "display_name")
MAX_MASK_PATHS = 10
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_BATCH_IDS = 1000
# GetUsers names users by id and by username: as many of each as BatchGetUsers takes ids.
MAX_GET_USERS_KEYS = MAX_BATCH_IDS
MAX_USERNAME = 32
MAX_ETAG = 64
# What an error detail quotes of a client's value (its whole detail is clipped in status.py).
MAX_ECHO = 40


def echo(value: str) -> str:
    """`value` as an error detail may quote it: at most MAX_ECHO characters, repr'd."""
    if len(value) <= MAX_ECHO:
        return repr(value)
    return f"{value[:MAX_ECHO]!r}... ({len(value)} characters)"


@dataclass(frozen=True)
class FieldViolation:
    """One wrong field and why."""

    field: str
    description: str


class InvalidArgument(Exception):  # noqa: N818 - named after the status code it becomes
    """The request is malformed; `violations` says where."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations


def _check(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(violations)


def username_problem(username: str) -> str | None:
    """Why a (lowercased) username is invalid, or None."""
    if not username:
        return "is required"
    if not USERNAME_RE.fullmatch(username):
        return "must be 3-32 characters of lowercase letters, digits, '.', '_' and '-'"
    return None


def email_problem(email: str) -> str | None:
    """Why an email address is invalid, or None (empty is valid: no email)."""
    if not email:
        return None
    if len(email) > MAX_EMAIL:
        return f"must be at most {MAX_EMAIL} characters"
    if _plainly_valid(email):
        return None
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        return f"is not a valid email address: {error}"
    return None


def _plainly_valid(email: str) -> bool:
    """An ASCII address: a dot-atom local part at a domain email_validator accepted before.

    Validating a domain is most of what email_validator does with an address
    (docs/performance.md): it depends on the domain alone, and addresses share few. ASCII only,
    so that the length checked above is the one the library checks (an IDN's UTF-8 and Punycode
    forms are longer). Anything else takes the full check, which also words the error.
    """
    local, at, domain = email.rpartition("@")
    return (
        bool(at)
        and email.isascii()
        and len(local) <= MAX_LOCAL_PART
        and _ASCII_LOCAL_PART.fullmatch(local) is not None
        and _valid_domain(domain)
    )


@functools.lru_cache(maxsize=1024)
def _valid_domain(domain: str) -> bool:
    try:
        validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def display_name_problem(name: str) -> str | None:
    """Why a display name is invalid, or None."""
    if len(name) > MAX_DISPLAY_NAME:
        return f"must be at most {MAX_DISPLAY_NAME} characters"
    if any(unicodedata.category(char) == "Cc" for char in name):
        return "must not contain control characters"
    return None


_FIELD_RULES = {
    "username": username_problem,
    "email": email_problem,
    "display_name": display_name_problem,
}


def _field_problems(prefix: str, fields: dict[str, str]) -> list[FieldViolation]:
    violations = []
    for name, value in fields.items():
        problem = _FIELD_RULES[name](value)
        if problem:
            violations.append(FieldViolation(prefix + name, problem))
    return violations


def new_user(request: users_pb2.CreateUserRequest) -> NewUser:
    """The validated create, username lowercased; raises InvalidArgument."""
    user = NewUser(
        username=request.username.lower(),
        email=request.email,
        display_name=request.display_name,
        request_id=request.request_id,
    )
    fields = {"username": user.username, "email": user.email, "display_name": user.display_name}
    violations = _field_problems("", fields)
    if len(user.request_id) > MAX_REQUEST_ID:
        violations.append(
            FieldViolation("request_id", f"must be at most {MAX_REQUEST_ID} characters")
        )
    _check(violations)
    return user


def user_id(value: int, field: str) -> int:
    """A positive user id; raises InvalidArgument."""
    _check([] if value > 0 else [FieldViolation(field, "must be a positive user id")])
    return value


def batch_ids(ids: Sequence[int]) -> list[int]:
    """The ids of a BatchGetUsers, each positive, at most MAX_BATCH_IDS; raises InvalidArgument."""
    if len(ids) > MAX_BATCH_IDS:
        _check([FieldViolation("ids", f"must name at most {MAX_BATCH_IDS} users, not {len(ids)}")])
    bad = [index for index, value in enumerate(ids) if value <= 0]
    # The first few only: a thousand violations would not fit in the trailers.
    _check([FieldViolation(f"ids[{index}]", "must be a positive user id") for index in bad[:10]])
    return list(ids)


def lookup_username(value: str, field: str) -> str:
    """A username to look up, lowercased; raises InvalidArgument when it is empty or longer
    than any username (refused before the store)."""
    _check([] if value else [FieldViolation(field, "must not be empty")])
    if len(value) > MAX_USERNAME:
        _check([FieldViolation(field, f"must be at most {MAX_USERNAME} characters")])
    return value.lower()


def get_users_keys(ids: Sequence[int], usernames: Sequence[str]) -> None:
    """Raises InvalidArgument when a GetUsers names more users than it may (checked before any
    lookup; the message's size is capped by the server's receive limit before it is parsed)."""
    cap = MAX_GET_USERS_KEYS
    violations = [
        FieldViolation(name, f"must name at most {cap} users, not {len(keys)}")
        for name, keys in (("ids", ids), ("usernames", usernames))
        if len(keys) > cap
    ]
    _check(violations)


def etag(value: str) -> str:
    """An etag as a client sends it back; raises InvalidArgument when no etag is that long."""
    _check([] if len(value) <= MAX_ETAG else [FieldViolation("etag", "is not an etag we issued")])
    return value


def user_changes(request: users_pb2.UpdateUserRequest) -> UserChanges:
    """The validated changes of an update; raises InvalidArgument."""
    paths = list(request.update_mask.paths)
    violations = [] if request.HasField("user") else [FieldViolation("user", "is required")]
    violations += [
        FieldViolation(
            f"update_mask.paths[{index}]", f"{echo(path)} is not one of {UPDATABLE_PATHS}"
        )
        for index, path in enumerate(paths[:MAX_MASK_PATHS])
        if path not in UPDATABLE_PATHS
    ]
    if len(paths) > MAX_MASK_PATHS:
        violations.append(FieldViolation("update_mask", f"names more than {MAX_MASK_PATHS} paths"))
    if not paths:
        violations.append(FieldViolation("update_mask", "must name at least one field"))
    if request.user.id <= 0:
        violations.append(FieldViolation("user.id", "must be a positive user id"))
    values = {path: getattr(request.user, path) for path in paths if path in UPDATABLE_PATHS}
    if "username" in values:
        values["username"] = values["username"].lower()
    violations += _field_problems("user.", values)
    _check(violations)
    return UserChanges(**values)


def page_size(value: int) -> int:
    """The effective page size: 0 -> default, capped at the maximum; negative is invalid."""
    _check([] if value >= 0 else [FieldViolation("page_size", "must not be negative")])
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def username_prefix(value: str) -> str:
    """The lowercased prefix filter; raises InvalidArgument when it cannot match a username."""
    prefix = value.lower()
    if not USERNAME_PREFIX_RE.fullmatch(prefix):
        _check([FieldViolation("username_prefix", "must be a possible start of a username")])
    return prefix
