"""The application's state: what the lifespan opens for the requests, in one typed object.

The lifespan builds a :class:`State` and yields it as Starlette's lifespan state (each
request then carries it as ``request.state.regfit``); routes reach its parts through the
typed dependencies of :mod:`service.http.dependencies`, never through attributes set on
``app.state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from service.config import Settings
    from service.db import Database
    from service.models.cache import CompiledModelCache
    from service.registry.refs import RefCache
    from service.worker.executor import Executor

STATE_KEY = "regfit"


@dataclass(frozen=True)
class State:
    """The settings and the resources the lifespan opened for them."""

    settings: Settings
    database: Database
    executor: Executor
    model_cache: CompiledModelCache
    ref_cache: RefCache


def of(connection: HTTPConnection) -> State:
    """The state of the application serving ``connection``."""
    state: State = getattr(connection.state, STATE_KEY)
    return state
