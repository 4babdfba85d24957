"""/docs: Swagger UI served from the app's own files (no CDN, no inline script)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from webapp.routes.ui import templates

# fastapi-offline ships the Swagger UI 5 bundle (OpenAPI 3.1, which FastAPI emits) as package data.
SWAGGER_DIR = Path(str(files("fastapi_offline") / "static"))


# Every API call takes `Authorization: Bearer <token>` (Swagger UI's Authorize button sends it).
BEARER = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def install(app: FastAPI) -> None:
    """Mounts the Swagger UI assets and serves /docs from a template; the OpenAPI document
    declares the bearer token."""
    app.mount("/static/swagger", StaticFiles(directory=SWAGGER_DIR), name="swagger")
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": BEARER}
            schema["security"] = [{"bearer": []}]
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs(request: Request) -> Response:
        return templates.TemplateResponse(request, "docs.html", {})
