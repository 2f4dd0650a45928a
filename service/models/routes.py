"""Model routes: read, list, export, delete, predict."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from service import errors, state
from service.db import Database, after_commit
from service.errors import problem_responses
from service.models import portable
from service.models import service as models
from service.models.schemas import (
    ModelOut,
    ModelPage,
    PortableModel,
    Predictions,
    PredictRecords,
    PredictRows,
    RegularizationPath,
)
from service.web import (
    FastJSONResponse,
    ModelCache,
    PageParams,
    ReadSession,
    WriteSession,
    page_body,
)

router = APIRouter(prefix="/v1/models", tags=["models"])

# Bodies up to this size are predicted on the event loop. Parsing holds the GIL (orjson, and
# numpy converting lists), so a thread would not free the loop any sooner than the GIL's
# 5 ms switch interval, and 1 MiB parses in about that time; the hop to the thread pool
# cost a 1000-row batch 20 % of its throughput. Bigger bodies (up to max_predict_rows rows)
# go to a thread, so the loop serves other requests between the GIL's switches.
INLINE_PREDICT_BYTES = 1 << 20


def _load_compiled(db: Database, model_id: str) -> portable.CompiledModel:
    with db.session(readonly=True) as session:
        doc = models.get_portable(session=session, model_id=model_id)
    return portable.compile_model(doc)


async def compiled_model(app_state: state.State, model_id: str) -> portable.CompiledModel:
    cache = app_state.model_cache
    model = cache.lookup(model_id)
    if model is None:
        model = await run_in_threadpool(_load_compiled, app_state.database, model_id)
        cache.put(model_id, model)
    return model


class RequestHandlerRoute(APIRoute):
    """A documented route whose endpoint takes the :class:`Request` and returns a
    :class:`Response` itself.

    FastAPI's per-request work (solving dependencies, validating parameters, serializing the
    return value) is skipped: the endpoint validates its own body, and for a one-row
    prediction that work costs more than the prediction. The bodies are still declared
    (:data:`PREDICT_OPENAPI`, ``response_model``) and the contract tests hold the route to
    them.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


def _schema_ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


# Referenced models are added to the document's components by service.main (a body FastAPI
# does not parse is not registered by it).
PREDICT_REQUEST_MODELS = (PredictRows, PredictRecords)
PREDICT_OPENAPI: dict[str, Any] = {
    # The endpoint reads ``model_id`` from ``request.path_params``, so it is declared here.
    "parameters": [
        {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ],
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {"oneOf": [_schema_ref(model) for model in PREDICT_REQUEST_MODELS]}
            },
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "A header line naming the features, then one row per line",
                }
            },
        },
        "required": True,
    },
}


async def predict(request: Request) -> Response:
    """Predictions for rows (in ``features`` order), records, or a CSV with a header.

    Validation is :mod:`service.models.portable`'s, not pydantic's: one numpy conversion for
    an all-numeric body, a check per cell (naming each bad one) for anything else.
    """
    app_state = state.of(request)
    model = await compiled_model(app_state, request.path_params["model_id"])
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json").lower()
    limit = app_state.settings.max_predict_rows
    if len(body) <= INLINE_PREDICT_BYTES:
        content = _predict(model, content_type, body, limit)
    else:
        content = await run_in_threadpool(_predict, model, content_type, body, limit)
    return Response(content=content, media_type="application/json")


# The first route of the router: routes are matched in order, and this is the hot path.
router.add_api_route(
    "/{model_id}/predict",
    predict,
    methods=["POST"],
    route_class_override=RequestHandlerRoute,
    openapi_extra=PREDICT_OPENAPI,
    response_model=Predictions,
    responses=problem_responses(400, 404, 413, 415, 422),
)


@router.get("", response_model=ModelPage, responses=problem_responses(422))
def list_models(session: ReadSession, page: PageParams) -> Response:
    """Lists models, newest first, as compact items (``GET /v1/models/{id}`` has the rest)."""
    items, total = models.list_page(session=session, limit=page.limit, offset=page.offset)
    return FastJSONResponse(page_body(items, total=total, page=page))


