"""The JSON response class (orjson) and problem+json responses of every HTTP domain."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse, Response

from service.errors import PROBLEM_CONTENT_TYPE
from service.observability import current_request_id

_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


def dump_json(content: Any) -> bytes:
    """Serialize with orjson (numpy arrays, datetimes as RFC 3339 with ``Z``)."""
    return orjson.dumps(content, option=_ORJSON_OPTIONS)


class FastJSONResponse(JSONResponse):
    """A JSON response serialized by orjson."""

    def render(self, content: Any) -> bytes:
        return dump_json(content)


def problem_response(problem: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """A problem+json response; the body carries the request id, as the logs do."""
    request_id = current_request_id()
    if request_id is not None:
        problem = {**problem, "request_id": request_id}
    return Response(
        content=dump_json(problem),
        status_code=int(problem["status"]),
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )
