"""Model routes: read, list, export, delete, predict."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from service import auth, errors, state
from service.db import Database, after_commit
from service.errors import problem_responses
from service.http.dependencies import ModelCache, ReadSession, WriteSession
from service.http.paging import PageParams, page_body
from service.http.responses import FastJSONResponse
from service.ml import portable, portable_classifier
from service.models import classifier_plots, explain, onnx_export, plots, predict_input
from service.models import service as models
from service.models.schemas import (
    ModelListPage,
    ModelView,
    PathView,
    PortableDocument,
    PredictAnswer,
    PredictRecords,
    PredictRows,
)
from service.registry import refs
from service.registry import service as registry

router = APIRouter(prefix="/v1/models", tags=["models"])

# Bodies up to this size are predicted on the event loop. Parsing holds the GIL (orjson, and
# numpy converting lists), so a thread would not free the loop any sooner than the GIL's
# 5 ms switch interval, and 1 MiB parses in about that time; the hop to the thread pool
# cost a 1000-row batch 20 % of its throughput. Bigger bodies (up to max_predict_rows rows)
# go to a thread, so the loop serves other requests between the GIL's switches.
INLINE_PREDICT_BYTES = 1 << 20
# A big all-numeric rows body is parsed this many bytes at a time: orjson and numpy hold the
# GIL while they convert, and one slice takes tens of milliseconds, so the event loop gets
# the GIL back between slices instead of waiting seconds for a 100 MB body.
PARSE_SLICE_BYTES = 1 << 20
_ROWS_HEAD = re.compile(rb'\s*\{\s*"rows"\s*:\s*\[')
_ROWS_TAIL = re.compile(rb"\]\s*\}\s*\Z")
_ROW_SEPARATOR = re.compile(rb"\]\s*,\s*\[")
_NON_NUMBER_LITERALS = (b"true", b"false", b"null")


def _load_compiled(db: Database, model_id: str) -> portable.CompiledModel:
    with db.session(readonly=True) as session:
        doc = models.get_portable(session=session, model_id=model_id)
    return portable_classifier.compile_document(doc)


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
EXPLAIN_PARAMETER: dict[str, Any] = {
    "name": "explain",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": "Also return each feature's contribution per row, and the intercept "
    "(regressors only)",
}
OUTPUT_PARAMETER: dict[str, Any] = {
    "name": "output",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["predict", "proba"]},
    "description": "predict (default): values, or a classifier's labels; proba: a "
    "classifier's probabilities per class (the body's output says the same)",
}
PREDICT_OPENAPI: dict[str, Any] = {
    # The endpoint reads ``model_id`` from ``request.path_params``, so it is declared here.
    "parameters": [
        {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}},
        EXPLAIN_PARAMETER,
        OUTPUT_PARAMETER,
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

    Validation is :mod:`service.models.predict_input`'s, not pydantic's: one numpy conversion for
    an all-numeric body, a check per cell (naming each bad one) for anything else.
    """
    app_state = state.of(request)
    answering = await refs.resolve_request(request)
    model = await compiled_model(app_state, answering.model_id)
    content_type = request.headers.get("content-type", "application/json").lower()
    limit = app_state.settings.max_predict_rows
    explain = _explain_flag(request)
    output = _output_query(request)
    if output == "proba" and not predict_input.is_classifier(model):
        predict_input.require_classifier(model, loc="/query/output")
    if explain and predict_input.is_classifier(model):
        raise errors.InvalidInput(
            "explain=true is for regressors: a classifier's probabilities are not a sum of "
            "per-feature contributions (GET the model for its coefficient table)",
            errors=[errors.field_error("/query/explain", "not available for a classifier")],
        )
    body = await _read_body(request, max_lines=limit + 1 if _is_csv(content_type) else None)
    extra: dict[str, Any] | None = None
    if explain:
        predictions, extra = await run_in_threadpool(
            _predict_explained, model, content_type, body, limit
        )
        answer: dict[str, Any] = {"predictions": predictions}
    elif len(body) <= INLINE_PREDICT_BYTES:
        answer = _answer(model, content_type, body, limit, output)
    else:
        answer = await run_in_threadpool(_answer, model, content_type, body, limit, output)
    return Response(
        content=answer_body(answer, answering, extra),
        media_type="application/json",
        headers=refs.model_headers(answering),
    )


