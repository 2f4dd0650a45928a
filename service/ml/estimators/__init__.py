"""Estimator families behind one registry (see :mod:`.base` for what a family provides)."""

from service.ml.estimators import (
    linear,  # noqa: F401  (registers Lasso, Ridge, ElasticNet)
    logistic,  # noqa: F401  (registers LogisticRegression)
)
from service.ml.estimators.base import (
    EstimatorFamily,
    Penalty,
    families,
    for_lambdas,
    get,
)

__all__ = ["EstimatorFamily", "Penalty", "families", "for_lambdas", "get"]
