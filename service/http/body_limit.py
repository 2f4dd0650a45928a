"""A byte limit on every request body, checked before any route parses it.

One ASGI middleware for every route: ``Content-Length`` over the route's limit is answered
413 at once, without reading the body; a body sent without one (chunked) is counted as it
streams, and the route's read of the chunk that crosses the limit fails, which is answered
413 whatever the route was doing with it (FastAPI's own body parsing included, which would
otherwise turn the failure into a 400).

Limits per route (see :func:`body_limit`): uploads ``max_upload_bytes``, predictions
``max_predict_bytes``, every other route ``max_request_bytes``.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings
from service.errors import PayloadTooLarge
from service.http.responses import problem_response

_PREDICT_PATH = re.compile(r"^/v1/models/[^/]+/predict/?$")
_UPLOAD_PATHS = frozenset({"/v1/datasets", "/v1/datasets/"})


def body_limit(settings: Settings, method: str, path: str) -> int:
    """The most bytes a request body to ``method path`` may have."""
    if method == "POST" and path in _UPLOAD_PATHS:
        return settings.max_upload_bytes
    if method == "POST" and _PREDICT_PATH.match(path):
        return settings.max_predict_bytes
    return settings.max_request_bytes


def too_large(limit: int, size: int | None = None) -> PayloadTooLarge:
    """The 413 of a body over ``limit`` bytes (``size``: what it has or announces)."""
    return PayloadTooLarge(
        f"the request body is larger than the limit of {limit} bytes"
        + (f" ({size} bytes)" if size is not None and size > limit else ""),
        limit_bytes=limit,
    )


class BodyTooLarge(PayloadTooLarge):
    """Raised by the counted ``receive`` of a body that crossed its limit."""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimitMiddleware:
    """Answers 413 (problem+json) to a body over its route's limit (see the module doc)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = body_limit(self.settings, scope["method"], scope["path"])
        announced = _content_length(scope)
        if announced is not None and announced > limit:
            await problem_response(too_large(limit, announced).problem())(scope, receive, send)
            return
        received = 0
        exceeded: BodyTooLarge | None = None
        started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = BodyTooLarge(
                        f"the request body is larger than the limit of {limit} bytes",
                        limit_bytes=limit,
                    )
                    raise exceeded
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded is not None:
                # Whatever the route made of the failed read (FastAPI: a 400) is replaced.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await problem_response(exceeded.problem())(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await problem_response(exc.problem())(scope, receive, send)
