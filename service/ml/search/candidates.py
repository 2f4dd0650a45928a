"""The candidates of a search: what ``ParameterGrid`` and ``ParameterSampler`` would yield.

Candidates are ordered as ``ParameterGrid`` orders them: per family (in the order given),
``alpha`` outer and ``l1_ratio`` inner — what ``ParameterGrid([{est: [Lasso()], ...},
{est: [Ridge()], ...}])`` yields for a penalty comparison, and ``ParameterGrid({"alpha":
..., "l1_ratio": ...})`` for a single family. ``alpha`` in a search is scikit-learn's
``alpha`` of the candidate's estimator; no lambda conversion happens inside the search.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import scipy.stats
from sklearn.model_selection import ParameterSampler

from service.ml import estimators
from service.ml.estimators import EstimatorFamily, Penalty
from service.ml.penalties import resolve_penalty
from service.ml.spec import PenaltySpec, RangeSpec, TuningSpec

# The searched hyperparameters besides the family itself.
_HYPERPARAMETERS = ("alpha", "l1_ratio")


@dataclass(frozen=True)
class Candidate:
    """One point of the search: an estimator family, its ``alpha`` and ``l1_ratio``."""

    kind: str
    alpha: float
    l1_ratio: float | None  # None for a family without it

    @property
    def family(self) -> EstimatorFamily:
        return estimators.get(self.kind)

    @property
    def chain(self) -> tuple[str, float | None]:
        """Candidates of one chain share a regularization path (family and ``l1_ratio``)."""
        return (self.kind, self.l1_ratio)

    def penalty(self, common: Penalty, max_iter: int | None) -> Penalty:
        """The estimator of this candidate, with the job's shared settings (intercept, tol...).

        ``max_iter`` None (the job left it unset) resolves per family, as for a plain fit.
        """
        return self.family.penalty(
            self.alpha,
            self.l1_ratio,
            fit_intercept=common.fit_intercept,
            max_iter=max_iter,
            tol=common.tol,
            positive=common.positive,
        )


@dataclass(frozen=True)
class SearchSpace:
    """The searched families, and the values of the dimensions a search does not vary."""

    kinds: tuple[str, ...]
    alpha: float
    l1_ratio: float
    searched: frozenset[str]
    max_iter: int | None

    @classmethod
    def of(cls, tuning: TuningSpec, penalty: PenaltySpec, n_train: int = 1) -> SearchSpace:
        """The space of ``tuning`` for a job's ``penalty`` (its fixed values from there)."""
        kinds = searched_kinds(tuning, penalty.type)
        alpha, l1_ratio = 1.0, 0.5
        if penalty.type is not None and (penalty.uses_lambda_form or penalty.alpha is not None):
            resolved = resolve_penalty(penalty, max(n_train, 1))
            alpha = resolved.alpha
            l1_ratio = resolved.l1_ratio if resolved.l1_ratio is not None else l1_ratio
        elif penalty.alpha is not None:
            alpha = penalty.alpha
        if penalty.l1_ratio is not None:
            l1_ratio = penalty.l1_ratio
        return cls(kinds, float(alpha), float(l1_ratio), frozenset(tuning.space), penalty.max_iter)

    def varies(self, family: EstimatorFamily, name: str) -> bool:
        """Whether the search varies the family's hyperparameter ``name``."""
        return name in self.searched and name in family.searchable


def searched_kinds(tuning: TuningSpec, kind: str | None) -> tuple[str, ...]:
    """The families a search compares: ``space["penalty"]``, else the job's ``kind``."""
    kinds_space = tuning.space.get("penalty")
    names = kinds_space if isinstance(kinds_space, list) else [kind]
    # Canonical and de-duplicated by the spec; the job spec requires penalty.type when the
    # penalty is not searched.
    return tuple(estimators.get(str(name)).kind for name in names)


def _values(tuning: TuningSpec, key: str, default: float) -> list[float]:
    space = tuning.space.get(key)
    if space is None:
        return [default]
    assert isinstance(space, list)
    return [float(v) for v in space]


def is_finite_space(tuning: TuningSpec) -> bool:
    """Whether every searched dimension is a list (no range)."""
    return not any(isinstance(v, RangeSpec) for v in tuning.space.values())


