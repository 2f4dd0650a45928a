"""A job's penalty spec resolved into a family's :class:`~service.ml.estimators.Penalty`,
and a penalty echoed in both notations (scikit-learn's and the seed's λ; the families'
objectives and conversions: :mod:`service.ml.estimators.linear`)."""

from __future__ import annotations

from typing import Any

from service.ml import estimators
from service.ml.errors import FitError
from service.ml.estimators import Penalty
from service.ml.spec import PenaltySpec


def resolve_penalty(spec: PenaltySpec, n_train: int) -> Penalty:
    """Resolve a validated penalty spec into estimator arguments for ``n_train`` training rows.

    Raises
    ------
    FitError
        If the spec has no type (only a tuning search over ``penalty`` may leave it open)
        or ``n_train`` is not positive.
    """
    if n_train < 1:
        raise FitError("there are no training rows to fit the penalty on")
    common: dict[str, Any] = {
        "fit_intercept": spec.fit_intercept,
        "max_iter": spec.max_iter,
        "tol": spec.tol,
        "positive": spec.positive,
    }
    if spec.uses_lambda_form:
        lambda1, lambda2 = spec.lambda1 or 0.0, spec.lambda2 or 0.0
        family = estimators.for_lambdas(lambda1, lambda2)
        alpha, l1_ratio = family.from_lambdas(lambda1, lambda2, n_train)
        return family.penalty(alpha, l1_ratio, lambdas=(lambda1, lambda2), **common)
    if spec.type is None:
        raise FitError("penalty.type is required: l1, l2 or elasticnet")
    family = estimators.get(spec.type)
    alpha = 1.0 if spec.alpha is None else spec.alpha
    return family.penalty(alpha, spec.l1_ratio, **common)


def penalty_notations(p: Penalty, n_train: int) -> dict[str, Any]:
    """Echo a penalty in both notations, with the conversion used, for ``n_train`` rows.

    Returns
    -------
    dict
        ``type``, ``estimator``, ``alpha``, ``l1_ratio``, ``lambda1``, ``lambda2``,
        ``fit_intercept``, ``max_iter``, ``tol``, ``positive``, ``given_as``
        (``"sklearn"`` or ``"lambda"``) and ``conversion`` (human-readable formula).
    """
    family = p.family
    if p.lambda1 is not None and p.lambda2 is not None:
        lambda1, lambda2, given_as = p.lambda1, p.lambda2, "lambda"
    else:
        lambda1, lambda2 = family.to_lambdas(p, n_train)
        given_as = "sklearn"
    return {
        "type": p.kind,
        "estimator": family.estimator_name,
        "alpha": p.alpha,
        "l1_ratio": p.l1_ratio,
        "lambda1": lambda1,
        "lambda2": lambda2,
        "fit_intercept": p.fit_intercept,
        "max_iter": p.max_iter,
        "tol": p.tol,
        "positive": p.positive,
        "given_as": given_as,
        "conversion": family.conversion(n_train) + " (the intercept is not penalized)",
    }
