"""The users.v1.AuthService handlers: sign-up, sign-in, passwords, roles, revocation, JWKS."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TypeAlias

import grpc
from google.protobuf import empty_pb2
from plumbing.tokens import KeyRing
from users.v1 import users_pb2, users_pb2_grpc

from users_service import validation
from users_service.auth_config import AuthSettings
from users_service.caller import Caller, caller_var
from users_service.client_address import client_address
from users_service.convert import ROLE_NAMES, timestamp_of, user_message
from users_service.denials import PermissionDenied, Unauthenticated
from users_service.identity import TokenIssuer
from users_service.passwords import MAX_PASSWORD_BYTES, Passwords, check_new_password
from users_service.store import (
    AccountChange,
    AlreadyExists,
    CreateStatus,
    NewUser,
    NotFound,
    UserRecord,
    UserStore,
)
from users_service.throttle import SignInThrottle
from users_service.validation import FieldViolation, InvalidArgument

logger = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext
WRONG_CREDENTIALS = "wrong username or password"


class AuthService(users_pb2_grpc.AuthServiceServicer):
    """users.v1.AuthService over a UserStore; who may call what is access.py's table.

    Example:
        >>> users_pb2_grpc.add_AuthServiceServicer_to_server(AuthService(...), server)
    """

    def __init__(
        self,
        store: UserStore,
        passwords: Passwords,
        issuer: TokenIssuer,
        keys: KeyRing,
        settings: AuthSettings,
    ) -> None:
        self._store = store
        self._passwords = passwords
        self._issuer = issuer
        self._keys = keys
        self._settings = settings
        self._throttle = SignInThrottle(
            settings.signin_account_failures,
            settings.signin_address_failures,
            settings.signin_window_seconds,
        )

    def _signed_in(self, user: UserRecord) -> users_pb2.SignInResponse:
        token, expires_at = self._issuer.issue(user)
        return users_pb2.SignInResponse(
            access_token=token,
            token_type="Bearer",  # noqa: S106 - the scheme, not a secret
            expire_time=timestamp_of(expires_at),
            user=user_message(user),
        )

    async def SignUp(
        self, request: users_pb2.SignUpRequest, context: Context
    ) -> users_pb2.SignInResponse:
        if not self._settings.signup_open:
            raise PermissionDenied("self-service sign-up is turned off: ask an admin")
        new = validation.new_user(
            users_pb2.CreateUserRequest(
                username=request.username, email=request.email, display_name=request.display_name
            )
        )
        check_new_password(request.password, "password")
        password_hash = await self._passwords.hash(request.password)
        [outcome] = await self._store.create_users([replace(new, password_hash=password_hash)])
        if outcome.status is not CreateStatus.CREATED or outcome.user is None:
            raise AlreadyExists(f"username {new.username!r} is already taken")
        logger.info("signed up", extra={"user_id": outcome.user.id})
        return self._signed_in(outcome.user)

    async def SignIn(
        self, request: users_pb2.SignInRequest, context: Context
    ) -> users_pb2.SignInResponse:
        username = request.username.strip().lower()[:64]
        address = client_address(context)
        self._throttle.check(username, address)
        user, stored = await self._credentials(username)
        password = request.password
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            password, stored = "", ""  # never matches; still hashed, in the same time
        checked = await self._passwords.check(stored, password)
        if user is None or not checked.ok:
            self._throttle.failed(username, address)
            raise Unauthenticated(WRONG_CREDENTIALS)
        if user.disabled:
            raise PermissionDenied("this account is disabled")
        self._throttle.succeeded(username)
        if checked.rehash is not None:  # the hash parameters changed: store the new hash
            user = await self._store.update_account(
                user.id, AccountChange(password_hash=checked.rehash, revoke=False)
            )
        return self._signed_in(user)

    async def _credentials(self, username: str) -> tuple[UserRecord | None, str]:
        if validation.username_problem(username) is not None:
            return None, ""
        try:
            return await self._store.get_credentials(username)
        except NotFound:
            return None, ""

    async def ChangePassword(
        self, request: users_pb2.ChangePasswordRequest, context: Context
    ) -> empty_pb2.Empty:
        caller = _caller()
        user = await self._store.get_user(_account(caller))
        check_new_password(request.new_password, "new_password")
        self._throttle.check(user.username, client_address(context))
        _, stored = await self._store.get_credentials(user.username)
        if not (await self._passwords.check(stored, request.current_password)).ok:
            self._throttle.failed(user.username, client_address(context))
            raise InvalidArgument([FieldViolation("current_password", "is wrong")])
        new_hash = await self._passwords.hash(request.new_password)
        await self._store.update_account(user.id, AccountChange(password_hash=new_hash))
        return empty_pb2.Empty()

    async def SignOutEverywhere(
        self, request: users_pb2.SignOutEverywhereRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._store.update_account(_account(_caller()), AccountChange())
        return empty_pb2.Empty()

    async def WhoAmI(
        self, request: users_pb2.WhoAmIRequest, context: Context
    ) -> users_pb2.WhoAmIResponse:
        caller = _caller()
        answer = users_pb2.WhoAmIResponse(
            subject=caller.subject,
            issuer=caller.issuer,
            role={"admin": users_pb2.ROLE_ADMIN, "member": users_pb2.ROLE_MEMBER}.get(
                caller.role or "", users_pb2.ROLE_UNSPECIFIED
            ),
        )
        if caller.user_id is not None:
            answer.user.CopyFrom(user_message(await self._store.get_user(caller.user_id)))
        return answer

    async def SetRole(self, request: users_pb2.SetRoleRequest, context: Context) -> users_pb2.User:
        role = ROLE_NAMES.get(request.role)
        if role is None:
            raise InvalidArgument([FieldViolation("role", "must be ROLE_MEMBER or ROLE_ADMIN")])
        user_id = validation.user_id(request.id, "id")
        return user_message(await self._store.update_account(user_id, AccountChange(role=role)))

    async def SetDisabled(
        self, request: users_pb2.SetDisabledRequest, context: Context
    ) -> users_pb2.User:
        user_id = validation.user_id(request.id, "id")
        change = AccountChange(disabled=request.disabled)
        return user_message(await self._store.update_account(user_id, change))

    async def ResetPassword(
        self, request: users_pb2.ResetPasswordRequest, context: Context
    ) -> empty_pb2.Empty:
        user_id = validation.user_id(request.id, "id")
        check_new_password(request.new_password, "new_password")
        new_hash = await self._passwords.hash(request.new_password)
        await self._store.update_account(user_id, AccountChange(password_hash=new_hash))
        return empty_pb2.Empty()

    async def GetJwks(
        self, request: users_pb2.GetJwksRequest, context: Context
    ) -> users_pb2.GetJwksResponse:
        self._keys.refresh()
        return users_pb2.GetJwksResponse(jwks_json=json.dumps(self._keys.jwks()))


def _caller() -> Caller:
    caller = caller_var.get()
    if caller is None:  # only with the access check off
        raise Unauthenticated("this call needs a token: authorization: Bearer <token>")
    return caller


def _account(caller: Caller) -> int:
    if caller.user_id is None:
        raise PermissionDenied("only this service's own accounts have a password and tokens")
    return caller.user_id


async def ensure_admin(
    store: UserStore, passwords: Passwords, username: str, password: str
) -> None:
    """Creates the first admin unless a user already has its username (then leaves it as is)."""
    try:
        await store.get_credentials(username)
    except NotFound:
        pass
    else:
        return
    new = NewUser(username=username, password_hash=await passwords.hash(password), role="admin")
    [outcome] = await store.create_users([new])
    if outcome.status is CreateStatus.CREATED:
        logger.info("first admin created", extra={"username": username})
