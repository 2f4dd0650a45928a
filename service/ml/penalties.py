# The objectives are written in the seed text's notation (Greek letters, true minus signs).
"""Penalties: the scikit-learn estimator a spec stands for, and the seed's lambda notation.

A penalty is fitted as exactly the estimator a scikit-learn user would write:
``l1`` → ``Lasso(alpha)``, ``l2`` → ``Ridge(alpha)``, ``elasticnet`` →
``ElasticNet(alpha, l1_ratio)``. The estimators minimise, over the weights ``w`` (with
an unpenalized intercept when ``fit_intercept``; ``n`` is the number of training rows)::

    Lasso       (1/(2n))·‖y − Xw‖² + α·‖w‖₁
    ElasticNet  (1/(2n))·‖y − Xw‖² + α·ρ·‖w‖₁ + (α·(1 − ρ)/2)·‖w‖²      (ρ = l1_ratio)
    Ridge       ‖y − Xw‖² + α·‖w‖²

The seed text writes the objective as ``J(θ) = MSE(θ) + λ1·Σ|θi| + λ2·Σθi²`` with
``MSE = (1/n)·‖y − Xθ‖²`` over the training rows; ``θ`` are the weights only, the
intercept is never penalized (as in scikit-learn). Rescaling ``J`` by a positive
constant does not move its minimiser, so:

* ``J/2 = (1/(2n))·‖y − Xθ‖² + (λ1/2)·‖θ‖₁ + (λ2/2)·‖θ‖²``; matching ElasticNet term by
  term gives ``α·ρ = λ1/2`` and ``α·(1 − ρ) = λ2``, hence
  ``α = λ1/2 + λ2`` and ``ρ = λ1/(λ1 + 2·λ2)``.
  With ``λ2 = 0`` this is ``Lasso(alpha=λ1/2)``.
* ``n·J = ‖y − Xθ‖² + n·λ1·‖θ‖₁ + n·λ2·‖θ‖²``; with ``λ1 = 0`` this is
  ``Ridge(alpha=n·λ2)``.

The inverse maps (used to echo both notations) are ``λ1 = 2·α·ρ``, ``λ2 = α·(1 − ρ)``
for Lasso (ρ = 1) and ElasticNet, and ``λ1 = 0``, ``λ2 = α/n`` for Ridge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sklearn.linear_model import ElasticNet, Lasso, Ridge

from service.errors import FitError
from service.ml.spec import PENALTY_ALIASES, PenaltySpec


@dataclass(frozen=True)
class Penalty:
    """A resolved penalty: the arguments of one scikit-learn estimator.

    Parameters
    ----------
    kind : {"l1", "l2", "elasticnet"}
        ``Lasso``, ``Ridge`` or ``ElasticNet``.
    alpha : float
        The estimator's ``alpha``.
    l1_ratio : float or None
        ``ElasticNet``'s ``l1_ratio``; None for the other kinds.
    fit_intercept, tol, positive
        Passed to the estimator unchanged.
    max_iter : int or None
        Passed unchanged. A spec's None resolves to the estimator's default: 1000 for
        Lasso/ElasticNet, None (the solver's own) for Ridge.
    lambda1, lambda2 : float or None
        The seed-notation values as the user gave them (echoed verbatim), or None when
        the penalty was given in scikit-learn's form.
    """

    kind: Literal["l1", "l2", "elasticnet"]
    alpha: float
    l1_ratio: float | None
    fit_intercept: bool
    max_iter: int | None
    tol: float
    positive: bool
    lambda1: float | None = None
    lambda2: float | None = None

    def estimator(self) -> Lasso | Ridge | ElasticNet:
        """Return the unfitted scikit-learn estimator this penalty stands for."""
        if self.kind == "l2":
            return Ridge(
                alpha=self.alpha,
                fit_intercept=self.fit_intercept,
                max_iter=self.max_iter,
                tol=self.tol,
                positive=self.positive,
                # Ridge supports positive=True only with lbfgs ("auto" would pick it too).
                solver="lbfgs" if self.positive else "auto",
            )
        if self.kind == "l1":
            return Lasso(
                alpha=self.alpha,
                fit_intercept=self.fit_intercept,
                max_iter=self.max_iter,
                tol=self.tol,
                positive=self.positive,
            )
        assert self.l1_ratio is not None
        return ElasticNet(
            alpha=self.alpha,
            l1_ratio=self.l1_ratio,
            fit_intercept=self.fit_intercept,
            max_iter=self.max_iter,
            tol=self.tol,
            positive=self.positive,
        )


def lambdas_to_sklearn(
    lambda1: float, lambda2: float, n_train: int
) -> tuple[Literal["l1", "l2", "elasticnet"], float, float | None]:
    """Convert the seed's ``(λ1, λ2)`` into ``(kind, alpha, l1_ratio)``; see the module doc."""
    if lambda1 > 0 and lambda2 > 0:
        return "elasticnet", lambda1 / 2 + lambda2, lambda1 / (lambda1 + 2 * lambda2)
    if lambda1 > 0:
        return "l1", lambda1 / 2, None
    if lambda2 > 0:
        return "l2", n_train * lambda2, None
    raise ValueError("lambda1 and lambda2 are both 0")


def sklearn_to_lambdas(
    kind: str, alpha: float, l1_ratio: float | None, n_train: int
) -> tuple[float, float]:
    """Convert ``(kind, alpha, l1_ratio)`` into the seed's ``(λ1, λ2)``; see the module doc."""
    if kind == "l2":
        return 0.0, alpha / n_train
    rho = 1.0 if kind == "l1" else float(l1_ratio if l1_ratio is not None else 0.5)
    return 2 * alpha * rho, alpha * (1 - rho)


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
        "tol": spec.tol,
        "positive": spec.positive,
    }
    if spec.uses_lambda_form:
        lambda1, lambda2 = spec.lambda1 or 0.0, spec.lambda2 or 0.0
        kind, alpha, l1_ratio = lambdas_to_sklearn(lambda1, lambda2, n_train)
        return Penalty(
            kind,
            alpha,
            l1_ratio,
            max_iter=_max_iter(kind, spec.max_iter),
            lambda1=lambda1,
            lambda2=lambda2,
            **common,
        )
    if spec.type is None:
        raise FitError("penalty.type is required: l1, l2 or elasticnet")
    kind = PENALTY_ALIASES[spec.type]
    alpha = 1.0 if spec.alpha is None else spec.alpha
    l1_ratio = (0.5 if spec.l1_ratio is None else spec.l1_ratio) if kind == "elasticnet" else None
    return Penalty(kind, alpha, l1_ratio, max_iter=_max_iter(kind, spec.max_iter), **common)