# ``output``: a model's predictions (values, or a classifier's labels), or ``proba`` (a
# classifier's probabilities per class).
OUTPUTS = ("predict", "proba")


def _check_output(value: Any, loc: str) -> str:
    if value not in OUTPUTS:
        raise errors.InvalidInput(
            f"output must be one of {', '.join(OUTPUTS)}, got {value!r}",
            errors=[errors.field_error(loc, f"expected one of {', '.join(OUTPUTS)}")],
        )
    return str(value)


def _output_query(request: Request) -> str | None:
    """The ``output`` query parameter (None when absent: the body may say)."""
    value = request.query_params.get("output")
    return None if value is None else _check_output(value, "/query/output")


def _answer(
    model: portable.CompiledModel, content_type: str, body: bytes, limit: int, query: str | None
) -> dict[str, Any]:
    """``{"predictions"}`` or ``{"classes", "probabilities"}``: the ``output`` the query or
    the JSON body names (422 when they disagree), by default the predictions."""
    inputs, asked = _parse_request_output(model, content_type, body, limit)
    if query is not None and asked is not None and asked != query:
        raise errors.InvalidInput(
            f"output {query!r} in the query and {asked!r} in the body disagree",
            errors=[errors.field_error("/output", "differs from the query's output")],
        )
    output = query or asked or "predict"
    if output == "proba":
        classes, proba = predict_input.probabilities(model, inputs)
        return {"classes": classes, "probabilities": proba}
    return {"predictions": predict_input.predict(model, inputs)}