# The bodies below are built by the fit and stored as JSON; they are sent as stored (orjson),
# and their schemas document them (the contract tests check every response against them).


@router.get("/{model_id}", response_model=ModelOut, responses=problem_responses(404))
def get_model(model_id: str, session: ReadSession) -> Response:
    """A model: features, penalty (both notations), coefficients, metrics, tuning."""
    return FastJSONResponse(models.model_body(models.get(session=session, model_id=model_id)))


@router.get("/{model_id}/export", response_model=PortableModel, responses=problem_responses(404))
def export_model(model_id: str, session: ReadSession) -> Response:
    """The portable model: plain JSON that predicts with numpy alone."""
    return FastJSONResponse(models.get_portable(session=session, model_id=model_id))


@router.get("/{model_id}/path", response_model=RegularizationPath, responses=problem_responses(404))
def get_model_path(model_id: str, session: ReadSession) -> Response:
    """The regularization path: coefficients and nonzero counts per alpha, and the CV curve."""
    path = models.get(session=session, model_id=model_id).summary.get("path")
    if path is None:
        raise errors.NotFound(f"model {model_id!r} has no recorded regularization path")
    return FastJSONResponse(path)


@router.delete(
    "/{model_id}", status_code=204, response_class=Response, responses=problem_responses(404)
)
def delete_model(model_id: str, session: WriteSession, cache: ModelCache) -> Response:
    """Deletes a model."""
    models.delete(session=session, model_id=model_id)
    after_commit(session, lambda: cache.evict(model_id))
    return Response(status_code=204)


def _parse_csv(text: str) -> tuple[list[str], list[list[str | None]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration as exc:
        raise errors.InvalidInput("the CSV body is empty; send a header line and rows") from exc
    rows: list[list[str | None]] = [
        [cell if cell != "" else None for cell in row] for row in reader if row
    ]
    return header, rows


def _parse_request(
    model: portable.CompiledModel, content_type: str, body: bytes, limit: int
) -> Any:
    if content_type.startswith("text/csv"):
        try:
            header, table = _parse_csv(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise errors.InvalidInput("the CSV body is not valid UTF-8") from exc
        _check_count(len(table), limit)
        return portable.parse_table(model, header, table)
    if content_type and not content_type.startswith("application/json"):
        raise errors.UnsupportedMediaType(
            f"content type {content_type!r} is not supported; send application/json or text/csv"
        )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.MalformedJSON(
            f"the body is not valid JSON: {exc}", errors=[errors.field_error("/", str(exc))]
        ) from exc
    if not isinstance(payload, dict) or len({"rows", "records"} & payload.keys()) != 1:
        raise errors.InvalidInput(
            'send exactly one of {"rows": [[...]]} or {"records": [{...}]}',
            errors=[errors.field_error("/", "expected an object with 'rows' or 'records'")],
        )
    unknown = sorted(set(payload) - {"rows", "records"})
    if unknown:
        raise errors.InvalidInput(
            f"unknown field {unknown[0]!r}",
            errors=[errors.field_error(f"/{unknown[0]}", "unknown field")],
        )
    if "rows" in payload:
        rows = payload["rows"]
        if not isinstance(rows, list):
            raise errors.InvalidInput(
                "'rows' must be a list of lists",
                errors=[errors.field_error("/rows", "expected a list")],
            )
        _check_count(len(rows), limit)
        return portable.parse_rows(model, rows)
    records = payload["records"]
    if not isinstance(records, list):
        raise errors.InvalidInput(
            "'records' must be a list of objects",
            errors=[errors.field_error("/records", "expected a list")],
        )
    _check_count(len(records), limit)
    return portable.parse_records(model, records)


def _check_count(n: int, limit: int) -> None:
    if n > limit:
        raise errors.PayloadTooLarge(f"{n} rows in one request; the limit is {limit}")
    if n == 0:
        raise errors.InvalidInput("no rows to predict")


def _predict(model: portable.CompiledModel, content_type: str, body: bytes, limit: int) -> bytes:
    predictions: np.ndarray = portable.predict(
        model, _parse_request(model, content_type, body, limit)
    )
    return orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
