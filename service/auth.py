"""API keys with roles, and the one table saying which role may call which route.

Roles: ``admin`` (everything), ``trainer`` (datasets, jobs, models, the registry) and
``predictor`` (predict by id or through a registry reference, read the registry, and read
what prediction needs of a model: no coefficients, no category vocabularies, no training
summaries, no export or path). A key is sent as
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Keys come from ``REGFIT_API_KEYS``
(``role:key`` pairs) or from ``regfit keys create``, which stores only the key's SHA-256:
keys made here are random 32-byte tokens, so a slow password hash would add latency to every
cache miss without adding safety (nobody brute-forces 256 random bits). Digests are compared with
``hmac.compare_digest``; a database lookup goes through the unique index on the digest,
whose timing can reveal at most bits of a SHA-256, never of the key.

``REGFIT_AUTH``: ``on`` always requires a key; ``off`` never does; ``auto`` requires one as
soon as any key exists (checked again every ``api_key_cache_seconds``) and then keeps
requiring one for the life of the process, so revoking the last key never opens the API.
``regfit serve`` turns ``auto`` into ``on`` when keys exist at start, and refuses to
serve open on a non-loopback address (see :func:`check_serve_auth`).

Enforcement is a pure ASGI middleware that runs before routing and before any body is
read, so an unauthenticated upload is refused without streaming it to disk. Verified keys
are cached in-process for ``api_key_cache_seconds`` (default 30 s): the prediction hot path
costs a SHA-256 and a dict lookup, and a revoked key stops working within the TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from service import errors, observability
from service.config import Settings
from service.db import Database, utcnow
from service.observability import RouteTable
from service.state import STATE_KEY
from service.tables import ApiKey
from service.web import problem_response

log = logging.getLogger("regfit.auth")

ADMIN: Final = "admin"
TRAINER: Final = "trainer"
PREDICTOR: Final = "predictor"
ROLES: Final = (ADMIN, TRAINER, PREDICTOR)

PUBLIC: Final[frozenset[str]] = frozenset()  # no key needed
ADMINS: Final = frozenset({ADMIN})
TRAINERS: Final = frozenset({ADMIN, TRAINER})
PREDICTORS: Final = frozenset({ADMIN, TRAINER, PREDICTOR})

# (method, path template with every ``{param}`` written ``{}``) → roles allowed to call it.
# Every route of the app must be listed: tests/test_auth.py fails on a route missing here,
# and at run time an unlisted route is admin-only.
ROUTE_ROLES: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/"): PUBLIC,  # a redirect to the dashboard
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/assets/{}"): PUBLIC,
    # The dashboard: it signs in with a key and reads the API as that key (service/ui).
    ("GET", "/ui"): PUBLIC,
    ("GET", "/ui/static/{}"): PUBLIC,
    ("GET", "/ui/sign-in"): PUBLIC,
    ("POST", "/ui/sign-in"): PUBLIC,
    ("POST", "/ui/sign-out"): PUBLIC,
    ("GET", "/ui/datasets/{}"): PUBLIC,
    ("POST", "/ui/datasets"): PUBLIC,
    ("POST", "/ui/jobs"): PUBLIC,
    ("GET", "/ui/jobs/{}"): PUBLIC,
    ("GET", "/ui/jobs/{}/status"): PUBLIC,
    ("POST", "/ui/jobs/{}/cancel"): PUBLIC,
    ("GET", "/ui/models/{}"): PUBLIC,
    ("GET", "/ui/models/{}/plots/{}"): PUBLIC,
    ("POST", "/ui/models/{}/predict"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/metrics"): ADMINS,
    ("POST", "/v1/datasets"): TRAINERS,
    ("POST", "/v1/datasets/synthetic"): TRAINERS,
    ("GET", "/v1/datasets"): TRAINERS,
    ("GET", "/v1/datasets/{}"): TRAINERS,
    ("GET", "/v1/datasets/{}/rows"): TRAINERS,
    ("DELETE", "/v1/datasets/{}"): TRAINERS,
    ("POST", "/v1/jobs"): TRAINERS,
    ("GET", "/v1/jobs"): TRAINERS,
    ("GET", "/v1/jobs/{}"): TRAINERS,
    ("POST", "/v1/jobs/{}/cancel"): TRAINERS,
    ("GET", "/v1/models"): PREDICTORS,
    ("GET", "/v1/models/{}"): PREDICTORS,
    # A predictor reads what prediction needs (models.service.predictor_body); the export,
    # the path and the full body carry the one-hot category vocabularies of the training
    # data, which are the trainers'.
    ("GET", "/v1/models/{}/export"): TRAINERS,
    ("GET", "/v1/models/{}/path"): TRAINERS,
    # Plots name the one-hot columns (the training data's categories), as the path does.
    ("GET", "/v1/models/{}/plots/{}"): TRAINERS,
    ("POST", "/v1/models/{}/predict"): PREDICTORS,
    ("DELETE", "/v1/models/{}"): TRAINERS,
    # A registry reference in the path: /v1/models/{name}/versions/{n}/…
    ("GET", "/v1/models/{}/versions/{}"): PREDICTORS,
    ("GET", "/v1/models/{}/versions/{}/export"): TRAINERS,
    ("GET", "/v1/models/{}/versions/{}/path"): TRAINERS,
    ("POST", "/v1/models/{}/versions/{}/predict"): PREDICTORS,
    ("POST", "/v1/models/{}/invocations"): PREDICTORS,
    ("POST", "/v1/models/{}/versions/{}/invocations"): PREDICTORS,
    # The registry: predictors read it (and predict through it); trainers change it.
    ("POST", "/v1/registry"): TRAINERS,
    ("GET", "/v1/registry"): PREDICTORS,
    ("GET", "/v1/registry/{}"): PREDICTORS,
    ("PATCH", "/v1/registry/{}"): TRAINERS,
    ("DELETE", "/v1/registry/{}"): TRAINERS,
    ("POST", "/v1/registry/{}/versions"): TRAINERS,
    ("GET", "/v1/registry/{}/versions/{}"): PREDICTORS,
    ("PATCH", "/v1/registry/{}/versions/{}"): TRAINERS,
    ("DELETE", "/v1/registry/{}/versions/{}"): TRAINERS,
    ("PUT", "/v1/registry/{}/aliases/{}"): TRAINERS,
    ("DELETE", "/v1/registry/{}/aliases/{}"): TRAINERS,
    # Open Inference Protocol v2: health is public, as /healthz and /readyz are.
    ("GET", "/v2/health/live"): PUBLIC,
    ("GET", "/v2/health/ready"): PUBLIC,
    ("GET", "/v2/models/{}"): PREDICTORS,
    ("GET", "/v2/models/{}/ready"): PREDICTORS,
    ("POST", "/v2/models/{}/infer"): PREDICTORS,
    ("GET", "/v2/models/{}/versions/{}"): PREDICTORS,
    ("GET", "/v2/models/{}/versions/{}/ready"): PREDICTORS,
    ("POST", "/v2/models/{}/versions/{}/infer"): PREDICTORS,
}

# Where the middleware leaves the caller's role for the routes (absent while the API is open).
ROLE_SCOPE_KEY: Final = "regfit.role"

_PARAM = re.compile(r"\{[^}]*\}")
_KEY_CACHE_SIZE = 10_000
KEY_PREFIX = "rfk_"


def normalize_template(path: str) -> str:
    """``/v1/models/{model_id}`` → ``/v1/models/{}`` (parameter names do not matter)."""
    return _PARAM.sub("{}", path)


def roles_for(method: str, path_template: str) -> frozenset[str]:
    """The roles that may call a route; admin only when the route is not listed."""
    method = "GET" if method == "HEAD" else method
    return ROUTE_ROLES.get((method, normalize_template(path_template)), ADMINS)


def is_predictor(scope: Scope) -> bool:
    """Whether the request was made with a predictor key (its views are reduced)."""
    return scope.get(ROLE_SCOPE_KEY) == PREDICTOR


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the role of the key and the key's id (never the key)."""

    role: str
    key_id: str


