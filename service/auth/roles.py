"""The roles and the one table saying which role may call which route."""

from __future__ import annotations

import re
from typing import Final

from starlette.types import Scope

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
    ("GET", "/ui/models/{}/versions/{}/plots/{}"): PUBLIC,
    ("GET", "/ui/registry/{}"): PUBLIC,
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
    ("GET", "/v1/models/{}/versions/{}/plots/{}"): TRAINERS,
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
