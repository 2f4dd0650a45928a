"""Model references: a model id, ``{name}@{alias}`` or ``{name}/versions/{n}``, resolved to
the model that answers.

The models routes take the reference as ``/v1/models/{model_id}/…`` (an id, or
``name@alias``; ``%40`` for ``@`` works too) or ``/v1/models/{model_id}/versions/{version}/…``.
A bare token is always a model id: names only ever appear with ``@`` or ``/versions/``.

Prediction routes resolve through :class:`RefCache`: an alias is looked up in the database
at most once per ``registry_ref_cache_seconds`` (≤ 1 s) per API process, so moving an alias
takes effect for every process within that delay, while the hot path pays a dict lookup.
Models themselves are immutable and cached by id elsewhere.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import errors, state
from service.db import Database
from service.http.dependencies import ReadSession
from service.ml.spec import REGISTRY_NAME_PATTERN
from service.registry import service as registry
from service.registry.service import Resolved

_NAME = re.compile(REGISTRY_NAME_PATTERN)
_CACHE_SIZE = 10_000

# (name, alias, version): alias and version None → the name's default version.
RefKey = tuple[str, str | None, int | None]


def parse(ref: str, version: str | None = None) -> str | RefKey:
    """A model id (returned as is) or the registry key a path's reference names.

    Raises
    ------
    InvalidInput
        For a malformed name, alias or version number.
    """
    if version is None and "@" not in ref:
        return ref
    name, _, alias = ref.partition("@")
    if version is not None:
        if alias:
            raise errors.InvalidInput(
                f"{ref!r}/versions/{version}: give an alias or a version, not both",
                errors=[errors.field_error("path:/model_id", "an alias with a version")],
            )
        if not (version.isdigit() and 0 < len(version) <= 9 and int(version) > 0):
            raise errors.InvalidInput(
                f"version {version!r} is not a positive integer",
                errors=[errors.field_error("path:/version", "not a positive integer")],
            )
    if not _NAME.match(name) or (version is None and not _NAME.match(alias)):
        raise errors.InvalidInput(
            f"{ref!r} is not a model reference (a model id, name@alias or name/versions/n, "
            f"with names and aliases matching {REGISTRY_NAME_PATTERN})",
            errors=[errors.field_error("path:/model_id", "malformed model reference")],
        )
    return (name, alias or None, int(version) if version is not None else None)


def is_name(text: str) -> bool:
    """Whether ``text`` is a well-formed registry name."""
    return _NAME.match(text) is not None


def _lookup(session: Session, key: RefKey) -> Resolved:
    name, alias, version = key
    return registry.resolve(session=session, name=name, alias=alias, version=version)


class RefCache:
    """Registry references → models, each kept at most ``ttl`` seconds. Thread-safe."""

    def __init__(self, db: Database, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._items: dict[RefKey, tuple[float, Resolved]] = {}
        self._lock = threading.Lock()

    def _load(self, key: RefKey) -> Resolved:
        with self.db.session(readonly=True) as session:
            return _lookup(session, key)

    async def resolve(self, key: RefKey) -> Resolved:
        """The model ``key`` names now, or as it was at most ``ttl`` seconds ago."""
        cached = self._items.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        resolved = await run_in_threadpool(self._load, key)
        with self._lock:
            if len(self._items) >= _CACHE_SIZE:  # bounded: names come from the request
                self._items.clear()
            # Expiry counts from before the lookup, so an answer is never older than ttl.
            self._items[key] = (now + self.ttl, resolved)
        return resolved


def ref_cache(request: Request) -> RefCache:
    """The app's reference cache."""
    return state.of(request).ref_cache


async def resolve_request(request: Request) -> Resolved:
    """The model a prediction route's path names (``model_id``, optional ``version``)."""
    params = request.path_params
    parsed = parse(params["model_id"], params.get("version"))
    if isinstance(parsed, str):
        return Resolved(parsed)
    return await ref_cache(request).resolve(parsed)


def resolve(model_id: str, request: Request, session: ReadSession) -> Resolved:
    """Dependency: the model the path names, read from the database now (not cached)."""
    parsed = parse(model_id, request.path_params.get("version"))
    if isinstance(parsed, str):
        return Resolved(parsed)
    return _lookup(session, parsed)


ResolvedRef = Annotated[Resolved, Depends(resolve)]


def model_headers(resolved: Resolved) -> dict[str, str]:
    """Response headers naming the model (and version) that answered."""
    headers = {"X-Regfit-Model-Id": resolved.model_id}
    if resolved.name is not None:
        headers["X-Regfit-Model-Name"] = resolved.name
        headers["X-Regfit-Model-Version"] = str(resolved.version)
    return headers