def answer_body(
    answer: dict[str, Any], answering: refs.Resolved, extra: dict[str, Any] | None = None
) -> bytes:
    """An :func:`_answer` and the model that gave it (``extra``: an explanation)."""
    return orjson.dumps(
        {
            **answer,
            "model_id": answering.model_id,
            "name": answering.name,
            "version": answering.version,
            **(extra or {}),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def _explain_flag(request: Request) -> bool:
    """The ``explain`` query parameter: ``true``/``false`` (default false), else a 422."""
    value = request.query_params.get("explain", "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise errors.InvalidInput(
            f"explain must be true or false, got {value!r}",
            errors=[errors.field_error("/query/explain", "expected true or false")],
        )
    return value in ("true", "1")


def prediction_body(
    predictions: np.ndarray | list[Any],
    answering: refs.Resolved,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """``{"predictions", "model_id", "version"}``: the answer and the model that gave it
    (with ``extra``: the explanation's ``intercept`` and ``contributions``)."""
    return orjson.dumps(
        {
            "predictions": predictions,
            "model_id": answering.model_id,
            "name": answering.name,
            "version": answering.version,
            **(extra or {}),
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
    response_model=PredictAnswer,
    responses=problem_responses(400, 404, 413, 415, 422),
)
router.add_api_route(
    "/{model_id}/versions/{version}/predict",
    predict,
    methods=["POST"],
    route_class_override=RequestHandlerRoute,
    openapi_extra={
        **PREDICT_OPENAPI,
        "parameters": [*VERSION_PARAMETERS, EXPLAIN_PARAMETER, OUTPUT_PARAMETER],
    },
    name="predict_by_version",
    response_model=PredictAnswer,
    responses=problem_responses(400, 404, 413, 415, 422),
)


@router.get("", response_model=ModelListPage, responses=problem_responses(422))
def list_models(request: Request, session: ReadSession, page: PageParams) -> Response:
    """Lists models, newest first, as compact items (``GET /v1/models/{id}`` has the rest);
    a predictor key gets each model's predictor view."""
    if auth.is_predictor(request.scope):
        items, total = models.list_predictor_page(
            session=session, limit=page.limit, offset=page.offset
        )
    else:
        items, total = models.list_page(session=session, limit=page.limit, offset=page.offset)
    return FastJSONResponse(page_body(items, total=total, page=page))


# The bodies below are built by the fit and stored as JSON; they are sent as stored (orjson),
# and their schemas document them (the contract tests check every response against them).


@router.get("/{model_id}", response_model=ModelView, responses=problem_responses(404))
def get_model(ref: refs.ResolvedRef, request: Request, session: ReadSession) -> Response:
    """A model: features, penalty (both notations), coefficients, metrics, tuning.

    A predictor key gets what prediction needs: features, dtypes, penalty, preprocessing
    options and metrics (no coefficients, categories or training summaries).
    """
    model = models.get(session=session, model_id=ref.model_id)
    if auth.is_predictor(request.scope):
        return FastJSONResponse(models.predictor_body(model))
    return FastJSONResponse(models.model_body(model))


ONNX_MEDIA_TYPE = "application/octet-stream"


@router.get(
    "/{model_id}/export",
    response_model=PortableDocument,
    responses={
        200: {"content": {ONNX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
        **problem_responses(404, 422),
    },
)
def export_model(
    ref: refs.ResolvedRef, session: ReadSession, format: Literal["json", "onnx"] = "json"
) -> Response:
    """The portable model: plain JSON that predicts with numpy alone (``format=json``), or
    the same model as one float64 ONNX graph (``format=onnx``, see docs/portable-model.md).
    """
    doc = models.get_portable(session=session, model_id=ref.model_id)
    if format == "onnx":
        return Response(
            onnx_export.to_bytes(doc),
            media_type=ONNX_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{ref.model_id}.onnx"'},
        )
    return FastJSONResponse(doc)


@router.get("/{model_id}/path", response_model=PathView, responses=problem_responses(404))
def get_model_path(ref: refs.ResolvedRef, session: ReadSession) -> Response:
    """The regularization path: coefficients and nonzero counts per alpha, and the CV curve."""
    path = models.get(session=session, model_id=ref.model_id).summary.get("path")
    if path is None:
        raise errors.NotFound(f"model {ref.model_id!r} has no recorded regularization path")
    return FastJSONResponse(path)


SVG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}, "description": "SVG"}
}


@router.get(
    "/{model_id}/plots/{kind}",
    response_class=Response,
    responses={**SVG_RESPONSE, **problem_responses(404, 422)},
)
def get_model_plot(
    ref: refs.ResolvedRef,
    kind: Literal["coefficients", "path", "cv", "residuals", "comparison"],
    session: ReadSession,
) -> Response:
    """A plot of the model as SVG: the coefficients next to the unregularized least-squares
    ones, the regularization path with the chosen alpha (a panel per compared penalty), the
    CV curve per compared penalty (a random or Bayesian search's candidates as points), the
    test split's predicted vs actual values, or the compared penalties' coefficients."""
    model = models.get(session=session, model_id=ref.model_id)
    try:
        renderer = (
            classifier_plots.render
            if model.summary.get("task") == "classification"
            else plots.render
        )
        svg = renderer(model.id, kind, model.summary)
    except plots.PlotUnavailable as exc:
        raise errors.NotFound(f"model {ref.model_id!r}: {exc}") from None
    return Response(svg, media_type="image/svg+xml")


router.add_api_route(
    "/{model_id}/versions/{version}/plots/{kind}",
    get_model_plot,
    methods=["GET"],
    name="get_model_plot_by_version",
    response_class=Response,
    responses={**SVG_RESPONSE, **problem_responses(404, 422)},
    openapi_extra=VERSION_OPENAPI,
)

for _endpoint, _suffix, _model in (
    (get_model, "", ModelView),
    (export_model, "/export", PortableDocument),
    (get_model_path, "/path", PathView),
):
    router.add_api_route(
        "/{model_id}/versions/{version}" + _suffix,
        _endpoint,
        methods=["GET"],
        name=_endpoint.__name__ + "_by_version",
        response_model=_model,
        responses=problem_responses(404),
        openapi_extra=VERSION_OPENAPI,
    )


@router.delete(
    "/{model_id}", status_code=204, response_class=Response, responses=problem_responses(404, 409)
)
def delete_model(ref: refs.ResolvedRef, session: WriteSession, cache: ModelCache) -> Response:
    """Deletes a model (409 while a registry version refers to it)."""
    registry.ensure_unreferenced(session=session, model_id=ref.model_id)
    models.delete(session=session, model_id=ref.model_id)
    after_commit(session, lambda: cache.evict(ref.model_id))
    return Response(status_code=204)


def _is_csv(content_type: str) -> bool:
    return content_type.startswith("text/csv")


async def _read_body(request: Request, *, max_lines: int | None) -> bytes:
    """The request body (its size is bounded by the body-limit middleware); a CSV body is
    refused as soon as it has more than ``max_lines`` lines, before the rest is read."""
    if max_lines is None:
        return await request.body()
    chunks: list[bytes] = []
    lines = 0
    async for chunk in request.stream():
        lines += chunk.count(b"\n")
        if lines > max_lines:
            raise errors.PayloadTooLarge(
                f"the CSV body has more than {max_lines} lines (a header and "
                f"{max_lines - 1} rows, the limit)",
                limit_rows=max_lines - 1,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _rows_at_least(body: bytes) -> int:
    """A cheap lower bound of the rows of a ``{"rows": [[…], …]}`` body, without parsing it:
    exact when the body holds no string but its key (every ``[`` is then a list's), else 0."""
    if body.count(b'"') != 2:
        return 0
    return max(body.count(b"[") - 1, 0)


def _numeric_rows_in_slices(model: portable.CompiledModel, body: bytes) -> Any:
    """``{"rows": [[…], …]}`` of finite numbers only, for an all-numeric model, parsed and
    converted one slice of rows at a time (see ``PARSE_SLICE_BYTES``); None for any other
    body, which then takes the usual path (and gets its precise errors there).

    Cutting between two rows is safe without a JSON parser because the body holds no string
    but its key: every bracket is structural.
    """
    if model.categorical_names or body.count(b'"') != 2:
        return None
    if any(literal in body for literal in _NON_NUMBER_LITERALS):
        return None
    head = _ROWS_HEAD.match(body)
    tail = _ROWS_TAIL.search(body, max(len(body) - 64, 0))
    if head is None or tail is None:
        return None
    inner = body[head.end() : tail.start()]  # from the first row's "[" to the last one's "]"
    blocks: list[np.ndarray] = []
    start = 0
    while start < len(inner):
        cut = _ROW_SEPARATOR.search(inner, start + PARSE_SLICE_BYTES)
        end = cut.start() + 1 if cut is not None else len(inner)
        try:
            block = np.array(orjson.loads(b"[" + inner[start:end] + b"]"), dtype=np.float64)
        except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError):
            return None
        if block.ndim != 2 or block.shape[1] != model.n_features or not np.isfinite(block).all():
            return None
        blocks.append(block)
        start = cut.end() - 1 if cut is not None else len(inner)
    if not blocks:
        return None
    return portable.PredictInputs(numeric=np.vstack(blocks), categorical=[], complete=True)


def _parse_csv(text: str) -> tuple[list[str], list[list[str | None]]]:
    reader = csv.reader(io.StringIO(text))
    rows: list[list[str | None]] = []
    try:
        header = next(reader)
        for row in reader:
            if row:
                rows.append([cell if cell != "" else None for cell in row])
    except StopIteration as exc:
        raise errors.InvalidInput("the CSV body is empty; send a header line and rows") from exc
    except csv.Error as exc:
        # A field over csv's field size limit (131,072 characters), a bare carriage return
        # inside a line, a NUL: the row the reader was on, in the /rows/i numbering of the
        # other cell errors (the header is /header).
        where = "/header" if reader.line_num <= 1 else f"/rows/{len(rows)}"
        reason = str(exc)
        if "new-line character" in reason:
            reason = "a carriage return or line break inside an unquoted field; quote the field"
        raise errors.InvalidInput(
            f"CSV {'header' if where == '/header' else f'row {len(rows)}'} "
            f"(line {reader.line_num}) cannot be read: {reason}",
            errors=[errors.field_error(where, reason)],
        ) from exc
    return header, rows


def _parse_request(
    model: portable.CompiledModel, content_type: str, body: bytes, limit: int
) -> Any:
    """The body's prediction inputs; a JSON body's ``output`` other than the default is
    refused here (the routes that honour it call :func:`_parse_request_output`)."""
    inputs, output = _parse_request_output(model, content_type, body, limit)
    if output not in (None, "predict"):
        raise errors.InvalidInput(
            f"output {output!r} is not served by this route",
            errors=[errors.field_error("/output", "only the default output here")],
        )
    return inputs


def _parse_request_output(
    model: portable.CompiledModel, content_type: str, body: bytes, limit: int
) -> tuple[Any, str | None]:
    """The body's prediction inputs, and the ``output`` a JSON body names (None: none)."""
    if _is_csv(content_type):
        try:
            header, table = _parse_csv(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise errors.InvalidInput("the CSV body is not valid UTF-8") from exc
        _check_count(len(table), limit)
        return predict_input.parse_table(model, header, table), None
    if content_type and not content_type.startswith("application/json"):
        raise errors.UnsupportedMediaType(
            f"content type {content_type!r} is not supported; send application/json or text/csv"
        )
    if _rows_at_least(body) > limit:
        _check_count(_rows_at_least(body), limit)
    if len(body) > INLINE_PREDICT_BYTES:
        sliced = _numeric_rows_in_slices(model, body)
        if sliced is not None:
            return sliced, None
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
    unknown = sorted(set(payload) - {"rows", "records", "output"})
    if unknown:
        raise errors.InvalidInput(
            f"unknown field {unknown[0]!r}",
            errors=[errors.field_error(f"/{unknown[0]}", "unknown field")],
        )
    output = _check_output(payload["output"], "/output") if "output" in payload else None
    if "rows" in payload:
        rows = payload["rows"]
        if not isinstance(rows, list):
            raise errors.InvalidInput(
                "'rows' must be a list of lists",
                errors=[errors.field_error("/rows", "expected a list")],
            )
        _check_count(len(rows), limit)
        return predict_input.parse_rows(model, rows), output
    records = payload["records"]
    if not isinstance(records, list):
        raise errors.InvalidInput(
            "'records' must be a list of objects",
            errors=[errors.field_error("/records", "expected a list")],
        )
    _check_count(len(records), limit)
    return predict_input.parse_records(model, records), output


def _check_count(n: int, limit: int) -> None:
    if n > limit:
        raise errors.PayloadTooLarge(f"{n} rows in one request; the limit is {limit}")
    if n == 0:
        raise errors.InvalidInput("no rows to predict")


def _predict(
    model: portable.CompiledModel, content_type: str, body: bytes, limit: int
) -> np.ndarray | list[Any]:
    return predict_input.predict(model, _parse_request(model, content_type, body, limit))


def _predict_explained(
    model: portable.CompiledModel, content_type: str, body: bytes, limit: int
) -> tuple[np.ndarray | list[Any], dict[str, Any]]:
    inputs = _parse_request(model, content_type, body, limit)
    return predict_input.predict(model, inputs), explain.explanation_body(model, inputs)
