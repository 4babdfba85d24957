"""What the routes take from the app: its users gateway and its settings.

Plain functions of the request rather than FastAPI dependencies: FastAPI solves each dependency
of each request anew (a sub-solve with its own cache key and parameter parsing), a measurable
share of the read endpoint's CPU (docs/performance.md).
"""

from __future__ import annotations

from fastapi import Request

from webapp.config import Settings
from webapp.gateway import UsersGateway


def users_gateway(request: Request) -> UsersGateway:
    """The app's users gateway (opened in the lifespan)."""
    gateway: UsersGateway = request.app.state.gateway
    return gateway


def app_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def client_address(request: Request) -> str | None:
    """The address the request came from (uvicorn's peer: no proxy headers are trusted)."""
    return request.client.host if request.client else None
