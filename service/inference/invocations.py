"""MLflow-style scoring: ``POST /v1/models/{ref}/invocations``, as ``mlflow models serve``.

The JSON body holds exactly one of MLflow's input keys (and optionally ``params``, which must
be empty: these models take no inference parameters):

- ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}`` (pandas' split orient;
  ``index`` is ignored; without ``columns`` the rows are in the model's feature order);
- ``dataframe_records``: ``[{column: value}, ...]``;
- ``instances`` (TF serving's row format): a list of objects (one per row) or of arrays
  (rows in feature order);
- ``inputs`` (TF serving's columnar format): an object of columns ``{name: [values]}`` or
  an array of rows in feature order.

``text/csv`` is a CSV with a header, as ``/predict`` takes it. The answer is
``{"predictions": [...]}``, plus ``model_id``, ``name`` and ``version`` naming the model that
answered (also in the ``X-Regfit-Model-*`` headers). Errors are problem+json with MLflow's
``error_code`` and ``message`` members alongside.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from service import errors, state
from service.errors import problem_responses
from service.http.responses import problem_response
from service.inference import schemas
from service.ml import portable
from service.models import predict_input
from service.models import routes as model_routes
from service.registry import refs

router = APIRouter(prefix="/v1/models", tags=["models"])

INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")

INVOCATIONS_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "Exactly one of the MLflow input keys, optionally with "
                    "empty params",
                    "properties": {
                        "dataframe_split": {"type": "object"},
                        "dataframe_records": {"type": "array", "items": {"type": "object"}},
                        "instances": {"type": "array", "items": {}},
                        "inputs": {"oneOf": [{"type": "object"}, {"type": "array", "items": {}}]},
                        "params": {"type": "object"},
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
        "required": True,
    }
}


def _invalid(detail: str, loc: str, msg: str) -> errors.InvalidInput:
    return errors.InvalidInput(detail, errors=[errors.field_error(loc, msg)])


def _relocated(exc: errors.InvalidInput, old: str, new: str) -> errors.InvalidInput:
    """The same error, its pointers under the MLflow key the values came from."""
    moved = [
        {**item, "loc": new + item["loc"][len(old) :]}
        if str(item.get("loc", "")).startswith(old)
        else item
        for item in exc.errors or []
    ]
    return errors.InvalidInput(exc.detail, errors=moved)


def _rows(
    model: portable.CompiledModel, rows: Any, pointer: str, limit: int
) -> portable.PredictInputs:
    if not isinstance(rows, list):
        raise _invalid(f"{pointer} must be an array of rows", pointer, "expected an array")
    model_routes._check_count(len(rows), limit)
    try:
        return predict_input.parse_rows(model, rows)
    except errors.InvalidInput as exc:
        raise _relocated(exc, "/rows", pointer) from exc


def _records(
    model: portable.CompiledModel, records: Any, pointer: str, limit: int
) -> portable.PredictInputs:
    if not isinstance(records, list):
        raise _invalid(f"{pointer} must be an array of objects", pointer, "expected an array")
    model_routes._check_count(len(records), limit)
    try:
        return predict_input.parse_records(model, records)
    except errors.InvalidInput as exc:
        raise _relocated(exc, "/records", pointer) from exc


def _columns(
    model: portable.CompiledModel, columns: dict[str, Any], pointer: str, limit: int
) -> portable.PredictInputs:
    lengths = {name: len(values) for name, values in columns.items() if isinstance(values, list)}
    odd = [name for name in columns if name not in lengths]
    if odd:
        raise _invalid(
            f"{pointer}/{odd[0]} must be an array (one value per row)",
            f"{pointer}/{odd[0]}",
            "expected an array",
        )
    if len(set(lengths.values())) > 1:
        raise _invalid(
            f"the columns of {pointer} differ in length: {lengths}", pointer, "ragged columns"
        )
    names = list(columns)
    records = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    return _records(model, records, pointer, limit)


def parse_payload(
    model: portable.CompiledModel, payload: Any, limit: int
) -> portable.PredictInputs:
    """Validate an MLflow scoring payload into prediction inputs."""
    if not isinstance(payload, dict):
        raise _invalid("the body must be a JSON object", "/", "expected an object")
    keys = [key for key in INPUT_KEYS if key in payload]
    unknown = sorted(set(payload) - {*INPUT_KEYS, "params"})
    if len(keys) != 1 or unknown:
        raise _invalid(
            f"send exactly one of {', '.join(INPUT_KEYS)} (and optionally params); got "
            f"{', '.join(sorted(payload)) or 'none'}",
            f"/{unknown[0]}" if unknown else "/",
            "unknown field" if unknown else "expected exactly one input key",
        )
    if payload.get("params"):
        raise _invalid("these models take no params", "/params", "must be empty")
    key = keys[0]
    value = payload[key]
    pointer = f"/{key}"
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise _invalid(
                'dataframe_split must be {"columns": [...], "data": [[...]]}',
                pointer,
                "expected an object with data",
            )
        columns, data = value.get("columns"), value["data"]
        if columns is None:
            return _rows(model, data, f"{pointer}/data", limit)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise _invalid(
                "dataframe_split.columns must be a list of names",
                f"{pointer}/columns",
                "expected names",
            )
        if not isinstance(data, list) or any(
            not isinstance(row, list) or len(row) != len(columns) for row in data
        ):
            raise _invalid(
                f"every row of dataframe_split.data must hold {len(columns)} values (one per "
                "column)",
                f"{pointer}/data",
                "rows do not match the columns",
            )
        model_routes._check_count(len(data), limit)
        return _records(
            model, [dict(zip(columns, row, strict=True)) for row in data], f"{pointer}/data", limit
        )
    if key == "dataframe_records":
        return _records(model, value, pointer, limit)
    if key == "instances":
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return _records(model, value, pointer, limit)
        return _rows(model, value, pointer, limit)
    if isinstance(value, dict):
        return _columns(model, value, pointer, limit)
    return _rows(model, value, pointer, limit)


def _score(
    model: portable.CompiledModel, content_type: str, body: bytes, limit: int
) -> np.ndarray | list[Any]:
    if content_type.startswith("text/csv"):
        return model_routes._predict(model, content_type, body, limit)
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
    return predict_input.predict(model, parse_payload(model, payload, limit))


def mlflow_problem(exc: errors.RegfitError) -> Response:
    """problem+json with MLflow's ``error_code``/``message`` members alongside."""
    code = "RESOURCE_DOES_NOT_EXIST" if exc.status == 404 else "BAD_REQUEST"
    return problem_response({**exc.problem(), "error_code": code, "message": exc.detail})


