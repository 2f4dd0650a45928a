"""The typed dependencies of every route: the lifespan state, its settings, executor and model
cache, and the per-request database sessions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import Database
from service.models.cache import CompiledModelCache
from service.state import State
from service.state import of as state_of
from service.worker.executor import Executor


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
