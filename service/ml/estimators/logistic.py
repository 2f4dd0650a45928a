# The objectives are written in the seed text's notation (Greek letters, true minus signs).
"""L1, L2 and ElasticNet logistic regression: the classification families.

A classification penalty is fitted as exactly the estimator a scikit-learn user would write
with the installed scikit-learn (1.8 and later deprecate ``penalty=``; the penalty is given
by ``l1_ratio`` alone, so regfit never passes ``penalty``)::

    l1          LogisticRegression(C=C, l1_ratio=1.0, solver="saga")
    l2          LogisticRegression(C=C, l1_ratio=0.0, solver="lbfgs")
    elasticnet  LogisticRegression(C=C, l1_ratio=ρ,   solver="saga")

with ``fit_intercept``, ``max_iter`` (scikit-learn's default 100), ``tol`` and
``class_weight`` (None or ``"balanced"``) passed unchanged. ``lbfgs`` is scikit-learn's
default solver and handles only the L2 penalty; ``saga`` is the one solver of scikit-learn
that handles L1 and ElasticNet for both binary and multinomial targets. Binary targets are
fitted with one coefficient row (the second class's logit), three or more classes with the
multinomial (softmax) loss, one row per class — what ``LogisticRegression`` does.

scikit-learn minimises, over the weights ``W`` (one row per class, or one row for a
binary target) and an unpenalized intercept, with ``ρ = l1_ratio`` and ``s_i`` the class
weights (1 without ``class_weight``)::

    C·Σᵢ sᵢ·logloss_i(W) + ρ·Σ|W| + ((1 − ρ)/2)·Σ W²

The seed text writes the objective with the *mean* log-loss over the ``n`` training rows,
``J(θ) = (1/n)·Σᵢ sᵢ·logloss_i(θ) + λ1·Σ|θ| + λ2·Σθ²``. Dividing scikit-learn's objective by
the positive constant ``C·n`` does not move its minimiser and gives
``(1/n)·Σ sᵢ·logloss_i + (ρ/(C·n))·Σ|W| + ((1 − ρ)/(2·C·n))·Σ W²``; matching term by term,
``λ1 = ρ/(C·n)`` and ``λ2 = (1 − ρ)/(2·C·n)``, so ``λ1 + 2·λ2 = 1/(C·n)`` and

    C = 1/(n·(λ1 + 2·λ2)),    l1_ratio = λ1/(λ1 + 2·λ2)

(``λ2 = 0``: an L1 penalty, ``λ1 = 0``: an L2 penalty). ``tests/ml/estimators/
test_logistic.py`` checks it against a direct minimisation of ``J`` with scipy.

The :class:`~service.ml.estimators.base.Penalty` of a classifier carries ``C`` and
``class_weight``; its ``alpha`` is ``1/C`` (so descending ``alpha`` is ascending ``C``: more
regularized first, as for the regressors).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from sklearn.linear_model import LogisticRegression

from service.ml.errors import FitError
from service.ml.estimators.base import EstimatorFamily, Interval, Penalty, Task, get, register

# scikit-learn's LogisticRegression default.
LOGISTIC_MAX_ITER = 100


class _Logistic(EstimatorFamily):
    """``LogisticRegression`` with a fixed kind of penalty (see the module doc)."""

    task: ClassVar[Task] = "classification"
    default_max_iter: ClassVar[int | None] = LOGISTIC_MAX_ITER
    design_order: ClassVar[Literal["C", "F"]] = "C"
    penalty_type: ClassVar[str]
    solver: ClassVar[str]

    def ratio(self, penalty: Penalty) -> float:
        """The ``l1_ratio`` passed to ``LogisticRegression``."""
        assert penalty.l1_ratio is not None
        return float(penalty.l1_ratio)

    def default_l1_ratio(self, l1_ratio: float | None) -> float | None:
        return l1_ratio

    def logistic_penalty(
        self,
        C: float,
        l1_ratio: float | None,
        *,
        fit_intercept: bool,
        max_iter: int | None,
        tol: float,
        class_weight: str | None,
        lambdas: tuple[float, float] | None = None,
    ) -> Penalty:
        """A checked :class:`Penalty` of this family (``max_iter`` None: the default 100)."""
        ratio = self.default_l1_ratio(l1_ratio)
        self.check({"C": C, "l1_ratio": ratio})
        if C <= 0:
            raise FitError(f"C must be > 0 for {self.estimator_name}, got {C}")
        return Penalty(
            self.kind,
            1.0 / C,
            ratio,
            fit_intercept=fit_intercept,
            max_iter=self.default_max_iter if max_iter is None else max_iter,
            tol=tol,
            positive=False,
            lambda1=None if lambdas is None else lambdas[0],
            lambda2=None if lambdas is None else lambdas[1],
            C=C,
            class_weight=class_weight,
        )

    def build(self, penalty: Penalty) -> Any:
        return LogisticRegression(
            C=penalty.C if penalty.C is not None else 1.0 / penalty.alpha,
            l1_ratio=self.ratio(penalty),
            solver=self.solver,
            fit_intercept=penalty.fit_intercept,
            max_iter=penalty.max_iter or LOGISTIC_MAX_ITER,
            tol=penalty.tol,
            class_weight=penalty.class_weight,
        )

    def describes(self, lambda1: float, lambda2: float) -> bool:
        # Chosen through classification_family_for_lambdas, never by the regression lookup.
        return False

    def from_lambdas(
        self, lambda1: float, lambda2: float, n_train: int
    ) -> tuple[float, float | None]:
        """``(C, l1_ratio)`` of the seed's mean-log-loss ``(λ1, λ2)`` (module doc)."""
        total = lambda1 + 2 * lambda2
        return 1.0 / (n_train * total), lambda1 / total

    def to_lambdas(self, penalty: Penalty, n_train: int) -> tuple[float, float]:
        C = penalty.C if penalty.C is not None else 1.0 / penalty.alpha
        rho = self.ratio(penalty)
        return rho / (C * n_train), (1 - rho) / (2 * C * n_train)

    def conversion(self, n_train: int) -> str:
        return (
            f"LogisticRegression (solver {self.solver}) minimises C·Σ logloss "
            f"+ l1_ratio·Σ|w| + ((1 − l1_ratio)/2)·Σw²; dividing by C·n with "
            f"J = (1/n)·Σ logloss + λ1·Σ|θ| + λ2·Σθ² gives C = 1/(n·(λ1 + 2·λ2)), "
            f"l1_ratio = λ1/(λ1 + 2·λ2) with n = {n_train} training rows"
        )