def parse_env_keys(text: str) -> list[tuple[str, Principal]]:
    """Parse ``REGFIT_API_KEYS`` (``role:key,role:key``) into (digest, principal) pairs."""
    keys: list[tuple[str, Principal]] = []
    for number, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            continue
        role, sep, key = entry.partition(":")
        role, key = role.strip().lower(), key.strip()
        if not sep or role not in ROLES or not key:
            # Never echo the entry: it holds a secret.
            raise ValueError(
                f"REGFIT_API_KEYS entry {number} is not 'role:key' with a role among "
                f"{', '.join(ROLES)}"
            )
        if len(key) < 16:
            log.warning("REGFIT_API_KEYS entry %d is shorter than 16 characters", number)
        keys.append((hash_key(key), Principal(role, f"env-{number}")))
    return keys


# --- keys in the database ----------------------------------------------------------------


def create(*, session: Session, role: str, name: str | None = None) -> tuple[ApiKey, str]:
    """Creates a key; returns its row and the key itself, which is not stored anywhere."""
    if role not in ROLES:
        raise errors.InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id="key_" + uuid.uuid4().hex,
        name=name,
        role=role,
        key_hash=hash_key(key),
        prefix=key[:8],
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row, key


def list_all(*, session: Session) -> list[ApiKey]:
    """Lists every key, revoked ones included, newest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())))


def revoke(*, session: Session, key_id: str) -> ApiKey:
    """Revokes a key by its id (idempotent)."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise errors.NotFound(f"no API key with id {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def count_active(*, session: Session) -> int:
    """Counts the keys that are not revoked."""
    return int(session.scalar(select(func.count()).where(ApiKey.revoked_at.is_(None))) or 0)


def find_active(*, session: Session, digest: str) -> Principal | None:
    """The principal of the active key with this digest, if any."""
    row = session.scalars(
        select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    ).first()
    if row is None or row.role not in ROLES or not hmac.compare_digest(row.key_hash, digest):
        return None
    return Principal(row.role, row.id)


# --- enforcement --------------------------------------------------------------------------


class KeyStore:
    """Verifies keys: the ``REGFIT_API_KEYS`` digests, then the database through a TTL cache."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.mode = settings.auth
        self.ttl = settings.api_key_cache_seconds
        self.env_keys = parse_env_keys(settings.api_keys.get_secret_value())
        self.enforced = self.mode == "on" or (self.mode == "auto" and bool(self.env_keys))
        self._next_check = 0.0
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    @staticmethod
    def _database_has_keys(db: Database | None) -> bool:
        if db is None:
            return False
        with db.session(readonly=True) as session:
            return count_active(session=session) > 0

    @staticmethod
    def _lookup(db: Database | None, digest: str) -> Principal | None:
        if db is None:
            return None
        with db.session(readonly=True) as session:
            return find_active(session=session, digest=digest)

    async def is_enforced(self, db: Database | None) -> bool:
        """Whether requests need a key (``auto``: once any key exists, for good)."""
        if self.enforced or self.mode == "off":
            return self.enforced
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.ttl
            if await anyio.to_thread.run_sync(self._database_has_keys, db):
                log.info("an API key exists now: requests need a key from here on")
                self.enforced = True
        return self.enforced

    async def authenticate(self, key: str, db: Database | None) -> Principal | None:
        """The principal of ``key``, or ``None`` when it is unknown or revoked."""
        digest = hash_key(key)
        for known, principal in self.env_keys:
            if hmac.compare_digest(known, digest):
                return principal
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await anyio.to_thread.run_sync(self._lookup, db, digest)
        if len(self._cache) >= _KEY_CACHE_SIZE:  # bounded: wrong keys are cached too
            self._cache.clear()
        self._cache[digest] = (now + self.ttl, found)
        return found


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


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the key schemes, and each operation's roles, 401 and 403, to an OpenAPI schema."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`.",
    }
    schemes["apiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _HTTP_METHODS:
                continue
            roles = roles_for(method.upper(), path)
            if not roles:
                operation["security"] = []
                continue
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            allowed = ", ".join(r for r in ROLES if r in roles)
            note = f"Roles: {allowed} (when API keys are in use)."
            operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", {"description": "No API key, or an unknown or revoked one"})
            responses.setdefault("403", {"description": f"The key's role is not one of: {allowed}"})
    return schema


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


# --- `regfit serve` start-up check ----------------------------------------------------------


class AuthConfigError(Exception):
    """The service must not start with this authentication configuration."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stored_key_count(database_url: str) -> int:
    db = Database(database_url)
    try:
        if not inspect(db.engine).has_table(ApiKey.__tablename__):
            return 0  # not migrated yet, so no key was ever created
        with db.session(readonly=True) as session:
            return count_active(session=session)
    finally:
        db.dispose()


def check_serve_auth(settings: Settings, host: str) -> Settings:
    """Decide how ``regfit serve`` may start on ``host``, before anything binds.

    Returns the settings to serve with (``auth=on`` when keys exist, so revoking every
    key later refuses requests rather than opening the API), or raises
    :class:`AuthConfigError` with the reason the service must not start.
    """
    try:
        env_keys = parse_env_keys(settings.api_keys.get_secret_value())
    except ValueError as exc:
        raise AuthConfigError(str(exc)) from exc
    keys = len(env_keys) + _stored_key_count(settings.database_url)
    if settings.auth == "off":
        log.warning(
            "REGFIT_AUTH=off: authentication is disabled — anyone who can reach %s can call "
            "every route, including training and deletion%s",
            host,
            f"; the {keys} configured API key(s) are ignored" if keys else "",
        )
        return settings
    if keys:
        return settings.model_copy(update={"auth": "on"})
    create_hint = "create one with `regfit keys create --role admin` or set REGFIT_API_KEYS"
    if settings.auth == "on":
        raise AuthConfigError(f"REGFIT_AUTH=on but no API key exists; {create_hint}")
    if not is_loopback(host):
        raise AuthConfigError(
            f"refusing to serve on {host} without API keys: {create_hint}, "
            "or set REGFIT_AUTH=off to run open on purpose"
        )
    log.warning("running without API keys on %s — anyone on this machine can use it", host)
    return settings
