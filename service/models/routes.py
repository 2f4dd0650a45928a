"""Model routes: read, list, export, delete, predict."""

from __future__ import annotations

import csv
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from service import errors
from service.db import Database
from service.models import portable
from service.models import service as models
from service.registry import refs
from service.registry import service as registry
from service.web import PageParams, ReadSession, WriteSession, page_body

router = APIRouter(prefix="/v1/models", tags=["models"])

# Bodies up to this size are predicted on the event loop. Parsing holds the GIL (orjson, and
# numpy converting lists), so a thread would not free the loop any sooner than the GIL's
# 5 ms switch interval, and 1 MiB parses in about that time; the hop to the thread pool
# cost a 1000-row batch 20 % of its throughput. Bigger bodies (up to max_predict_rows rows)
# go to a thread, so the loop serves other requests between the GIL's switches.
INLINE_PREDICT_BYTES = 1 << 20


class CompiledModelCache:
    """Compiled portable models by id (models are immutable, so entries never go stale)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, portable.CompiledModel] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, model_id: str) -> portable.CompiledModel | None:
        with self._lock:
            model = self._items.get(model_id)
            if model is not None:
                self._items.move_to_end(model_id)
            return model

    def put(self, model_id: str, model: portable.CompiledModel) -> None:
        with self._lock:
            self._items[model_id] = model
            self._items.move_to_end(model_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def evict(self, model_id: str) -> None:
        with self._lock:
            self._items.pop(model_id, None)


def _cache(request: Request) -> CompiledModelCache:
    state = request.app.state
    cache = getattr(state, "model_cache", None)
    if cache is None:
        cache = state.model_cache = CompiledModelCache(state.settings.model_cache_size)
    return cache


def _load_compiled(db: Database, model_id: str) -> portable.CompiledModel:
    with db.session(readonly=True) as session:
        doc = models.get_portable(session=session, model_id=model_id)
    return portable.compile_model(doc)


async def compiled_model(request: Request, model_id: str) -> portable.CompiledModel:
    cache = _cache(request)
    model = cache.lookup(model_id)
    if model is None:
        model = await run_in_threadpool(_load_compiled, request.app.state.db, model_id)
        cache.put(model_id, model)
    return model


class RequestHandlerRoute(APIRoute):
    """A documented route whose endpoint takes the :class:`Request` and returns a
    :class:`Response` itself.

    FastAPI's per-request work (solving dependencies, validating parameters, serializing the
    return value) is skipped: the endpoint validates its own body, and for a one-row
    prediction that work costs more than the prediction.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


PREDICT_OPENAPI: dict[str, Any] = {
    # The endpoint reads ``model_id`` from ``request.path_params``, so it is declared here.
    "parameters": [
        {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ],
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "properties": {"rows": {"type": "array", "items": {"type": "array"}}},
                            "required": ["rows"],
                        },
                        {
                            "type": "object",
                            "properties": {
                                "records": {"type": "array", "items": {"type": "object"}}
                            },
                            "required": ["records"],
                        },
                    ]
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
        "required": True,
    },
}


async def predict(request: Request) -> Response:
    """Predictions for rows (in ``features`` order), records, or a CSV with a header.

    Validation is :mod:`service.models.portable`'s, not pydantic's: one numpy conversion for
    an all-numeric body, a check per cell (naming each bad one) for anything else.
    """
    answering = await refs.resolve_request(request)
    model = await compiled_model(request, answering.model_id)
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json").lower()
    limit = request.app.state.settings.max_predict_rows
    if len(body) <= INLINE_PREDICT_BYTES:
        predictions = _predict(model, content_type, body, limit)
    else:
        predictions = await run_in_threadpool(_predict, model, content_type, body, limit)
    return Response(
        content=prediction_body(predictions, answering),
        media_type="application/json",
        headers=refs.model_headers(answering),
    )


def prediction_body(predictions: np.ndarray, answering: refs.Resolved) -> bytes:
    """``{"predictions", "model_id", "version"}``: the answer and the model that gave it."""
    return orjson.dumps(
        {
            "predictions": predictions,
            "model_id": answering.model_id,
            "name": answering.name,
            "version": answering.version,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


# A registry version in the path: /v1/models/{name}/versions/{n}/… (see service.registry.refs).
VERSION_PARAMETERS: list[dict[str, Any]] = [
    {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}},
]
VERSION_OPENAPI: dict[str, Any] = {"parameters": VERSION_PARAMETERS[1:]}


# The first route of the router: routes are matched in order, and this is the hot path.
router.add_api_route(
    "/{model_id}/predict",
    predict,
    methods=["POST"],
    route_class_override=RequestHandlerRoute,
    openapi_extra=PREDICT_OPENAPI,
)
router.add_api_route(
    "/{model_id}/versions/{version}/predict",
    predict,
    methods=["POST"],
    route_class_override=RequestHandlerRoute,
    openapi_extra={**PREDICT_OPENAPI, "parameters": VERSION_PARAMETERS},
)


@router.get("")
def list_models(session: ReadSession, page: PageParams) -> dict[str, Any]:
    """Lists models, newest first."""
    items, total = models.list_page(session=session, limit=page.limit, offset=page.offset)
    return page_body([models.model_body(m) for m in items], total=total, page=page)


@router.get("/{model_id}")
def get_model(ref: refs.ResolvedRef, session: ReadSession) -> dict[str, Any]:
    """A model: features, penalty (both notations), coefficients, metrics, tuning."""
    return models.model_body(models.get(session=session, model_id=ref.model_id))


@router.get("/{model_id}/export")
def export_model(ref: refs.ResolvedRef, session: ReadSession) -> dict[str, Any]:
    """The portable model: plain JSON that predicts with numpy alone."""
    return models.get_portable(session=session, model_id=ref.model_id)


@router.get("/{model_id}/path")
def regularization_path(ref: refs.ResolvedRef, session: ReadSession) -> dict[str, Any]:
    """The regularization path: coefficients and nonzero counts per alpha, and the CV curve."""
    path = models.get(session=session, model_id=ref.model_id).summary.get("path")
    if path is None:
        raise errors.NotFound(f"model {ref.model_id!r} has no recorded regularization path")
    return dict(path)


for _suffix, _endpoint in (
    ("", get_model),
    ("/export", export_model),
    ("/path", regularization_path),
):
    router.add_api_route(
        "/{model_id}/versions/{version}" + _suffix,
        _endpoint,
        methods=["GET"],
        openapi_extra=VERSION_OPENAPI,
    )


@router.delete("/{model_id}", status_code=204)
def delete_model(ref: refs.ResolvedRef, request: Request, session: WriteSession) -> Response:
    """Deletes a model (409 while a registry version refers to it)."""
    registry.ensure_unreferenced(session=session, model_id=ref.model_id)
    models.delete(session=session, model_id=ref.model_id)
    session.commit()
    _cache(request).evict(ref.model_id)
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


def _predict(
    model: portable.CompiledModel, content_type: str, body: bytes, limit: int
) -> np.ndarray:
    return portable.predict(model, _parse_request(model, content_type, body, limit))
