"""create_app(): the FastAPI application, its lifespan, routers and error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from service import auth, errors, migrate, observability
from service.config import Settings, get_settings
from service.datasets import routes as dataset_routes
from service.datasets import storage as dataset_storage
from service.db import Database
from service.inference import invocations as invocation_routes
from service.inference import v2 as v2_routes
from service.jobs import executor as job_executor
from service.jobs import routes as job_routes
from service.models import routes as model_routes
from service.registry import routes as registry_routes
from service.web import FastJSONResponse, problem_response

log = logging.getLogger("regfit")


def _json_pointer(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, parts = parts[0], parts[1:]
        prefix = "" if where == "body" else f"{where}:"
    else:
        prefix = ""
    return prefix + "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def validation_problem(exc: RequestValidationError) -> dict[str, Any]:
    items = []
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if not str(p).startswith("function-after")]
        loc += (err.get("ctx") or {}).get("at", ())  # the field a model's own check names
        items.append(
            {"loc": _json_pointer(loc), "msg": err.get("msg", "invalid"), "type": err.get("type")}
        )
    first = items[0] if items else {"loc": "/", "msg": "invalid request"}
    if any(item["type"] == "json_invalid" for item in items):
        return errors.MalformedJSON(
            f"the body is not valid JSON: {first['msg']}", errors=items
        ).problem()
    return errors.InvalidInput(
        f"{first['loc']}: {first['msg']}"
        + (f" (and {len(items) - 1} more)" if len(items) > 1 else ""),
        errors=items,
    ).problem()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.RegfitError)
    async def _domain(request: Request, exc: errors.RegfitError) -> Response:
        return problem_response(exc.problem())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return problem_response(validation_problem(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        err = errors.RegfitError(str(exc.detail), status=exc.status_code)
        err.title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        err.slug = err.title.lower().replace(" ", "-")
        return problem_response(err.problem(), headers=getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    async def _database_away(request: Request, exc: OperationalError) -> Response:
        # A restarted or unreachable database is not the client's fault, nor a bug: 503, and
        # the pool reconnects on the next request (pre-ping), without restarting the service.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        err = errors.ServiceUnavailable("the database is unavailable; retry shortly")
        return problem_response(err.problem(), headers={"Retry-After": "2"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = errors.RegfitError("internal error; see the server log", status=500)
        err.title, err.slug = "Internal server error", "internal"
        # Runs outside the observability middleware, which would otherwise add the header.
        request_id = observability.current_request_id()
        headers = {observability.REQUEST_ID_HEADER: request_id} if request_id else None
        return problem_response(err.problem(), headers=headers)


class FormEncodedAsJSON:
    """Reads an ``application/x-www-form-urlencoded`` body as JSON.

    No route takes form fields, and ``curl -d '{...}'`` sends JSON with that content type
    unless told otherwise; treating it as JSON beats a puzzling validation error.
    """

    _FORM = b"application/x-www-form-urlencoded"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = scope["headers"]
            for i, (name, value) in enumerate(headers):
                if name == b"content-type" and value.startswith(self._FORM):
                    headers = list(headers)
                    headers[i] = (b"content-type", b"application/json")
                    scope = {**scope, "headers": headers}
                    break
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, *, start_executor: bool = True) -> FastAPI:
    """Build the application. The lifespan opens the database and starts the job executor."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        dataset_storage.sweep_partial_files(settings.data_dir)
        app.state.db = db
        app.state.executor = job_executor.create_executor(settings, db)
        if start_executor:
            app.state.executor.start()
        try:
            yield
        finally:
            app.state.executor.stop()
            db.dispose()

    app = FastAPI(
        title="regfit",
        version="0.1.0",
        summary="Train, tune and serve regularized linear models (Lasso, Ridge, ElasticNet).",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.state.settings = settings
    install_error_handlers(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> Response:
        """Ready when the database answers at the migrations' head and the executor runs."""
        db: Database = request.app.state.db
        reasons: list[str] = []
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            current = migrate.current_revision(db.engine)
            head = migrate.head_revision(db.url)
            if current != head:
                reasons.append(f"database schema at {current}, migrations head is {head}")
        except Exception as exc:  # any driver error means "not ready", with the reason
            reasons.append(f"database unreachable: {type(exc).__name__}: {exc}".strip()[:300])
        if not request.app.state.executor.is_running():
            reasons.append("job executor is not running")
        if reasons:
            err = errors.ServiceUnavailable("; ".join(reasons), reasons=reasons)
            return problem_response(err.problem())
        return FastJSONResponse({"status": "ready"})

    # Models first: FastAPI matches routes in order, and predictions are the hot path.
    app.include_router(model_routes.router)
    app.include_router(invocation_routes.router)
    app.include_router(v2_routes.router)
    app.include_router(registry_routes.router)
    app.include_router(dataset_routes.router)
    app.include_router(job_routes.router)
    # The middleware added last runs first: every response, a 401 too, gets a request id,
    # is counted and is logged.
    app.add_middleware(FormEncodedAsJSON)
    auth.install(app, settings)
    observability.install(app, settings)
    return app
