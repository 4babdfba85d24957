"""What the routes take from the app: its users-service client and its settings.

Plain functions of the request rather than FastAPI dependencies: FastAPI solves each dependency
of each request anew (a sub-solve with its own cache key and parameter parsing), which cost the
read endpoint about a seventh of its CPU under `make bench`.
"""

from __future__ import annotations

from fastapi import Request

from webapp.config import Settings
from webapp.grpc_client import UsersClient


def users_client(request: Request) -> UsersClient:
    """The app's users-service client (opened in the lifespan)."""
    client: UsersClient = request.app.state.client
    return client


def app_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings
