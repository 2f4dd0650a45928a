"""Open Inference Protocol v2 (KServe) over REST, for every registered name.

- ``GET /v2/health/live``, ``GET /v2/health/ready``;
- ``GET /v2/models/{name}[/versions/{v}]``: metadata (``name``, ``versions``, ``platform``,
  ``inputs``: one per feature, ``FP64`` (``BOOL`` for a bool feature) or ``BYTES`` for text,
  shape ``[-1]``; ``outputs``: ``predict``, ``FP64``, ``[-1]``);
- ``GET /v2/models/{name}[/versions/{v}]/ready``;
- ``POST /v2/models/{name}[/versions/{v}]/infer``: either one numeric input of shape
  ``[n, p]`` holding the features in the model's order (any input name), or one input per
  feature named after it, of shape ``[n]`` or ``[n, 1]`` (MLServer's ``pd`` content type:
  ``BYTES`` for text features). ``data`` is flat (row-major) or nested. The answer has
  ``model_name``, ``model_version``, ``id`` (echoed) and the output ``predict`` (FP64, ``[n]``).
  A classifier has two outputs: ``predict``, its labels (``BYTES`` for text, ``INT64``,
  ``BOOL``), and ``probabilities`` (``FP64``, ``[n, k]`` flat row-major, columns in the order
  of its classes); a request's ``outputs`` picks among them (default: all).

Without a version, ``/v2/models/{name}`` is the version the ``champion`` alias points at, or
the latest version when the name has no ``champion``. Errors are ``{"error": "…"}`` as the
protocol says, with the problem+json members alongside. Input tensors may come in the binary
tensor extension (``Inference-Header-Content-Length``, ``binary_data_size``; tritonclient's
default); the answer is always JSON, which clients read whatever they asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from service import errors, state
from service.errors import problem_responses
from service.http import guard
from service.http.responses import FastJSONResponse, problem_response
from service.inference import schemas
from service.ml import portable
from service.models import predict_input
from service.models import routes as model_routes
from service.registry import refs
from service.registry import service as registry
from service.registry.service import Resolved

router = APIRouter(prefix="/v2", tags=["inference v2"])

PLATFORM = "regfit-linear"
OUTPUT = "predict"
# A classifier's second output: the probability of each class, FP64 [n, k].
PROBABILITIES = "probabilities"
# Each numeric datatype's little-endian layout in the binary tensor extension.
BINARY_DTYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
NUMERIC_TYPES = frozenset(BINARY_DTYPES)


def v2_error(exc: errors.RegfitError) -> Response:
    """The protocol's ``{"error": "…"}``, with the problem+json members alongside."""
    return problem_response({**exc.problem(), "error": exc.detail})


def _invalid(detail: str, loc: str) -> errors.InvalidInput:
    return errors.InvalidInput(detail, errors=[errors.field_error(loc, detail)])


async def _resolve(request: Request) -> Resolved:
    params = request.path_params
    name, version = params["name"], params.get("version")
    # On /v2 the path always names a registered model, never a model id.
    key = (name, None, None) if version is None else refs.parse(name, version)
    if isinstance(key, str) or not refs.is_name(name):
        raise errors.NotFound(f"registered model {name!r} does not exist")
    return await refs.ref_cache(request).resolve(key)


def _feature_datatype(model: portable.CompiledModel, name: str) -> str:
    if name in model.categorical_names:
        return "BYTES"
    return "BOOL" if model.feature_dtypes.get(name) == "bool" else "FP64"


def _label_datatype(labels: list[Any]) -> str:
    """A classifier's labels as a v2 datatype: text BYTES, booleans BOOL, integers INT64."""
    if all(isinstance(v, str) for v in labels):
        return "BYTES"
    if all(isinstance(v, bool) for v in labels):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return "INT64"
    return "FP64"


def _outputs_metadata(model: portable.CompiledModel) -> list[dict[str, Any]]:
    if not predict_input.is_classifier(model):
        return [{"name": OUTPUT, "datatype": "FP64", "shape": [-1]}]
    classes = predict_input.require_classifier(model, loc="/outputs").classes
    return [
        {"name": OUTPUT, "datatype": _label_datatype(classes), "shape": [-1]},
        {"name": PROBABILITIES, "datatype": "FP64", "shape": [-1, len(classes)]},
    ]


def _metadata_body(
    model: portable.CompiledModel, answering: Resolved, versions: list[str]
) -> dict[str, Any]:
    return {
        "name": answering.name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": [
            {"name": name, "datatype": _feature_datatype(model, name), "shape": [-1]}
            for name in model.feature_names
        ],
        "outputs": _outputs_metadata(model),
        "parameters": {
            "content_type": "pd",
            "model_id": answering.model_id,
            "model_version": str(answering.version),
        },
    }


def _versions(request: Request, name: str) -> list[str]:
    with state.of(request).database.session(readonly=True) as session:
        return [str(v.version) for v in reversed(registry.versions_of(session=session, name=name))]


async def live() -> Response:
    """The server is live."""
    return FastJSONResponse({"live": True})


def ready(request: Request) -> Response:
    """The server is ready when its database answers."""
    try:
        with state.of(request).database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # any driver error means "not ready"
        return FastJSONResponse({"ready": False}, status_code=503)
    return FastJSONResponse({"ready": True})


async def metadata(request: Request) -> Response:
    """A model's metadata: its versions, inputs (one per feature) and output."""
    try:
        answering = await _resolve(request)
        model = await model_routes.compiled_model(state.of(request), answering.model_id)
        versions = await run_in_threadpool(_versions, request, request.path_params["name"])
    except errors.RegfitError as exc:
        return v2_error(exc)
    return FastJSONResponse(_metadata_body(model, answering, versions))


async def model_ready(request: Request) -> Response:
    """Whether the model can answer (its version exists and its model loads)."""
    try:
        answering = await _resolve(request)
        await model_routes.compiled_model(state.of(request), answering.model_id)
    except errors.RegfitError as exc:
        return v2_error(exc)
    return FastJSONResponse({"name": answering.name, "ready": True})


def _flat(data: Any, count: int, pointer: str) -> list[Any]:
    """A tensor's data, flattened row-major, checked to hold ``count`` values."""
    if not isinstance(data, list):
        raise _invalid("data must be an array", pointer)
    flat = data
    while flat and any(isinstance(v, list) for v in flat):
        if not all(isinstance(v, list) for v in flat):
            raise _invalid("data mixes arrays and values", pointer)
        flat = [v for row in flat for v in row]
    if len(flat) != count:
        raise _invalid(f"data holds {len(flat)} value(s); the shape says {count}", pointer)
    return flat


def _shape(tensor: dict[str, Any], pointer: str) -> list[int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise _invalid("shape must be [n] or [n, p] with non-negative integers", f"{pointer}/shape")
    return shape


def parse_infer(model: portable.CompiledModel, payload: Any, limit: int) -> portable.PredictInputs:
    """Validate an inference request's inputs into prediction inputs."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise _invalid('the body must be an object with an "inputs" array', "/inputs")
    inputs = payload["inputs"]
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or not {"name", "shape", "datatype", "data"} <= set(tensor):
            raise _invalid("each input needs name, shape, datatype and data", f"/inputs/{i}")
        if tensor["datatype"] not in NUMERIC_TYPES | {"BYTES"}:
            raise _invalid(f"unknown datatype {tensor['datatype']!r}", f"/inputs/{i}/datatype")
    requested_outputs(model, payload)
    p = model.n_features
    if (
        len(inputs) == 1
        and len(_shape(inputs[0], "/inputs/0")) == 2
        and (inputs[0]["name"] not in model.feature_names or p > 1)
    ):
        tensor = inputs[0]
        n, width = _shape(tensor, "/inputs/0")
        if width != p:
            raise _invalid(
                f"shape [{n}, {width}]: the model has {p} features "
                f"({', '.join(model.feature_names)})",
                "/inputs/0/shape",
            )
        if tensor["datatype"] not in NUMERIC_TYPES:
            raise _invalid(
                "a [n, p] input must be numeric (FP64); send text features as one BYTES input each",
                "/inputs/0/datatype",
            )
        model_routes._check_count(n, limit)
        flat = _flat(tensor["data"], n * width, "/inputs/0/data")
        rows = [flat[r * width : (r + 1) * width] for r in range(n)]
        try:
            return predict_input.parse_rows(model, rows)
        except errors.InvalidInput as exc:
            raise errors.InvalidInput(
                exc.detail,
                errors=[
                    {**e, "loc": "/inputs/0/data" + str(e["loc"])[len("/rows") :]}
                    for e in exc.errors or []
                ],
            ) from exc
    # One input per feature (MLServer's pd content type).
    by_name: dict[str, tuple[int, dict[str, Any]]] = {}
    for i, tensor in enumerate(inputs):
        if tensor["name"] in by_name:
            raise _invalid(f"input {tensor['name']!r} is given twice", f"/inputs/{i}/name")
        by_name[tensor["name"]] = (i, tensor)
    missing = [name for name in model.feature_names if name not in by_name]
    if missing:
        raise _invalid(
            f"missing input(s) {', '.join(map(repr, missing))}; send one input per feature "
            f"({', '.join(model.feature_names)}) or one [n, {p}] FP64 input",
            "/inputs",
        )
    n_rows: int | None = None
    columns: dict[str, list[Any]] = {}
    for name in model.feature_names:
        i, tensor = by_name[name]
        shape = _shape(tensor, f"/inputs/{i}")
        if len(shape) == 2 and shape[1] != 1:
            raise _invalid(f"input {name!r} must have shape [n] or [n, 1]", f"/inputs/{i}/shape")
        if n_rows is None:
            n_rows = shape[0]
            model_routes._check_count(n_rows, limit)
        elif shape[0] != n_rows:
            raise _invalid(
                f"input {name!r} has {shape[0]} rows, not {n_rows}", f"/inputs/{i}/shape"
            )
        values = _flat(tensor["data"], shape[0], f"/inputs/{i}/data")
        if name in model.categorical_names and tensor["datatype"] != "BYTES":
            raise _invalid(f"input {name!r} is text: send it as BYTES", f"/inputs/{i}/datatype")
        if name not in model.categorical_names and tensor["datatype"] == "BYTES":
            raise _invalid(f"input {name!r} is numeric: send it as FP64", f"/inputs/{i}/datatype")
        columns[name] = values
    records = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    position = {name: by_name[name][0] for name in model.feature_names}
    try:
        return predict_input.parse_records(model, records)
    except errors.InvalidInput as exc:
        moved = []
        for e in exc.errors or []:
            # portable names a cell /records/{row}/{feature}
            _, _, row, feature = [*str(e["loc"]).split("/", 3), "", "", ""][:4]
            moved.append(
                {**e, "loc": f"/inputs/{position[feature]}/data/{row}"}
                if feature in position
                else e
            )
        raise errors.InvalidInput(exc.detail, errors=moved) from exc


def requested_outputs(model: portable.CompiledModel, payload: dict[str, Any]) -> list[str]:
    """The outputs a request asks for (all of the model's when it names none)."""
    names = [o["name"] for o in _outputs_metadata(model)]
    requested = payload.get("outputs")
    if requested is None:
        return names
    if not isinstance(requested, list) or any(
        not isinstance(o, dict) or o.get("name") not in names for o in requested
    ):
        raise _invalid(f"the outputs are {', '.join(map(repr, names))}", "/outputs")
    return [str(o["name"]) for o in requested]


def _binary_values(datatype: str, raw: bytes, pointer: str) -> list[Any]:
    """A tensor's values from its bytes in the binary tensor extension."""
    if datatype != "BYTES":
        size = np.dtype(BINARY_DTYPES[datatype]).itemsize
        if len(raw) % size:
            raise _invalid(f"{len(raw)} bytes is not a whole number of {datatype}", pointer)
        values: list[Any] = np.frombuffer(raw, dtype=BINARY_DTYPES[datatype]).tolist()
        return values
    # BYTES: each element is a 4-byte little-endian length and that many bytes.
    out: list[Any] = []
    at = 0
    while at < len(raw):
        length = int.from_bytes(raw[at : at + 4], "little")
        if at + 4 + length > len(raw):
            raise _invalid("a BYTES element runs past the tensor's data", pointer)
        try:
            out.append(raw[at + 4 : at + 4 + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise _invalid("a BYTES element is not UTF-8 text", pointer) from exc
        at += 4 + length
    return out


def _payload(body: bytes, header_length: int | None) -> Any:
    """The request's JSON, with binary tensors moved into their inputs' ``data``."""
    head = body if header_length is None else body[:header_length]
    try:
        payload = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise errors.MalformedJSON(
            f"the body is not valid JSON: {exc}", errors=[errors.field_error("/", str(exc))]
        ) from exc
    if header_length is None or not isinstance(payload, dict):
        return payload
    at = header_length
    for i, tensor in enumerate(payload.get("inputs") or []):
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            continue
        pointer = f"/inputs/{i}/parameters/binary_data_size"
        if type(size) is not int or size < 0 or at + size > len(body):
            raise _invalid("binary_data_size does not fit the body", pointer)
        if tensor.get("datatype") not in NUMERIC_TYPES | {"BYTES"}:
            raise _invalid(f"unknown datatype {tensor.get('datatype')!r}", f"/inputs/{i}/datatype")
        tensor["data"] = _binary_values(tensor["datatype"], body[at : at + size], pointer)
        at += size
    return payload


def _infer(
    model: portable.CompiledModel, body: bytes, header_length: int | None, limit: int
) -> tuple[Any, list[dict[str, Any]]]:
    """The request's id and its output tensors."""
    payload = _payload(body, header_length)
    inputs = parse_infer(model, payload, limit)
    datatypes = {o["name"]: o["datatype"] for o in _outputs_metadata(model)}
    outputs = []
    for name in requested_outputs(model, payload):
        if name == PROBABILITIES:
            _, proba = predict_input.probabilities(model, inputs, loc="/outputs")
            outputs.append(
                {
                    "name": name,
                    "datatype": "FP64",
                    "shape": list(proba.shape),
                    "data": proba.ravel(),
                }
            )
        else:
            predictions = predict_input.predict(model, inputs)
            outputs.append(
                {
                    "name": name,
                    "datatype": datatypes[name],
                    "shape": [len(predictions)],
                    "data": predictions,
                }
            )
    return payload.get("id"), outputs


async def infer(request: Request) -> Response:
    """Predictions for a v2 inference request (see the module doc)."""
    try:
        header = request.headers.get("inference-header-content-length")
        if header is not None and not header.isdigit():
            raise _invalid("Inference-Header-Content-Length must be a byte count", "header:/")
        header_length = int(header) if header is not None else None
        content_type = request.headers.get("content-type", "application/json").lower()
        binary = content_type.startswith("application/octet-stream") and header_length
        if content_type and not (content_type.startswith("application/json") or binary):
            raise errors.UnsupportedMediaType(
                f"content type {content_type!r} is not supported; send application/json (or "
                "application/octet-stream with Inference-Header-Content-Length)"
            )
        answering = await _resolve(request)
        model = await model_routes.compiled_model(state.of(request), answering.model_id)
        body = await request.body()
        limit = state.of(request).settings.max_predict_rows
        if len(body) <= model_routes.INLINE_PREDICT_BYTES:
            request_id, outputs = _infer(model, body, header_length, limit)
        else:
            request_id, outputs = await run_in_threadpool(_infer, model, body, header_length, limit)
    except errors.RegfitError as exc:
        return v2_error(exc)
    answer: dict[str, Any] = {
        "model_name": answering.name,
        "model_version": str(answering.version),
        "outputs": outputs,
        "parameters": {"model_id": answering.model_id},
    }
    if isinstance(request_id, str):
        answer["id"] = request_id
    return Response(
        content=orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
        headers=refs.model_headers(answering),
    )


_NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION_PARAM = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
_JSON_BODY = {
    "requestBody": {
        "content": {
            "application/json": {"schema": {"type": "object"}},
            # The binary tensor extension: a JSON header, then raw tensors.
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
        "required": True,
    },
    guard.UNTYPED_BODY: True,
}

router.add_api_route(
    "/health/live", live, methods=["GET"], name="v2_live", response_model=schemas.V2Live
)
router.add_api_route(
    "/health/ready",
    ready,
    methods=["GET"],
    name="v2_ready",
    response_model=schemas.V2Ready,
    responses=problem_responses(503),
)
for _prefix, _params in (
    ("/models/{name}/versions/{version}", [_NAME_PARAM, _VERSION_PARAM]),
    ("/models/{name}", [_NAME_PARAM]),
):
    for _suffix, _endpoint, _method, _extra, _response in (
        ("", metadata, "GET", {}, schemas.V2ModelMetadata),
        ("/ready", model_ready, "GET", {}, schemas.V2ModelReady),
        ("/infer", infer, "POST", _JSON_BODY, schemas.V2InferResponse),
    ):
        router.add_api_route(
            _prefix + _suffix,
            _endpoint,
            methods=[_method],
            route_class_override=model_routes.RequestHandlerRoute,
            openapi_extra={**_extra, "parameters": _params},
            name=f"v2_{_endpoint.__name__}" + ("_by_version" if "{version}" in _prefix else ""),
            response_model=_response,
            responses=problem_responses(400, 404, 413, 415, 422),
        )
