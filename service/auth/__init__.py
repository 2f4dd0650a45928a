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

The package: :mod:`~service.auth.roles` (roles and the route table),
:mod:`~service.auth.keys` (keys and their verification), :mod:`~service.auth.middleware`
(enforcement), :mod:`~service.auth.openapi` (the document), :mod:`~service.auth.serve`
(the start-up check). Its public names are re-exported here, so callers write ``auth.X``.
"""

from service.auth.keys import (
    KEY_PREFIX,
    KeyStore,
    Principal,
    count_active,
    create,
    find_active,
    hash_key,
    list_all,
    parse_env_keys,
    revoke,
)
from service.auth.middleware import AuthMiddleware, install
from service.auth.openapi import document
from service.auth.roles import (
    ADMIN,
    ADMINS,
    PREDICTOR,
    PREDICTORS,
    PUBLIC,
    ROLE_SCOPE_KEY,
    ROLES,
    ROUTE_ROLES,
    TRAINER,
    TRAINERS,
    is_predictor,
    normalize_template,
    roles_for,
)
from service.auth.serve import AuthConfigError, check_serve_auth, is_loopback

__all__ = [
    "ADMIN",
    "ADMINS",
    "KEY_PREFIX",
    "PREDICTOR",
    "PREDICTORS",
    "PUBLIC",
    "ROLES",
    "ROLE_SCOPE_KEY",
    "ROUTE_ROLES",
    "TRAINER",
    "TRAINERS",
    "AuthConfigError",
    "AuthMiddleware",
    "KeyStore",
    "Principal",
    "check_serve_auth",
    "count_active",
    "create",
    "document",
    "find_active",
    "hash_key",
    "install",
    "is_loopback",
    "is_predictor",
    "list_all",
    "normalize_template",
    "parse_env_keys",
    "revoke",
    "roles_for",
]