def _max_iter(kind: str, max_iter: int | None) -> int | None:
    # scikit-learn's defaults: coordinate descent stops at 1000 sweeps; Ridge defers to its solver.
    if max_iter is None and kind != "l2":
        return 1000
    return max_iter


_ESTIMATOR_NAMES = {"l1": "Lasso", "l2": "Ridge", "elasticnet": "ElasticNet"}


def penalty_notations(p: Penalty, n_train: int) -> dict[str, Any]:
    """Echo a penalty in both notations, with the conversion used, for ``n_train`` rows.

    Returns
    -------
    dict
        ``type``, ``estimator``, ``alpha``, ``l1_ratio``, ``lambda1``, ``lambda2``,
        ``fit_intercept``, ``max_iter``, ``tol``, ``positive``, ``given_as``
        (``"sklearn"`` or ``"lambda"``) and ``conversion`` (human-readable formula).
    """
    if p.lambda1 is not None and p.lambda2 is not None:
        lambda1, lambda2, given_as = p.lambda1, p.lambda2, "lambda"
    else:
        lambda1, lambda2 = sklearn_to_lambdas(p.kind, p.alpha, p.l1_ratio, n_train)
        given_as = "sklearn"
    if p.kind == "l1":
        conversion = (
            "Lasso minimises (1/(2n))·||y − Xw||² + alpha·||w||₁; halving "
            "J = MSE + λ1·Σ|θ| gives alpha = λ1/2, λ2 = 0"
        )
    elif p.kind == "elasticnet":
        conversion = (
            "ElasticNet minimises (1/(2n))·||y − Xw||² + alpha·l1_ratio·||w||₁ "
            "+ (alpha·(1 − l1_ratio)/2)·||w||²; halving J = MSE + λ1·Σ|θ| + λ2·Σθ² gives "
            "alpha = λ1/2 + λ2, l1_ratio = λ1/(λ1 + 2·λ2)"
        )
    else:
        conversion = (
            f"Ridge minimises ||y − Xw||² + alpha·||w||²; n·J with J = MSE + λ2·Σθ² "
            f"gives alpha = n·λ2 with n = {n_train} training rows"
        )
    return {
        "type": p.kind,
        "estimator": _ESTIMATOR_NAMES[p.kind],
        "alpha": p.alpha,
        "l1_ratio": p.l1_ratio,
        "lambda1": lambda1,
        "lambda2": lambda2,
        "fit_intercept": p.fit_intercept,
        "max_iter": p.max_iter,
        "tol": p.tol,
        "positive": p.positive,
        "given_as": given_as,
        "conversion": conversion + " (the intercept is not penalized)",
    }
