"""The webapp's gateway to the users service: calls, values and errors in the webapp's terms.

Routes use this package's names only; grpc and users.v1 stay inside it. Data flows one way:
routes -> gateway (client.py) -> the users service's stubs.
"""

from webapp.gateway.client import HealthReport, UsersGateway
from webapp.gateway.errors import (
    InvalidInputError,
    StaleEtagError,
    UsernameTakenError,
    UserNotFoundError,
    UsersServiceError,
)
from webapp.gateway.streams import UserStream, UserWatch
from webapp.gateway.values import ImportSummary, Page, User, UserEvent

__all__ = [
    "HealthReport",
    "ImportSummary",
    "InvalidInputError",
    "Page",
    "StaleEtagError",
    "User",
    "UserEvent",
    "UserNotFoundError",
    "UserStream",
    "UserWatch",
    "UsernameTakenError",
    "UsersGateway",
    "UsersServiceError",
]
