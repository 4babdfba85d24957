"""The authorization table: who may call each method, and what a member may not see. Written
once here (docs/access.md shows it), enforced once per call by calls.py; deny by default."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grpc_health.v1 import health_pb2
from users.v1 import users_pb2

from users_service.caller import Caller, caller_var
from users_service.denials import PermissionDenied, Unauthenticated
from users_service.identity import Authenticator
from users_service.reply_cache import UserReply

AUTHORIZATION_KEY = "authorization"


class Who(enum.Enum):
    """Who may make a call."""

    ANYONE = "anyone"  # no token needed (one sent is not even read)
    SIGNED_IN = "member"  # a member or an admin
    ADMIN = "admin"
    NOBODY = "nobody"  # a method without a row


Check = Callable[[Any, Caller], None]  # raises PermissionDenied; for members only
Redact = Callable[[Any, Caller], Any]  # a response as a member may see it


@dataclass(frozen=True)
class Rule:
    """One row: who may call, what a member may ask (object and property level), what a member
    sees of the answers."""

    who: Who
    check: Check | None = None
    redact: Redact | None = None


def _hide_email(user: Any, caller: Caller) -> Any:
    if type(user) is UserReply:  # GetUser's, already serialized: both variants at hand
        return user if user.user_id == caller.user_id else user.without_email
    if user.id != caller.user_id and user.email:
        user.email = ""
    return user


def _hide_emails(response: Any, caller: Caller) -> Any:
    for user in response.users:
        _hide_email(user, caller)
    return response


def _hide_lookup_email(response: users_pb2.LookupUsersResponse, caller: Caller) -> Any:
    if response.HasField("user"):
        _hide_email(response.user, caller)
    return response


def _self(user_id: int, caller: Caller) -> None:
    if user_id != caller.user_id:
        raise PermissionDenied("a member may change only its own user")


def _update_self(request: users_pb2.UpdateUserRequest, caller: Caller) -> None:
    _self(request.user.id, caller)
    refused = set(request.update_mask.paths) & {"role", "disabled"}
    if refused:
        raise PermissionDenied(f"a member cannot change its own {', '.join(sorted(refused))}")


def _delete_self(request: users_pb2.DeleteUserRequest, caller: Caller) -> None:
    _self(request.id, caller)


def _has_account(_request: Any, caller: Caller) -> None:
    if caller.user_id is None:
        raise PermissionDenied("only this service's own accounts have a password and tokens")


def _method(service: Any, name: str) -> str:
    return f"/{service.full_name}/{name}"


_USERS = users_pb2.DESCRIPTOR.services_by_name["UserService"]
_AUTH = users_pb2.DESCRIPTOR.services_by_name["AuthService"]
_HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
REFLECTION_METHODS = (
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
)

_ANYONE = Rule(Who.ANYONE)
_MEMBER = Rule(Who.SIGNED_IN)
_ADMIN = Rule(Who.ADMIN)
_ACCOUNT = Rule(Who.SIGNED_IN, check=_has_account)

TABLE: dict[str, Rule] = {
    # UserService: members read the directory (others' emails hidden), change only themselves.
    _method(_USERS, "CreateUser"): _ADMIN,
    _method(_USERS, "GetUser"): Rule(Who.SIGNED_IN, redact=_hide_email),
    _method(_USERS, "BatchGetUsers"): Rule(Who.SIGNED_IN, redact=_hide_emails),
    _method(_USERS, "UpdateUser"): Rule(Who.SIGNED_IN, check=_update_self),
    _method(_USERS, "DeleteUser"): Rule(Who.SIGNED_IN, check=_delete_self),
    _method(_USERS, "ListUsers"): Rule(Who.SIGNED_IN, redact=_hide_emails),
    _method(_USERS, "GetUsers"): Rule(Who.SIGNED_IN, redact=_hide_email),
    _method(_USERS, "ExportUsers"): Rule(Who.SIGNED_IN, redact=_hide_emails),
    _method(_USERS, "ImportUsers"): _ADMIN,
    _method(_USERS, "LookupUsers"): Rule(Who.SIGNED_IN, redact=_hide_lookup_email),
    _method(_USERS, "WatchUsers"): _ADMIN,
    # AuthService.
    _method(_AUTH, "SignUp"): _ANYONE,  # refused by the handler when sign-up is closed
    _method(_AUTH, "SignIn"): _ANYONE,
    _method(_AUTH, "ChangePassword"): _ACCOUNT,
    _method(_AUTH, "SignOutEverywhere"): _ACCOUNT,
    _method(_AUTH, "WhoAmI"): _MEMBER,
    _method(_AUTH, "SetRole"): _ADMIN,
    _method(_AUTH, "SetDisabled"): _ADMIN,
    _method(_AUTH, "ResetPassword"): _ADMIN,
    _method(_AUTH, "GetJwks"): _ANYONE,
    # Health answers probes and balancers, which carry no token.
    **{_method(_HEALTH, method.name): _ANYONE for method in _HEALTH.methods},
}


def rule_for(method: str, *, anonymous_reflection: bool) -> Rule:
    """The method's row; reflection's depends on the setting; no row: nobody."""
    if method in REFLECTION_METHODS:
        return _ANYONE if anonymous_reflection else _MEMBER
    return TABLE.get(method, Rule(Who.NOBODY))


def _authorization(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key == AUTHORIZATION_KEY:
            return str(value)
    return None


class Guard:
    """One method's row, bound to the authenticator: admits a call, redacts its answers."""

    __slots__ = ("_authenticator", "_method", "_rule")

    def __init__(self, method: str, rule: Rule, authenticator: Authenticator) -> None:
        self._method = method
        self._rule = rule
        self._authenticator = authenticator

    def admit_now(self, metadata: Sequence[tuple[str, Any]] | None, request: Any) -> Caller | None:
        """`admit` without awaiting, for a token this replica knows (the common case); None
        when `admit` must be awaited."""
        authorization = _authorization(metadata)
        caller = None if authorization is None else self._authenticator.cached(authorization)
        return None if caller is None else self._allow(caller, request)

    async def admit(self, metadata: Sequence[tuple[str, Any]] | None, request: Any) -> Caller:
        """The caller, if allowed (Unauthenticated, PermissionDenied if not); sets caller_var."""
        caller = await self._authenticator.caller(_authorization(metadata))
        if caller is None:
            raise Unauthenticated("this call needs a token: authorization: Bearer <token>")
        return self._allow(caller, request)

    def _allow(self, caller: Caller, request: Any) -> Caller:
        caller_var.set(caller)
        rule = self._rule
        if caller.is_admin and rule.who is not Who.NOBODY:
            return caller
        if caller.role is None or rule.who in (Who.ADMIN, Who.NOBODY):
            raise PermissionDenied(f"{self._method} is not allowed for {caller.role or 'no'} role")
        if rule.check is not None:
            rule.check(request, caller)
        return caller

    def shown(self, response: Any, caller: Caller) -> Any:
        """The response as the caller may see it."""
        if self._rule.redact is None or caller.is_admin:
            return response
        return self._rule.redact(response, caller)


class Access:
    """The guards of every method, from the table.

    Example:
        >>> access = Access(authenticator, anonymous_reflection=False)
        >>> access.guard("/grpc.health.v1.Health/Check") is None  # anyone: nothing to check
        True
    """

    def __init__(self, authenticator: Authenticator, *, anonymous_reflection: bool) -> None:
        self._authenticator = authenticator
        self._anonymous_reflection = anonymous_reflection

    def guard(self, method: str) -> Guard | None:
        """The method's guard, None when anyone may call it."""
        rule = rule_for(method, anonymous_reflection=self._anonymous_reflection)
        if rule.who is Who.ANYONE:
            return None
        return Guard(method, rule, self._authenticator)
