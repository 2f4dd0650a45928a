"""create_app(): the FastAPI application, its lifespan, routers and error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from service import __version__, auth, errors, migrate, observability
from service.config import Settings, get_settings
from service.datasets import files as dataset_files
from service.datasets import routes as dataset_routes
from service.datasets import schemas as dataset_schemas
from service.db import Database
from service.errors import problem_responses
from service.http import guard
from service.http.body_limit import BodyLimitMiddleware
from service.http.dependencies import AppState
from service.http.responses import FastJSONResponse, problem_response
from service.inference import invocations as invocation_routes
from service.inference import v2 as v2_routes
from service.jobs import routes as job_routes
from service.models import routes as model_routes
from service.models.cache import CompiledModelCache
from service.registry import routes as registry_routes
from service.registry.refs import RefCache
from service.state import STATE_KEY, State
from service.ui import routes as ui_routes
from service.worker import executor as job_executor

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
        return problem_response(exc.problem(), headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return problem_response(validation_problem(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        err = errors.RegfitError(
            str(exc.detail),
            status=exc.status_code,
            title=title,
            slug=title.lower().replace(" ", "-"),
        )
        return problem_response(err.problem(), headers=getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    async def _database_away(request: Request, exc: OperationalError) -> Response:
        # A restarted or unreachable database is not the client's fault, nor a bug: 503, and
        # the pool reconnects on the next request (pre-ping), without restarting the service.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        err = errors.ServiceUnavailable("the database is unavailable; retry shortly")
        return problem_response(err.problem(), headers={"Retry-After": "2"})

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> Response:
        # A value the database refuses to store or compare (PostgreSQL: a NUL character in
        # a text or JSON string, a number out of range): the request's fault, and the
        # session has rolled back, so nothing was written.
        log.info("unstorable value on %s %s: %s", request.method, request.url.path, exc.orig)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "invalid value"
        err = errors.InvalidInput(f"a value in the request cannot be stored: {reason}")
        return problem_response(err.problem())

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client closed the connection mid-body (an aborted upload): nothing is wrong
        # here, and whatever it had sent is removed on the way out. One info line, and the
        # request is counted under nginx's 499 ("client closed request"), not as a 500.
        log.info(
            "client disconnected before sending the whole body: %s %s",
            request.method,
            request.url.path,
        )
        err = errors.ClientClosedRequest("the client closed the connection before the body ended")
        return problem_response(err.problem())

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> Response:
        if not errors.is_disk_full(exc):
            return await _unexpected(request, exc)
        # Whatever was being stored has been removed on the way out (temp files, partial
        # Parquet): the client may retry once space is freed; the service keeps answering.
        log.warning("disk full on %s %s: %s", request.method, request.url.path, exc)
        err = errors.InsufficientStorage(
            "no space left on the server's data disk; nothing was stored (retry when space "
            "is freed)"
        )
        return problem_response(err.problem())

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = errors.RegfitError(
            "internal error; see the server log",
            status=500,
            title="Internal server error",
            slug="internal",
        )
        # Runs outside the observability middleware, which would otherwise add the header.
        request_id = observability.current_request_id()
        headers = {observability.REQUEST_ID_HEADER: request_id} if request_id else None
        return problem_response(err.problem(), headers=headers)


async def sweep_partial_files_forever(settings: Settings) -> None:
    """Every ``partial_sweep_interval_seconds``, delete partial upload files older than
    ``partial_file_max_age_seconds``: a process killed mid-upload leaves its file behind,
    and the next start-up may be far away."""
    while True:
        await asyncio.sleep(settings.partial_sweep_interval_seconds)
        try:
            removed = await to_thread.run_sync(
                functools.partial(
                    dataset_files.sweep_partial_files,
                    settings.data_dir,
                    older_than_seconds=settings.partial_file_max_age_seconds,
                )
            )
        except OSError as exc:  # a full or missing disk must not end the sweeping
            log.warning("sweeping partial upload files failed: %s", exc)
            continue
        if removed:
            log.info("swept %d partial upload file(s)", removed)


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]


def _operation_id(route: APIRoute) -> str:
    """The route's function name: ``create_job``, ``get_model``, ``predict``, …"""
    return route.name


def _problem_content(response: dict[str, Any]) -> None:
    """Declare an error response as ``application/problem+json`` with the Problem schema."""
    response["content"] = {errors.PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}}


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Bodies routes read themselves (FastAPI registers only those it parses).
EXTRA_SCHEMAS: tuple[type[BaseModel], ...] = (
    *model_routes.PREDICT_REQUEST_MODELS,
    *dataset_schemas.UPLOAD_REQUEST_MODELS,
)