@register
class LogisticL1Family(_Logistic):
    """``LogisticRegression(l1_ratio=1, solver="saga")``: ``C·Σ logloss + Σ|W|``."""

    kind = "logistic_l1"
    estimator_name = "LogisticRegression"
    penalty_type = "l1"
    solver = "saga"
    parameter_constraints: ClassVar[dict[str, Interval]] = {
        "C": Interval(0.0),
        "l1_ratio": Interval(1.0, 1.0),
    }
    searchable = ("C",)

    def default_l1_ratio(self, l1_ratio: float | None) -> float | None:
        return 1.0


@register
class LogisticL2Family(_Logistic):
    """``LogisticRegression(l1_ratio=0, solver="lbfgs")``: ``C·Σ logloss + ½·Σ W²``."""

    kind = "logistic_l2"
    estimator_name = "LogisticRegression"
    penalty_type = "l2"
    solver = "lbfgs"
    parameter_constraints: ClassVar[dict[str, Interval]] = {
        "C": Interval(0.0),
        "l1_ratio": Interval(0.0, 0.0),
    }
    searchable = ("C",)

    def default_l1_ratio(self, l1_ratio: float | None) -> float | None:
        return 0.0


@register
class LogisticElasticNetFamily(_Logistic):
    """``LogisticRegression(l1_ratio=ρ, solver="saga")``:
    ``C·Σ logloss + ρ·Σ|W| + ((1 − ρ)/2)·Σ W²``."""

    kind = "logistic_elasticnet"
    estimator_name = "LogisticRegression"
    penalty_type = "elasticnet"
    solver = "saga"
    parameter_constraints: ClassVar[dict[str, Interval]] = {
        "C": Interval(0.0),
        "l1_ratio": Interval(0.0, 1.0),
    }
    searchable = ("C", "l1_ratio")

    def default_l1_ratio(self, l1_ratio: float | None) -> float | None:
        return 0.5 if l1_ratio is None else l1_ratio


# The classification family of each penalty type of a job spec.
CLASSIFICATION_KINDS: dict[str, str] = {
    "l1": LogisticL1Family.kind,
    "l2": LogisticL2Family.kind,
    "elasticnet": LogisticElasticNetFamily.kind,
}


def classification_kind_for_lambdas(lambda1: float, lambda2: float) -> str:
    """The classification kind the seed's ``(λ1, λ2)`` (not both 0) describe."""
    if lambda1 > 0 and lambda2 > 0:
        return CLASSIFICATION_KINDS["elasticnet"]
    return CLASSIFICATION_KINDS["l1" if lambda1 > 0 else "l2"]


def logistic_family(kind: str) -> _Logistic:
    """The classification family of ``kind``.

    Raises
    ------
    KeyError
        For a kind that is not a classification family's.
    """
    family = get(kind)
    if not isinstance(family, _Logistic):
        raise KeyError(kind)
    return family
