"""The pure ASGI middleware that enforces keys and roles before routing and before any body."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from service import errors, observability
from service.auth.keys import KeyStore
from service.auth.openapi import document
from service.auth.roles import ROLE_SCOPE_KEY, ROLES, roles_for
from service.config import Settings
from service.http.responses import problem_response
from service.observability import RouteTable
from service.state import STATE_KEY


def _presented_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


class AuthMiddleware:
    """Refuses a request without a valid key (401) or whose key's role is not allowed (403)."""

    def __init__(self, app: ASGIApp, *, store: KeyStore, routes: RouteTable) -> None:
        self.app = app
        self.store = store
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The lifespan's database (None before the lifespan ran: no stored key is known then).
        app_state = scope.get("state", {}).get(STATE_KEY)
        db = app_state.database if app_state is not None else None
        if scope["type"] != "http" or not await self.store.is_enforced(db):
            await self.app(scope, receive, send)
            return
        # ``None``: no route takes this method and path, so any valid key gets its 404/405.
        route = self.routes.resolve(scope)
        roles = roles_for(scope["method"], route.template) if route is not None else None
        if roles is not None and not roles:  # PUBLIC
            await self.app(scope, receive, send)
            return
        key = _presented_key(scope)
        if key is None:
            refusal = errors.Unauthorized(
                "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
            headers = {"WWW-Authenticate": 'Bearer realm="regfit"'}
            await problem_response(refusal.problem(), headers=headers)(scope, receive, send)
            return
        principal = await self.store.authenticate(key, db)
        if principal is None:
            refusal = errors.Unauthorized("the API key is not valid (unknown or revoked)")
            headers = {"WWW-Authenticate": 'Bearer realm="regfit", error="invalid_token"'}
            await problem_response(refusal.problem(), headers=headers)(scope, receive, send)
            return
        scope["regfit.key"] = principal.key_id
        scope[ROLE_SCOPE_KEY] = principal.role
        if route is not None and roles is not None and principal.role not in roles:
            allowed = [r for r in ROLES if r in roles]
            forbidden = errors.Forbidden(
                f"{scope['method']} {route.template} needs the {' or '.join(allowed)} role; "
                f"this key has the {principal.role} role",
                required_roles=allowed,
                role=principal.role,
            )
            await problem_response(forbidden.problem())(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the API key middleware to ``app`` (a no-op filter while the API is open)."""
    store = KeyStore(app, settings)
    app.add_middleware(AuthMiddleware, store=store, routes=observability.route_table(app))
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(build_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
