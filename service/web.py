"""Pieces every HTTP domain shares: the JSON response class, session dependencies, paging."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import Database
from service.errors import PROBLEM_CONTENT_TYPE
from service.models.cache import CompiledModelCache
from service.observability import current_request_id
from service.state import State
from service.state import of as state_of
from service.worker.executor import Executor

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


def get_state(request: Request) -> State:
    return state_of(request)


def get_database(request: Request) -> Database:
    return state_of(request).database


def get_settings_dep(request: Request) -> Settings:
    return state_of(request).settings


def get_executor(request: Request) -> Executor:
    return state_of(request).executor


def get_model_cache(request: Request) -> CompiledModelCache:
    return state_of(request).model_cache


def write_session(request: Request) -> Iterator[Session]:
    """One writing session per request, and the only place a request's transaction ends:
    it commits once the route has returned (before the response is sent, so a failed
    commit is the response), or rolls back when the route raised. Routes and services
    only flush; effects that must follow the commit are registered with
    :func:`service.db.after_commit`."""
    with get_database(request).session() as session:
        yield session


def read_session(request: Request) -> Iterator[Session]:
    """A read-only session (``BEGIN DEFERRED`` on SQLite)."""
    with get_database(request).session(readonly=True) as session:
        yield session


# scope="function": the session ends when the route returns, before the response is sent.
WriteSession = Annotated[Session, Depends(write_session, scope="function")]
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]
AppState = Annotated[State, Depends(get_state)]
AppExecutor = Annotated[Executor, Depends(get_executor)]
ModelCache = Annotated[CompiledModelCache, Depends(get_model_cache)]


class Page:
    """``limit``/``offset`` query parameters of every list route (newest first)."""

    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


PageParams = Annotated[Page, Depends()]


def page_body(items: list[Any], *, total: int, page: Page) -> dict[str, Any]:
    """A page of a list route: ``items`` with the total count and the paging asked for."""
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}
