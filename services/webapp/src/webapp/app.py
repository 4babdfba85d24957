"""The FastAPI application: routes, error handlers, middleware and the users gateway's lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from plumbing.metrics import serve
from plumbing.rate_limits import Rate
from plumbing.request_ids import request_id_var
from plumbing.tracing import Tracing

from webapp import errors
from webapp.config import Settings
from webapp.gateway import UsersGateway
from webapp.guards import Slots, WriteRateLimit
from webapp.middleware import RequestContextMiddleware
from webapp.routes import api, auth, auth_api, docs, events, health, importer, stream, ui
from webapp.telemetry import WebappMetrics

STATIC_DIR = Path(__file__).parent / "static"


def _html_error(
    request: Request, status: int, detail: str, headers: dict[str, str] | None
) -> Response:
    if status == 401:  # no session, or one the users service refused: sign in (again)
        return auth.to_sign_in(request)
    context = {
        "status": status,
        "title": HTTPStatus(status).phrase,
        "detail": detail,
        "request_id": request_id_var.get(),
    }
    return ui.render(request, "error.html", context, status, headers)


def create_app(settings: Settings, tracing: Tracing | None = None) -> FastAPI:
    """Builds the app; the users gateway (and the metrics port, if set) opens when it starts
    and closes when it stops. Spans are made only with `tracing` (plumbing.tracing.configure).

    >>> app = create_app(Settings.from_env())  # doctest: +SKIP
    """
    metrics = WebappMetrics() if settings.metrics_listen_address else None
    tracer = None if tracing is None else tracing.tracer

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.gateway = UsersGateway(settings, metrics, tracer)
        app.state.gateway.start()
        endpoint = watch = None
        if metrics is not None:
            endpoint = app.state.metrics_endpoint = serve(
                settings.metrics_listen_address, metrics.registry
            )
            # The ready gauge stays current even where nobody asks /readyz.
            watch = asyncio.create_task(
                health.keep_checking(app.state.readiness, app.state.gateway), name="readiness"
            )
        try:
            yield
        finally:
            if watch is not None:
                watch.cancel()
            await app.state.gateway.close()
            if endpoint is not None:
                endpoint.close()

    app = FastAPI(
        title="userstack webapp",
        summary="HTTP frontend over the users gRPC service.",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
        # FastAPI's own OpenTelemetry hooks off: the webapp records its requests itself
        # (telemetry.py), and the hooks' check alone reads os.environ thrice per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.readiness = health.Readiness()
    app.state.metrics = metrics
    if metrics is not None:
        metrics.watch_readiness(lambda: app.state.readiness.ready)
    app.state.key_cache = auth.KeyCache()
    app.state.event_streams = Slots(settings.limits.max_event_streams)
    errors.install(app, html=_html_error)
    limits = settings.limits
    # One middleware of ours: every layer is a call per request (docs/performance.md).
    app.add_middleware(
        RequestContextMiddleware,
        allowed_hosts=settings.allowed_hosts,
        metrics=metrics,
        tracer=tracer,
        writes=WriteRateLimit(Rate(limits.writes_per_second, limits.write_burst)),
    )
    if settings.docs:
        docs.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # The API's routes first: routes are tried in order, and its read by id is the hot one; that
    # one goes before everything (the docs and static files included).
    for module in (api, health, importer, events, stream, ui, auth, auth_api):
        _add_routes(app, module.router)
    app.router.routes.sort(key=lambda route: not isinstance(route, api.ReadRoute))  # stable
    return app


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """Puts the router's routes on the app itself, as if declared there.

    Not app.include_router: FastAPI 0.165 keeps an included router as a layer of its own, matched
    anew on every request (a measurable share of a read's CPU: docs/performance.md). Our routers
    carry their prefix, tags and dependencies on each route already, and are included with no
    options of their own, so that layer would add nothing. What it would have added, and these
    routes lack: `app.dependency_overrides` (unused here; tests run the real app) and app-wide
    body or form limits. The OpenAPI document lists the paths in this order.
    """
    app.router.routes.extend(router.routes)
