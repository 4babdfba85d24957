"""The webapp's gateway to the users service: calls, values and errors in the webapp's terms.

Routes use this package's names only; grpc and users.v1 stay inside it. Data flows one way:
routes -> gateway (client.py) -> the users service's stubs.
"""

from webapp.gateway.accounts import Accounts
from webapp.gateway.client import HealthReport, UsersGateway
from webapp.gateway.errors import (
    ForbiddenError,
    InvalidInputError,
    NotSignedInError,
    StaleEtagError,
    TooManyAttemptsError,
    UsernameTakenError,
    UserNotFoundError,
    UsersServiceError,
    www_authenticate,
)
from webapp.gateway.streams import UserStream, UserWatch
from webapp.gateway.values import Identity, ImportSummary, Page, SignedIn, User, UserEvent

__all__ = [
    "Accounts",
    "ForbiddenError",
    "HealthReport",
    "Identity",
    "ImportSummary",
    "InvalidInputError",
    "NotSignedInError",
    "Page",
    "SignedIn",
    "StaleEtagError",
    "TooManyAttemptsError",
    "User",
    "UserEvent",
    "UserNotFoundError",
    "UserStream",
    "UserWatch",
    "UsernameTakenError",
    "UsersGateway",
    "UsersServiceError",
    "www_authenticate",
]