def document_contract(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what the service sends.

    Every error response (declared per route, plus ``default``) is ``application/problem+json``
    with the one :class:`~service.errors.Problem` schema, FastAPI's ``HTTPValidationError``
    is gone (its 422 is a Problem too), and the bodies the routes parse themselves are in
    ``components``. Idempotent: it runs on the cached document.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    documented: tuple[type[BaseModel], ...] = (errors.Problem, *EXTRA_SCHEMAS)
    for model in documented:
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(model_schema.pop("$defs", {}))
        components.setdefault(model.__name__, model_schema)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                if code == "default" or int(code) >= 400:
                    if code == "422":
                        response["description"] = errors.ERROR_DESCRIPTIONS[422]
                    _problem_content(response)
            if "default" not in responses:
                responses["default"] = {"description": "Any other error"}
                _problem_content(responses["default"])
    return schema


def install_openapi(app: FastAPI) -> None:
    """Post-process the generated document (after every other step, auth's included)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return document_contract(build())

    app.openapi = openapi  # type: ignore[method-assign]


# Swagger UI and ReDoc as shipped on npm (swagger-ui-dist, redoc's standalone bundle), with
# their licences: the docs pages load nothing from another host, so they work offline.
DOCS_STATIC = Path(__file__).parent / "docs_static"
DOCS_ASSETS = "/docs/assets"
HOME = "/ui"  # where `GET /` leads a person: the dashboard


def install_docs(app: FastAPI) -> None:
    """``GET /``, ``/docs`` (Swagger UI) and ``/redoc`` with their assets served by the app.

    The assets are a route, not a ``Mount``, so the auth middleware sees them as public
    routes (an unknown path needs a key when keys are enforced). Only the shipped files can
    be named: the table is built from the folder, never from the request's path.
    """
    assets = {
        f"{folder.name}/{file.name}": file
        for folder in sorted(DOCS_STATIC.iterdir())
        if folder.is_dir()
        for file in sorted(folder.iterdir())
        if file.is_file()
    }

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(HOME)

    @app.get(DOCS_ASSETS + "/{name:path}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        path = assets.get(name)
        if path is None:
            raise errors.NotFound(f"no documentation asset {name!r}")
        return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/swagger-ui/favicon-32x32.png",
            # The default validator badge asks an online validator about the document.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API reference",
            redoc_js_url=f"{DOCS_ASSETS}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )


def create_app(settings: Settings | None = None, *, start_executor: bool = True) -> FastAPI:
    """Build the application. The lifespan opens the database and starts the job executor."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, State]]:
        db = Database(settings.database_url)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        dataset_files.sweep_partial_files(
            settings.data_dir, older_than_seconds=settings.partial_file_max_age_seconds
        )
        sweeper = asyncio.create_task(sweep_partial_files_forever(settings))
        state = State(
            settings=settings,
            database=db,
            executor=job_executor.create_executor(settings, db),
            model_cache=CompiledModelCache(settings.model_cache_size),
            ref_cache=RefCache(db, settings.registry_ref_cache_seconds),
        )
        if start_executor:
            state.executor.start()
        try:
            yield {STATE_KEY: state}
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            state.executor.stop()
            db.dispose()

    app = FastAPI(
        title="regfit",
        version=__version__,
        summary="Train, tune and serve regularized linear models (Lasso, Ridge, ElasticNet).",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
        generate_unique_id_function=_operation_id,
        # One schema per model: JobSpec reads and writes "register" alike.
        separate_input_output_schemas=False,
        docs_url=None,  # install_docs serves them with the shipped assets
        redoc_url=None,
    )
    install_error_handlers(app)
    install_docs(app)

    @app.get("/healthz", tags=["health"], response_model=Health)
    def healthz() -> Response:
        """Liveness: the process answers."""
        return FastJSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["health"], response_model=Readiness, responses=problem_responses(503))
    def readyz(state: AppState) -> Response:
        """Ready when the database answers at the migrations' head and the executor runs."""
        db = state.database
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
        if not state.executor.is_running():
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
    app.include_router(ui_routes.router)
    # The middleware added last runs first: every response, a 401 too, gets a request id,
    # is counted and is logged.
    # Inside authentication: a caller without a key learns nothing about the limits.
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    auth.install(app, settings)
    guard.install(app, settings)  # Host, cross-site and content type checks, before auth
    observability.install(app, settings)
    install_openapi(app)
    return app