def grid_candidates(tuning: TuningSpec, penalty: PenaltySpec, n_train: int = 1) -> list[Candidate]:
    """Every combination of a finite space, in ``ParameterGrid`` order (see the module doc)."""
    space = SearchSpace.of(tuning, penalty, n_train)
    alphas = _values(tuning, "alpha", space.alpha)
    ratios = _values(tuning, "l1_ratio", space.l1_ratio)
    out: list[Candidate] = []
    for kind in space.kinds:
        family = estimators.get(kind)
        for alpha in alphas:
            if "l1_ratio" in family.searchable:
                out.extend(Candidate(kind, alpha, ratio) for ratio in ratios)
            else:
                out.append(Candidate(kind, alpha, None))
    return out


def count_candidates(tuning: TuningSpec, penalty: PenaltySpec) -> int:
    """Return how many candidates the search evaluates (each on every fold).

    A grid has one candidate per combination (``l1_ratio`` multiplies only ElasticNet's
    share when ``penalty`` is searched too). A random or Bayesian search draws ``n_trials``
    distinct candidates, or every candidate of a finite space that has fewer.
    """
    if not is_finite_space(tuning):
        return tuning.n_trials
    size = len(grid_candidates(tuning, penalty))
    return size if tuning.strategy == "grid" else min(size, tuning.n_trials)


def _distribution(space: list[float] | RangeSpec) -> Any:
    """A search dimension as ``RandomizedSearchCV`` takes it: a list, or a scipy distribution."""
    if isinstance(space, RangeSpec):
        if space.log:
            return scipy.stats.loguniform(space.low, space.high)
        return scipy.stats.uniform(loc=space.low, scale=space.high - space.low)
    return list(space)


def random_candidates(
    tuning: TuningSpec, penalty: PenaltySpec, n_train: int = 1
) -> list[Candidate]:
    """The ``n_trials`` candidates ``RandomizedSearchCV`` draws for the same space and seed.

    That is ``ParameterSampler(distributions, n_iter=n_trials, random_state=random_state)``
    with each searched dimension as a list or, for a range, ``scipy.stats.uniform(low,
    high − low)`` or ``loguniform(low, high)``: ``{"est__alpha": …, "est__l1_ratio": …}``
    for one estimator, and with ``penalty`` searched one dict per estimator, ``[{"est":
    [Lasso()], "est__alpha": …}, {"est": [ElasticNet()], "est__alpha": …, "est__l1_ratio":
    …}, …]``, in the order given. So a space of lists only is sampled without replacement
    (all of it, in a shuffled order, when ``n_trials`` is at least its size), and otherwise
    each trial draws the estimator, then its parameters, in sorted key order.
    """
    space = SearchSpace.of(tuning, penalty, n_train)
    searched_penalty = "penalty" in tuning.space
    distributions: list[dict[str, Any]] = []
    for kind in space.kinds:
        family = estimators.get(kind)
        dist: dict[str, Any] = {"est": [kind]} if searched_penalty else {}
        for name in _HYPERPARAMETERS:
            if space.varies(family, name):
                dist[f"est__{name}"] = _distribution(tuning.space[name])  # type: ignore[arg-type]
        distributions.append(dist)
    sampler = ParameterSampler(
        distributions if searched_penalty else distributions[0],
        n_iter=tuning.n_trials,
        random_state=tuning.random_state,
    )
    out: list[Candidate] = []
    with warnings.catch_warnings():
        # "The total space of parameters is smaller than n_iter": the whole space is drawn.
        warnings.simplefilter("ignore", UserWarning)
        for params in sampler:
            kind = params.get("est", space.kinds[0])
            family = estimators.get(kind)
            alpha = float(params.get("est__alpha", space.alpha))
            ratio = None
            if "l1_ratio" in family.searchable:
                ratio = float(params.get("est__l1_ratio", space.l1_ratio))
            out.append(Candidate(kind, alpha, ratio))
    return out


def candidate_params(candidate: Candidate, searched: Iterable[str]) -> dict[str, Any]:
    """The searched parameters of a candidate, keys sorted as ``GridSearchCV`` shows them.

    ``l1_ratio`` appears for a family that has it whenever ``l1_ratio`` or ``penalty`` is
    searched, so every candidate of a penalty comparison names its estimator completely.
    """
    searched = set(searched)
    params: dict[str, Any] = {}
    if "alpha" in searched:
        params["alpha"] = candidate.alpha
    if "l1_ratio" in candidate.family.searchable and searched & {"l1_ratio", "penalty"}:
        params["l1_ratio"] = candidate.l1_ratio
    if "penalty" in searched:
        params["penalty"] = candidate.kind
    return params