async def invocations(request: Request) -> Response:
    """Predictions for an MLflow scoring payload (see the module doc)."""
    try:
        answering = await refs.resolve_request(request)
        model = await model_routes.compiled_model(state.of(request), answering.model_id)
        body = await request.body()
        content_type = request.headers.get("content-type", "application/json").lower()
        limit = state.of(request).settings.max_predict_rows
        if len(body) <= model_routes.INLINE_PREDICT_BYTES:
            predictions = _score(model, content_type, body, limit)
        else:
            predictions = await run_in_threadpool(_score, model, content_type, body, limit)
    except errors.RegfitError as exc:
        return mlflow_problem(exc)
    return Response(
        content=model_routes.prediction_body(predictions, answering),
        media_type="application/json",
        headers=refs.model_headers(answering),
    )


for _path, _parameters, _name in (
    (
        "/{model_id}/invocations",
        [p for p in model_routes.PREDICT_OPENAPI["parameters"] if p["name"] != "output"],
        "invocations",
    ),
    (
        "/{model_id}/versions/{version}/invocations",
        model_routes.VERSION_PARAMETERS,
        "invocations_by_version",
    ),
):
    router.add_api_route(
        _path,
        invocations,
        name=_name,
        methods=["POST"],
        response_model=schemas.Invocations,
        responses=problem_responses(400, 404, 413, 415, 422),
        route_class_override=model_routes.RequestHandlerRoute,
        openapi_extra={**INVOCATIONS_OPENAPI, "parameters": _parameters},
    )
