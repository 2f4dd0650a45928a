"""Cross-validated tuning of ``alpha``, ``l1_ratio`` and the penalty, at regularization-path speed.

A search gives the answers of

.. code-block:: python

    GridSearchCV(pipeline, param_grid, cv=KFold(folds, shuffle=..., random_state=...),
                 scoring=scoring).fit(X[train], y[train])

where ``pipeline`` is the job's preprocessing (:mod:`service.ml.pipeline`) followed by the
estimator of each candidate, and ``train`` the job's training split: the same folds, the
preprocessing refit on each fold's training rows, the same scorer, ``mean_score`` and
``std_score`` as ``mean_test_score`` and ``std_test_score``, the same ranking and the same
``best_params`` (the first candidate of rank 1). Candidates are ordered as
``ParameterGrid`` orders them: per penalty (in the order given), ``alpha`` outer and
``l1_ratio`` inner — what ``ParameterGrid([{est: [Lasso()], ...}, {est: [Ridge()], ...}])``
yields for a penalty comparison, and ``ParameterGrid({"alpha": ..., "l1_ratio": ...})``
for a single penalty.

It does not make ``len(grid) × folds`` cold fits. Per fold, the design matrix is built once
and centred (``fit_intercept``: with the fold's training means, as the estimators do), then

* Ridge: one eigendecomposition of ``XᵀX`` (or an SVD of ``X`` when there are fewer rows
  than columns) gives the exact solution for every alpha at the cost of a matrix product;
* Lasso/ElasticNet: one warm-started :func:`sklearn.linear_model.enet_path` per
  ``l1_ratio`` walks the alphas from the largest down, on the precomputed Gram matrix when
  there are more rows than columns. A warm start stops as soon as the duality gap is below
  the tolerance, and on a dense path (alphas close together) the previous solution already
  is below it for the next alpha after a sweep or two: the path then lags behind, each
  solution sitting at the edge of the tolerance on the side of the larger alpha (with
  ``tol / 100``, 1000 alphas gave validation r2 errors of 3e-4 against converged fits, and
  a different best alpha than ``GridSearchCV``). So the path runs at ``tol · 1e-4``
  (scikit-learn's meaning of ``tol``: the gap relative to ``‖y − ȳ‖²``): 1000 alphas then
  agree with converged fits to 2e-10, 3000 to 6e-7, and 30 alphas at 10000×300 cost 30 %
  more than at ``tol / 100``. Its solutions lie closer to the exact optimum than the cold
  fits of ``GridSearchCV`` at ``tol``, which agree with them to about ``tol``. A fold fit
  is reported as not converged only if its gap exceeds the job's ``tol``.

Folds and penalties run on a pool of threads (coordinate descent and LAPACK release the
GIL): one task per fold's design, then one per chunk of each path, scheduled chunk by
chunk across folds so that candidates finish in path order on every fold — a timeout then
keeps whole candidates. The calling thread only schedules, reports progress, polls
``should_stop`` and watches the deadline.

``alpha`` in a search is scikit-learn's ``alpha`` of the candidate's estimator; no lambda
conversion happens inside the search, so a Ridge alpha means the same penalty on a fold's
rows as on the whole training split (the seed's ``λ2 = alpha/n`` of the refit, with ``n``
the training rows, is in the chosen model's penalty echo).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import scipy.stats
from scipy.stats import rankdata
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import enet_path
from sklearn.model_selection import KFold, ParameterSampler
from threadpoolctl import ThreadpoolController

from service.errors import FitError, RegfitError
from service.ml.metrics import finite_list, finite_or_none, prediction_metrics
from service.ml.penalties import Penalty, resolve_penalty
from service.ml.pipeline import Columns, DesignTransformer, FeatureLayout
from service.ml.spec import (
    PENALTY_ALIASES,
    PenaltyKind,
    PenaltySpec,
    PreprocessingSpec,
    RangeSpec,
    TuningSpec,
)

Progress = Callable[[int, int, str], None]
StopCheck = Callable[[], bool]

# The four metrics every fold fit reports, in this order; the scorer picks one of them.
METRICS = ("r2", "mse", "rmse", "mae")
_SCORERS: dict[str, tuple[int, float]] = {
    "r2": (0, 1.0),
    "neg_mean_squared_error": (1, -1.0),
    "neg_root_mean_squared_error": (2, -1.0),
    "neg_mean_absolute_error": (3, -1.0),
}
# TrainingMoments shifts the rows by the mean of about this many of them.
SHIFT_SAMPLE_ROWS = 1024
# Warm-started paths run this much tighter than the job's tol (see the module doc).
PATH_TOL_FACTOR = 1e-4
# A path's first chunk is this fraction of it; later chunks aim at CHUNK_SECONDS each. A
# chunk is the unit of scheduling, progress, cancellation and timeout.
PATH_CHUNKS = 12
CHUNK_SECONDS = 0.05
# A chunk is at most this many times the size of the one before. Alphas get dearer down the
# path, so the seconds per alpha of a short chunk undervalue the next one; but each chunk
# costs its fold a validation pass (as much as a short solve), so a fast path should take
# its rest in one go (30 alphas at 10000×300: 2 chunks instead of 5).
CHUNK_GROWTH = 16
POLL_SECONDS = 0.2
# Bayesian search asks Optuna at most this many times the target number of distinct candidates.
MAX_ASKS_FACTOR = 10


class TuningCancelled(RegfitError):
    """``should_stop`` asked the search to stop (``fitting`` turns it into ``FitCancelled``)."""

    status = 409
    slug = "cancelled"
    title = "Job cancelled"


# --------------------------------------------------------------------------------------------
# Candidates


@dataclass(frozen=True)
class Candidate:
    """One point of the search: an estimator kind, its ``alpha`` and ``l1_ratio``."""

    kind: PenaltyKind
    alpha: float
    l1_ratio: float | None  # ElasticNet only

    @property
    def chain(self) -> tuple[str, float | None]:
        """Candidates of one chain share a regularization path (kind and ``l1_ratio``)."""
        return (self.kind, self.l1_ratio)


@dataclass(frozen=True)
class _Base:
    """The values of the dimensions a search does not vary, from the job's penalty."""

    kinds: tuple[PenaltyKind, ...]
    alpha: float
    l1_ratio: float
    searched: frozenset[str]
    max_iter: int | None


def searched_kinds(tuning: TuningSpec, kind: str | None) -> tuple[PenaltyKind, ...]:
    """The estimator kinds a search compares: ``space["penalty"]``, else the job's ``kind``."""
    kinds_space = tuning.space.get("penalty")
    names = kinds_space if isinstance(kinds_space, list) else [kind]
    # Canonical and de-duplicated by the spec; the job spec requires penalty.type when the
    # penalty is not searched.
    return tuple(PENALTY_ALIASES[str(name)] for name in names)


def _base(tuning: TuningSpec, penalty: PenaltySpec, n_train: int = 1) -> _Base:
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
    return _Base(kinds, float(alpha), float(l1_ratio), frozenset(tuning.space), penalty.max_iter)


def _values(tuning: TuningSpec, key: str, default: float) -> list[float]:
    space = tuning.space.get(key)
    if space is None:
        return [default]
    assert isinstance(space, list)
    return [float(v) for v in space]


def _is_finite_space(tuning: TuningSpec) -> bool:
    return not any(isinstance(v, RangeSpec) for v in tuning.space.values())


def grid_candidates(tuning: TuningSpec, penalty: PenaltySpec, n_train: int = 1) -> list[Candidate]:
    """Every combination of a finite space, in ``ParameterGrid`` order (see the module doc)."""
    base = _base(tuning, penalty, n_train)
    alphas = _values(tuning, "alpha", base.alpha)
    ratios = _values(tuning, "l1_ratio", base.l1_ratio)
    out: list[Candidate] = []
    for kind in base.kinds:
        for alpha in alphas:
            if kind == "elasticnet":
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
    if not _is_finite_space(tuning):
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
    base = _base(tuning, penalty, n_train)
    searched_penalty = "penalty" in tuning.space
    distributions: list[dict[str, Any]] = []
    for kind in base.kinds:
        dist: dict[str, Any] = {"est": [kind]} if searched_penalty else {}
        if "alpha" in tuning.space:
            dist["est__alpha"] = _distribution(tuning.space["alpha"])  # type: ignore[arg-type]
        if kind == "elasticnet" and "l1_ratio" in tuning.space:
            dist["est__l1_ratio"] = _distribution(tuning.space["l1_ratio"])  # type: ignore[arg-type]
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
            kind = params.get("est", base.kinds[0])
            alpha = float(params.get("est__alpha", base.alpha))
            ratio = None
            if kind == "elasticnet":
                ratio = float(params.get("est__l1_ratio", base.l1_ratio))
            out.append(Candidate(kind, alpha, ratio))
    return out


def candidate_params(candidate: Candidate, searched: Iterable[str]) -> dict[str, Any]:
    """The searched parameters of a candidate, keys sorted as ``GridSearchCV`` shows them.

    ``l1_ratio`` appears for ElasticNet candidates whenever ``l1_ratio`` or ``penalty`` is
    searched, so every candidate of a penalty comparison names its estimator completely.
    """
    searched = set(searched)
    params: dict[str, Any] = {}
    if "alpha" in searched:
        params["alpha"] = candidate.alpha
    if candidate.kind == "elasticnet" and searched & {"l1_ratio", "penalty"}:
        params["l1_ratio"] = candidate.l1_ratio
    if "penalty" in searched:
        params["penalty"] = candidate.kind
    return params


@functools.cache
def threadpool_controller() -> ThreadpoolController:
    """The process's native thread pools (BLAS, OpenMP), found once.

    ``threadpool_limits`` looks them up again on every call (resolving every loaded shared
    library's path: ~10 ms of a small job); the local executor's fork server calls this once
    so that every worker inherits the answer.
    """
    return ThreadpoolController()


# --------------------------------------------------------------------------------------------
# Numerics: one least-squares problem, solved for many alphas


class PenalizedLeastSquares:
    """Penalized least squares on fixed rows, prepared once and solved for many alphas.

    Build it with :meth:`from_design` (a design matrix) or :meth:`from_gram` (the centred
    Gram matrix of rows that were never materialised, see :class:`TrainingMoments`).

    Attributes
    ----------
    n_samples, n_features : int
    X : ndarray
        The centred design (Fortran-ordered) when coordinate descent runs on it; with a Gram
        matrix a zero-strided stand-in of the same shape (``enet_path`` then only reads its
        shape).
    y : ndarray
        The centred target.
    gram, xy : ndarray or None
        ``XᵀX`` and ``Xᵀy`` of the centred design, when there are more rows than columns.
    x_mean, y_mean
        The means the rows were centred with (zeros without ``fit_intercept``); the
        intercept of a solution ``w`` is ``ȳ − x̄·w``.

    Notes
    -----
    With more rows than columns coordinate descent costs ``O(p²)`` per sweep on the Gram
    matrix instead of ``O(np)``, and Ridge is an eigendecomposition of ``XᵀX``. Otherwise
    coordinate descent runs on ``X`` itself and Ridge uses the thin SVD of ``X``.
    """

    def __init__(
        self,
        *,
        X: np.ndarray,
        y: np.ndarray,
        gram: np.ndarray | None,
        xy: np.ndarray | None,
        x_mean: np.ndarray,
        y_mean: float,
    ) -> None:
        self.n_samples, self.n_features = X.shape
        self.X, self.y, self.gram, self.xy = X, y, gram, xy
        self.x_mean, self.y_mean = x_mean, y_mean
        self.y_norm2 = float(y @ y)
        self._ridge: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._ridge_lock = threading.Lock()

    @classmethod
    def from_design(
        cls, X: np.ndarray, y: np.ndarray, *, fit_intercept: bool, copy: bool = False
    ) -> PenalizedLeastSquares:
        """Centre ``X`` (in place unless ``copy``) and ``y`` as the estimators do."""
        n, p = X.shape
        X = np.asarray(X, dtype=np.float64)
        if fit_intercept:
            x_mean = X.mean(axis=0)
            if copy:
                X = X - x_mean  # one pass: the centred copy, not a copy then centring
            else:
                X -= x_mean
            y_mean = float(y.mean())
        else:
            if copy:
                X = X.copy()
            x_mean, y_mean = np.zeros(p), 0.0
        yc = np.ascontiguousarray(y - y_mean, dtype=np.float64)
        if n > p:
            return cls(X=X, y=yc, gram=X.T @ X, xy=X.T @ yc, x_mean=x_mean, y_mean=y_mean)
        return cls(X=np.asfortranarray(X), y=yc, gram=None, xy=None, x_mean=x_mean, y_mean=y_mean)

    @classmethod
    def from_gram(
        cls,
        gram: np.ndarray,
        xy: np.ndarray,
        y: np.ndarray,
        *,
        x_mean: np.ndarray,
        y_mean: float,
    ) -> PenalizedLeastSquares:
        """From the centred ``gram`` and ``xy`` of ``len(y)`` rows; ``y`` centred."""
        stand_in = np.broadcast_to(np.float64(0.0), (len(y), gram.shape[0]))
        return cls(X=stand_in, y=y, gram=gram, xy=xy, x_mean=x_mean, y_mean=y_mean)

    def intercepts(self, coefs: np.ndarray) -> np.ndarray:
        """Intercepts of the solutions ``coefs`` (columns), in the uncentred problem."""
        return self.y_mean - self.x_mean @ coefs

    def _ridge_basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # (V, d, Vᵀ Xᵀ y) with XᵀX = V·diag(d)·Vᵀ restricted to the numerical row space.
        with self._ridge_lock:
            if self._ridge is None:
                if self.gram is not None and self.xy is not None:
                    d, V = np.linalg.eigh(self.gram)
                    d = np.clip(d, 0.0, None)
                    self._ridge = (V, d, V.T @ self.xy)
                else:
                    _, s, Vt = np.linalg.svd(self.X, full_matrices=False)
                    V = Vt.T
                    self._ridge = (V, s * s, V.T @ (self.X.T @ self.y))
            return self._ridge

    def ridge(self, alphas: Sequence[float]) -> np.ndarray:
        """Exact ``Ridge`` solutions, one column per alpha.

        ``w(α) = V·diag(1/(d + α))·Vᵀ·Xᵀy``; directions where ``d + α`` vanishes (``alpha``
        0 on a rank-deficient design) get no weight, the minimum-norm least-squares answer.
        """
        V, d, proj = self._ridge_basis()
        a = np.asarray(alphas, dtype=np.float64)
        denom = d[:, None] + a[None, :]
        cutoff = max(float(d.max(initial=0.0)), 1.0) * max(self.n_samples, self.n_features)
        cutoff *= np.finfo(np.float64).eps
        with np.errstate(divide="ignore", invalid="ignore"):
            factors = np.where(denom > cutoff, proj[:, None] / denom, 0.0)
        return V @ factors

    def ridge_positive(self, alpha: float, penalty: Penalty) -> np.ndarray:
        """``Ridge(positive=True)`` (L-BFGS-B) has no closed form: one fit of the estimator."""
        if self.gram is not None and self.X.strides == (0, 0):
            raise ValueError("Ridge(positive=True) needs the design matrix, not only its Gram")
        X = self.X + self.x_mean  # the uncentred design; the estimator centres it again
        estimator = replace(penalty, kind="l2", alpha=alpha, l1_ratio=None).estimator()
        estimator.fit(X, self.y + self.y_mean)
        return np.asarray(estimator.coef_, dtype=np.float64).reshape(-1, 1)

    def enet(
        self,
        alphas: Sequence[float],
        l1_ratio: float,
        *,
        coef_init: np.ndarray | None,
        tol: float,
        max_iter: int,
        positive: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coordinate-descent solutions along ``alphas`` (descending), warm-started.

        Returns the coefficients (one column per alpha) and each solution's duality gap
        relative to ``‖y − ȳ‖²`` — the quantity scikit-learn compares with ``tol``.
        """
        # The arguments are built here, never by a user: scikit-learn's parameter validation
        # (about 1 ms a call, 3× the solve of a short path chunk) is skipped.
        with config_context(skip_parameter_validation=True):
            _, coefs, gaps = enet_path(
                self.X,
                self.y,
                l1_ratio=l1_ratio,
                alphas=np.asarray(alphas, dtype=np.float64),
                precompute=self.gram if self.gram is not None else False,
                Xy=self.xy,
                copy_X=False,
                coef_init=coef_init,
                check_input=False,
                tol=tol,
                max_iter=max_iter,
                positive=positive,
            )
        relative_gaps = np.asarray(gaps) * self.n_samples / max(self.y_norm2, 1e-300)
        return coefs, relative_gaps


class CVFold:
    """One fold: its training rows as a :class:`PenalizedLeastSquares`, its validation rows.

    The validation design is in the fold's own preprocessing (fitted on its training rows).
    """

    def __init__(self, problem: PenalizedLeastSquares, X_val: np.ndarray, y_val: np.ndarray):
        self.problem, self.X_val, self.y_val = problem, X_val, y_val
        # Solutions found so far per chain (Bayesian search warm-starts from the nearest).
        self.solved: dict[tuple[str, float | None], dict[float, np.ndarray]] = {}

    @classmethod
    def from_columns(
        cls,
        columns: Columns,
        layout: FeatureLayout,
        prep: PreprocessingSpec,
        y: np.ndarray,
        fit_rows: np.ndarray,
        val_rows: np.ndarray,
        *,
        fit_intercept: bool,
    ) -> CVFold:
        """Fit the preprocessing on ``fit_rows`` (a ``DesignTransformer``), as a pipeline does.

        A numeric column without an observed value on ``fit_rows`` is a zero column there,
        as good as the pipeline's ``SimpleImputer`` dropping it.
        """
        design = DesignTransformer(layout, prep, empty_columns="zero")
        X_fit = design.fit_transform(columns, fit_rows)
        problem = PenalizedLeastSquares.from_design(X_fit, y[fit_rows], fit_intercept=fit_intercept)
        return cls(problem, design.transform(columns, val_rows), y[val_rows])

    def evaluate(self, coefs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Validation metrics (one row per column of ``coefs``) and nonzero counts."""
        predictions = self.X_val @ coefs + self.problem.intercepts(coefs)
        return prediction_metrics(self.y_val, predictions), np.count_nonzero(coefs, axis=0)


def _is_constant(var: np.ndarray, mean: np.ndarray, n_samples: int) -> np.ndarray:
    # StandardScaler's test for a constant feature (its scale then becomes 1).
    eps = np.finfo(np.float64).eps
    return var <= n_samples * eps * var + (n_samples * mean * eps) ** 2


class _Serial:
    """``Executor.map`` in the calling thread."""

    @staticmethod
    def map(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        return map(fn, items)


_SERIAL = _Serial()


class TrainingMoments:
    """The training split's second moments per CV block: every fold's Gram without its design.

    The preprocessing of :mod:`service.ml.pipeline` is, per column, ``x = (z − c)·d``: the
    imputer changes nothing when no numeric training value is missing, ``StandardScaler``
    subtracts the fold's mean and divides by its standard deviation, and one-hot columns
    (from an encoder fitted on all training rows; a category a fold never sees is a zero
    column there, which gets a zero coefficient as in the fold's own encoding) are kept as
    they are. With the intercept fitted, the estimators centre ``x`` again, so a fold's
    centred Gram is ``D·(Sᶠ − nᶠ·z̄ᶠz̄ᶠᵀ)·D`` with ``Sᶠ`` the sum of ``zzᵀ`` over the fold's
    training rows — the training total minus the fold's validation block. One pass over the
    training rows (the blocks' ``ZᵀZ``) thus gives every fold, where building each fold's
    design and Gram would cost ``folds − 1`` passes. ``z`` is shifted close to the training
    means first, so the subtractions lose no precision to a large mean (a shift ``k``
    standard deviations off costs about ``log2(1 + k²)`` bits): by the mean of an evenly
    spaced sample of about ``SHIFT_SAMPLE_ROWS`` rows, each block shifting its own copy.

    Use :meth:`applies` first: it needs ``fit_intercept``, no missing numeric training value
    and more fold training rows than columns.
    """

    def __init__(
        self,
        columns: Columns,
        layout: FeatureLayout,
        prep: PreprocessingSpec,
        y: np.ndarray,
        train: np.ndarray,
        blocks: Sequence[np.ndarray],
        Z: np.ndarray | None = None,
        pool: Executor | None = None,
    ) -> None:
        """``pool``, when given, computes the blocks' moments in parallel."""
        if Z is None:
            Z = self.raw_design(columns, layout, prep, train)
        n, p = Z.shape
        self.n_numeric = len(layout.numeric)
        self.scaled = prep.scaling == "standard"
        shift = Z[:: max(1, n // SHIFT_SAMPLE_ROWS)].mean(axis=0)
        self.shift = shift
        self.Z = Z  # unshifted
        self.y = y[train]
        self.y_shift = float(self.y.mean())
        ys = self.y - self.y_shift
        self.blocks = [np.asarray(b) for b in blocks]

        def moments(b: np.ndarray) -> tuple[np.ndarray, ...]:
            Zb = Z[b]  # one copy; ``Zb.T @ Zb`` of one array is a symmetric rank-k update
            Zb -= shift
            return Zb.T @ Zb, Zb.min(axis=0), Zb.max(axis=0), Zb.sum(axis=0), Zb.T @ ys[b]

        per_block = list((pool or _SERIAL).map(moments, self.blocks))
        self.block_gram = [m[0] for m in per_block]
        self.block_min = [m[1] for m in per_block]
        self.block_max = [m[2] for m in per_block]
        self.block_sum = [m[3] for m in per_block]
        self.block_zy = [m[4] for m in per_block]
        self.block_ysum = [float(ys[b].sum()) for b in self.blocks]
        self.gram = np.sum(self.block_gram, axis=0)
        self.total_sum = np.sum(self.block_sum, axis=0)
        self.zy = np.sum(self.block_zy, axis=0)
        self.ysum = float(np.sum(self.block_ysum))
        self.n_samples, self.n_features = n, p

    @staticmethod
    def raw_design(
        columns: Columns,
        layout: FeatureLayout,
        prep: PreprocessingSpec,
        rows: np.ndarray,
        *,
        numeric: np.ndarray | None = None,
    ) -> np.ndarray:
        """The unscaled, unimputed design of ``rows`` (NaN where a numeric value is missing).

        ``numeric``: the rows' numeric block, when the caller has it (it becomes part of
        the result).
        """
        raw = prep.model_copy(update={"scaling": "none", "impute": "none"})
        return DesignTransformer(layout, raw).fit_transform(columns, rows, numeric=numeric)

    @staticmethod
    def applies(
        Z: np.ndarray, layout: FeatureLayout, n_fold_rows: int, fit_intercept: bool
    ) -> bool:
        """Whether the moments give the folds exactly (see the class doc)."""
        return (
            fit_intercept
            # The training split's encoder groups rare values as no fold's own one would.
            and not layout.grouped
            and n_fold_rows > Z.shape[1]
            and not (layout.with_missing and np.isnan(Z[:, : len(layout.numeric)]).any())
        )

    def fold(self, k: int | None) -> CVFold:
        """Fold ``k`` (trained on every block but ``k``), or all training rows for None."""
        others = [j for j in range(len(self.blocks)) if j != k]
        if k is None:
            rows, S, zsum, zy, ysum = None, self.gram, self.total_sum, self.zy, self.ysum
            n = self.n_samples
        else:
            rows = self.blocks[k]
            S = self.gram - self.block_gram[k]
            zsum = self.total_sum - self.block_sum[k]
            zy = self.zy - self.block_zy[k]
            ysum = self.ysum - self.block_ysum[k]
            n = self.n_samples - len(rows)
        z_mean = zsum / n
        y_mean = ysum / n
        centred = S - n * np.outer(z_mean, z_mean)
        xy = zy - z_mean * ysum  # Σ(z − z̄)(y − ȳ) = Σ z·y' − z̄·Σy' with y' = y − shift
        # A column constant on the fold's rows (a category it never sees, a numeric column
        # with one value there) is exactly zero once centred, as in the fold's own pipeline;
        # its moments would only hold rounding noise, which scaling could blow up.
        lows = np.min([self.block_min[j] for j in others], axis=0)
        highs = np.max([self.block_max[j] for j in others], axis=0)
        constant = lows == highs
        centred[constant, :] = 0.0
        centred[:, constant] = 0.0
        xy[constant] = 0.0
        d = np.ones(self.n_features)
        c = -self.shift  # unscaled columns keep their raw values
        if self.scaled and self.n_numeric:
            m = self.n_numeric
            var = np.clip(np.diag(centred)[:m] / n, 0.0, None)
            raw_mean = z_mean[:m] + self.shift[:m]
            scale = np.sqrt(var)
            scale[_is_constant(var, raw_mean, n) | constant[:m]] = 1.0
            d[:m] = 1.0 / scale
            c = c.copy()
            c[:m] = z_mean[:m]
        gram = centred * d[:, None] * d[None, :]
        xy = xy * d
        train_positions = (
            np.arange(self.n_samples)
            if k is None
            else np.concatenate([self.blocks[j] for j in others])
        )
        y_fit = self.y[np.sort(train_positions)]
        problem = PenalizedLeastSquares.from_gram(
            gram,
            xy,
            y_fit - (y_mean + self.y_shift),
            x_mean=(z_mean - c) * d,
            y_mean=y_mean + self.y_shift,
        )
        if rows is None:
            return CVFold(problem, np.empty((0, self.n_features)), np.empty(0))
        X_val = self.Z[rows]  # a new array: preprocessed in place
        X_val -= c + self.shift  # Z is not shifted
        X_val *= d
        return CVFold(problem, X_val, self.y[rows])


def solve_chain(
    problem: PenalizedLeastSquares,
    penalty: Penalty,
    kind: str,
    l1_ratio: float | None,
    alphas: Sequence[float],
    coef_init: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``problem`` for ``alphas`` (descending) of one kind; returns coefs and gaps.

    Gaps are 0 for the exact Ridge solutions. ``penalty`` supplies ``positive``, ``tol``
    and ``max_iter``.
    """
    if kind == "l2":
        if penalty.positive:
            coefs = np.hstack([problem.ridge_positive(a, penalty) for a in alphas])
        else:
            coefs = problem.ridge(alphas)
        return coefs, np.zeros(len(alphas))
    ratio = 1.0 if kind == "l1" else float(l1_ratio if l1_ratio is not None else 0.5)
    return problem.enet(
        alphas,
        ratio,
        coef_init=coef_init,
        tol=penalty.tol * PATH_TOL_FACTOR,
        max_iter=penalty.max_iter or 1000,
        positive=penalty.positive,
    )


# --------------------------------------------------------------------------------------------
# Scheduling: tasks on a thread pool, driven (progress, cancel, deadline) by the caller


@dataclass(frozen=True)
class _Segment:
    """Alphas (descending) of one chain, solved in one go; ``members[j]`` sit at ``alphas[j]``."""

    kind: str
    l1_ratio: float | None
    alphas: list[float]
    members: list[list[int]]


@dataclass(order=True)
class _Task:
    priority: tuple[int, ...]
    run: Callable[[], Any] = field(compare=False)
    done: Callable[[Any], list[_Task]] = field(compare=False)


class _StopSearch(Exception):
    def __init__(self, reason: Literal["cancelled", "timeout"]) -> None:
        super().__init__(reason)
        self.reason = reason


class _Scheduler:
    """Runs tasks by priority on ``n_threads`` threads; the caller's thread drives it."""

    def __init__(
        self,
        n_threads: int,
        *,
        deadline: float | None,
        should_stop: StopCheck,
        report: Callable[[], None],
    ) -> None:
        self.pool = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="regfit-cv")
        self.n_threads = n_threads
        self.deadline = deadline
        self.should_stop = should_stop
        self.report = report
        self.stop = threading.Event()
        self._counter = itertools.count()

    def close(self) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _check(self) -> None:
        if self.should_stop():
            raise _StopSearch("cancelled")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise _StopSearch("timeout")

    def run(self, tasks: Iterable[_Task]) -> None:
        """Run ``tasks`` and the follow-ups their ``done`` returns, until none is left.

        Raises ``_StopSearch`` on cancel or timeout, after the running tasks finished and
        were recorded (their follow-ups are dropped).
        """
        heap: list[tuple[_Task, int]] = []
        for task in tasks:
            heapq.heappush(heap, (task, next(self._counter)))
        running: dict[Future[Any], _Task] = {}
        try:
            while heap or running:
                self._check()
                while heap and len(running) < self.n_threads:
                    task, _ = heapq.heappop(heap)
                    running[self.pool.submit(task.run)] = task
                timeout = POLL_SECONDS
                if self.deadline is not None:
                    timeout = max(0.0, min(timeout, self.deadline - time.monotonic()))
                finished, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    for follow_up in task.done(future.result()):
                        heapq.heappush(heap, (follow_up, next(self._counter)))
                self.report()
        except _StopSearch:
            self.stop.set()
            for future, task in running.items():
                result = future.result()
                task.done(result)
            self.report()
            raise
        except BaseException:
            self.stop.set()
            wait(running)
            raise


# --------------------------------------------------------------------------------------------
# The search


@dataclass
class CandidateScores:
    """Per-fold results of every candidate: metrics, nonzero counts, seconds, completion."""

    n_candidates: int
    n_folds: int
    metrics: np.ndarray = field(init=False)
    nonzero: np.ndarray = field(init=False)
    seconds: np.ndarray = field(init=False)
    done: np.ndarray = field(init=False)
    unconverged: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.n_candidates, self.n_folds)
        self.metrics = np.full((*shape, len(METRICS)), np.nan)
        self.nonzero = np.zeros(shape)
        self.seconds = np.zeros(self.n_candidates)
        self.done = np.zeros(shape, dtype=bool)
        self.unconverged = np.zeros(shape, dtype=bool)

    def grow(self, n_candidates: int) -> None:
        extra = n_candidates - self.n_candidates
        if extra <= 0:
            return
        self.metrics = np.concatenate(
            [self.metrics, np.full((extra, self.n_folds, len(METRICS)), np.nan)]
        )
        self.nonzero = np.concatenate([self.nonzero, np.zeros((extra, self.n_folds))])
        self.seconds = np.concatenate([self.seconds, np.zeros(extra)])
        self.done = np.concatenate([self.done, np.zeros((extra, self.n_folds), dtype=bool)])
        self.unconverged = np.concatenate(
            [self.unconverged, np.zeros((extra, self.n_folds), dtype=bool)]
        )
        self.n_candidates = n_candidates

    @property
    def fits_done(self) -> int:
        return int(self.done.sum())


@dataclass
class TuningOutcome:
    """What a search hands to the final fit.

    Attributes
    ----------
    penalty : Penalty
        The selected candidate as an estimator, refit on the whole training split.
    summary : dict
        ``summary["tuning"]`` of the model (``comparison`` n_nonzero filled in by the refit).
    cv_metrics : dict
        The selected candidate's ``r2``, ``mse``, ``rmse``, ``mae``, averaged over folds.
    path_alphas, path_mean, path_std : list of float
        The selected chain's searched alphas (descending) and their CV scores.
    comparison_penalties : dict
        Per penalty kind, the estimator of its best candidate (refit for ``n_nonzero``).
    fits_done, fits_total : int
        Candidate × fold fits run and planned.
    warnings : list of str
    path_problem : PenalizedLeastSquares or None
        The whole training split's problem, when the search had it (the moments).
    path_coefficients : (ndarray, bool) or None
        The selected chain's path on the whole training split (a column per alpha of
        ``path_alphas``) and whether it met ``tol``, when the search computed it already.
    """

    penalty: Penalty
    summary: dict[str, Any]
    cv_metrics: dict[str, float | None]
    path_alphas: list[float]
    path_mean: list[float | None]
    path_std: list[float | None]
    comparison_penalties: dict[str, Penalty]
    fits_done: int
    fits_total: int
    warnings: list[str]
    path_problem: PenalizedLeastSquares | None = None
    path_coefficients: tuple[np.ndarray, bool] | None = None


def _n_threads(n_folds: int, n_jobs: int | None) -> int:
    cores = os.cpu_count() or 1
    return max(1, min(n_folds, n_jobs if n_jobs is not None else cores))


class _Search:
    """State shared by the strategies: folds, scores, the scheduler."""

    def __init__(
        self,
        columns: Columns,
        layout: FeatureLayout,
        prep: PreprocessingSpec,
        y: np.ndarray,
        train: np.ndarray,
        tuning: TuningSpec,
        penalty: Penalty,
        *,
        n_candidates: int,
        progress: Progress,
        should_stop: StopCheck,
        n_jobs: int | None,
        train_numeric: np.ndarray | None = None,
    ) -> None:
        # The timeout counts from here: preparing the folds is part of the search.
        deadline = (
            time.monotonic() + tuning.timeout_seconds
            if tuning.timeout_seconds is not None
            else None
        )
        self.columns, self.layout, self.prep, self.y = columns, layout, prep, y
        self.tuning, self.penalty = tuning, penalty
        # The chain, alphas, problem and solutions of a path on the whole training split.
        self.full_path: tuple[_Segment, PenalizedLeastSquares, np.ndarray, np.ndarray] | None
        self.full_path = None
        n_folds = tuning.cv.folds
        kfold = KFold(n_folds, shuffle=tuning.cv.shuffle, random_state=tuning.cv.random_state)
        try:
            positions = list(kfold.split(train))  # once: an unseeded shuffle differs per call
        except ValueError as exc:
            raise FitError(
                f"cannot cut {len(train)} training rows into {n_folds} folds: {exc}"
            ) from exc
        self.splits = [(train[a], train[b]) for a, b in positions]
        self.folds: list[CVFold | None] = [None] * n_folds
        self.moments: TrainingMoments | None = None
        blocks = [b for _, b in positions]
        smallest_fold = len(train) - max(len(b) for b in blocks)
        ridge_positive = penalty.positive and "l2" in searched_kinds(tuning, penalty.kind)
        self.scores = CandidateScores(n_candidates, n_folds)
        self.progress, self.total = progress, n_candidates * n_folds
        self.message = f"cross-validating {n_candidates} candidates × {n_folds} folds"
        self.scheduler = _Scheduler(
            _n_threads(n_folds, n_jobs),
            deadline=deadline,
            should_stop=should_stop,
            report=self.report,
        )
        if penalty.fit_intercept and not ridge_positive:
            try:
                Z = TrainingMoments.raw_design(columns, layout, prep, train, numeric=train_numeric)
                if TrainingMoments.applies(Z, layout, smallest_fold, True):
                    self.moments = TrainingMoments(
                        columns, layout, prep, y, train, blocks, Z=Z, pool=self.scheduler.pool
                    )
            except BaseException:
                self.scheduler.close()
                raise

    def report(self) -> None:
        self.progress(self.scores.fits_done, self.total, self.message)

    def build_task(self, k: int, follow_up: Callable[[int], list[_Task]]) -> _Task:
        def run() -> CVFold | None:
            if self.scheduler.stop.is_set():
                return None
            if self.moments is not None:
                return self.moments.fold(k)
            fit_rows, val_rows = self.splits[k]
            try:
                return CVFold.from_columns(
                    self.columns,
                    self.layout,
                    self.prep,
                    self.y,
                    fit_rows,
                    val_rows,
                    fit_intercept=self.penalty.fit_intercept,
                )
            except FitError as exc:
                raise FitError(f"CV fold {k + 1} of {len(self.splits)}: {exc.detail}") from exc

        def done(fold: CVFold | None) -> list[_Task]:
            if fold is None:
                return []
            self.folds[k] = fold
            return follow_up(k)

        return _Task((-1, k), run, done)

    def chain_task(
        self,
        k: int,
        segments: list[_Segment],
        coef_init: np.ndarray | None,
        priority: tuple[int, ...],
        follow_up: Callable[[np.ndarray, float], list[_Task]] | None,
    ) -> _Task:
        """Solve ``segments`` one after the other on fold ``k``; record their candidates.

        ``coef_init`` warm-starts the first segment; ``follow_up`` receives the last
        solution (the warm start of the chain's next chunk) and the seconds the task took.
        """

        def run() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]] | None:
            fold = self.folds[k]
            results = []
            start = coef_init
            for segment in segments:
                if fold is None or self.scheduler.stop.is_set():
                    return None
                started = time.perf_counter()
                coefs, gaps = solve_chain(
                    fold.problem,
                    self.penalty,
                    segment.kind,
                    segment.l1_ratio,
                    segment.alphas,
                    start,
                )
                metrics, nonzero = fold.evaluate(coefs)
                results.append((coefs, gaps, metrics, nonzero, time.perf_counter() - started))
                start = None
            return results

        def done(results: Any) -> list[_Task]:
            if results is None:
                return []
            fold = self.folds[k]
            assert fold is not None
            for segment, (coefs, gaps, metrics, nonzero, seconds) in zip(
                segments, results, strict=True
            ):
                solved = fold.solved.setdefault((segment.kind, segment.l1_ratio), {})
                share = seconds / len(segment.alphas)
                for j, (alpha, indices) in enumerate(
                    zip(segment.alphas, segment.members, strict=True)
                ):
                    solved[alpha] = coefs[:, j]
                    for i in indices:
                        self.scores.metrics[i, k] = metrics[j]
                        self.scores.nonzero[i, k] = nonzero[j]
                        self.scores.seconds[i] += share
                        self.scores.done[i, k] = True
                        self.scores.unconverged[i, k] = gaps[j] > self.penalty.tol
            if follow_up is None:
                return []
            return follow_up(results[-1][0][:, -1].copy(), sum(r[4] for r in results))

        return _Task(priority, run, done)

    # -- grid and random: every candidate known up front, batched onto paths ---------------

    def run_batch(self, candidates: list[Candidate]) -> None:
        """Evaluate ``candidates`` on every fold: one path per chain, chunked.

        A chain of several alphas is walked in warm-started chunks (Ridge: one chunk, a
        single decomposition). The first chunk is ``1/PATH_CHUNKS`` of the path; each next
        one is sized from the seconds per alpha the last one took, to last about
        ``CHUNK_SECONDS`` (at most ``CHUNK_GROWTH`` times the last size), so a chunk's
        fixed cost (validation predictions, scheduling) stays small next to its solve while
        cancel and timeout still act within a fraction of a second. Chains of one alpha (a
        random search over a continuous ``l1_ratio``) are cold fits, bundled so that a few
        dozen tasks per fold cover them.
        """
        chains: dict[tuple[str, float | None], dict[float, list[int]]] = {}
        for i, c in enumerate(candidates):
            chains.setdefault(c.chain, {}).setdefault(c.alpha, []).append(i)
        paths: list[tuple[str, float | None, list[float], list[list[int]], int]] = []
        singletons: list[_Segment] = []
        for (kind, ratio), by_alpha in chains.items():
            alphas = sorted(by_alpha, reverse=True)
            if len(alphas) == 1:
                singletons.append(_Segment(kind, ratio, alphas, [by_alpha[alphas[0]]]))
                continue
            if kind == "l2" and not self.penalty.positive:
                first = len(alphas)  # one decomposition covers them all
            else:
                first = max(1, math.ceil(len(alphas) / PATH_CHUNKS))
            paths.append((kind, ratio, alphas, [by_alpha[a] for a in alphas], first))
        bundles: list[list[_Segment]] = []
        if singletons:
            size = max(1, math.ceil(len(singletons) / (4 * PATH_CHUNKS)))
            bundles = [singletons[s : s + size] for s in range(0, len(singletons), size)]

        def path_steps(
            k: int, c: int, step: int, start: int, size: int, coef_init: np.ndarray | None
        ) -> list[_Task]:
            kind, ratio, alphas, members, _ = paths[c]
            if start >= len(alphas):
                return []
            stop = min(start + size, len(alphas))
            segment = _Segment(kind, ratio, alphas[start:stop], members[start:stop])

            def follow(last: np.ndarray, seconds: float) -> list[_Task]:
                per_alpha = seconds / (stop - start)
                grown = CHUNK_GROWTH * (stop - start)
                if per_alpha > 0:
                    grown = min(grown, max(1, int(CHUNK_SECONDS / per_alpha)))
                return path_steps(k, c, step + 1, stop, grown, last)

            return [self.chain_task(k, [segment], coef_init, (step, c, k), follow)]

        def after_build(k: int) -> list[_Task]:
            tasks = [
                t for c in range(len(paths)) for t in path_steps(k, c, 0, 0, paths[c][4], None)
            ]
            tasks += [
                self.chain_task(k, bundle, None, (0, len(paths) + b, k), None)
                for b, bundle in enumerate(bundles)
            ]
            return tasks

        tasks = [self.build_task(k, after_build) for k in range(len(self.splits))]
        if self.moments is not None and len(paths) == 1 and not singletons:
            kind, ratio, alphas, members, _ = paths[0]
            tasks.append(self.full_path_task(_Segment(kind, ratio, alphas, members)))
        self.scheduler.run(tasks)

    def full_path_task(self, segment: _Segment) -> _Task:
        """The path of a search's only chain on the whole training split: the model's
        regularization path, computed by a thread the folds leave idle (it runs last)."""

        def run() -> tuple[PenalizedLeastSquares, np.ndarray, np.ndarray] | None:
            if self.scheduler.stop.is_set() or self.moments is None:
                return None
            problem = self.moments.fold(None).problem
            coefs, gaps = solve_chain(
                problem, self.penalty, segment.kind, segment.l1_ratio, segment.alphas, None
            )
            return problem, coefs, gaps

        def done(
            result: tuple[PenalizedLeastSquares, np.ndarray, np.ndarray] | None,
        ) -> list[_Task]:
            if result is not None:
                self.full_path = (segment, *result)
            return []

        return _Task((sys.maxsize,), run, done)

    # -- bayesian: one candidate at a time, folds in parallel --------------------------------

    def run_one(self, index: int, candidate: Candidate) -> None:
        def tasks_for(k: int) -> list[_Task]:
            fold = self.folds[k]
            assert fold is not None
            solved = fold.solved.get(candidate.chain, {})
            coef_init = None
            if solved and candidate.kind != "l2":
                nearest = min(
                    solved,
                    key=lambda a: abs(math.log(a + 1e-300) - math.log(candidate.alpha + 1e-300)),
                )
                coef_init = solved[nearest].copy()
            segment = _Segment(candidate.kind, candidate.l1_ratio, [candidate.alpha], [[index]])
            return [self.chain_task(k, [segment], coef_init, (0, k), None)]

        missing = [k for k, fold in enumerate(self.folds) if fold is None]
        tasks = [self.build_task(k, tasks_for) for k in missing]
        tasks += [t for k in range(len(self.folds)) if k not in missing for t in tasks_for(k)]
        self.scheduler.run(tasks)


def estimator_penalty(common: Penalty, candidate: Candidate, max_iter: int | None) -> Penalty:
    """The estimator of ``candidate``, with the job's shared settings (intercept, tol, ...).

    ``max_iter`` None (the job left it unset) resolves per kind, as for a plain fit: 1000
    for Lasso/ElasticNet, the solver's default for Ridge.
    """
    return Penalty(
        candidate.kind,
        candidate.alpha,
        candidate.l1_ratio if candidate.kind == "elasticnet" else None,
        fit_intercept=common.fit_intercept,
        max_iter=max_iter if max_iter is not None else (None if candidate.kind == "l2" else 1000),
        tol=common.tol,
        positive=common.positive,
    )


def _scores_of(scores: CandidateScores, scoring: str) -> np.ndarray:
    column, sign = _SCORERS[scoring]
    return sign * scores.metrics[:, :, column]


def _rank(means: np.ndarray) -> np.ndarray:
    # GridSearchCV's ranking: NaN means tie with (below) the worst, method "min".
    if np.isnan(means).all():
        return np.ones(len(means), dtype=int)
    filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)
    return rankdata(-filled, method="min").astype(int)


def _bayesian(
    search: _Search, tuning: TuningSpec, base: _Base, target: int, candidates: list[Candidate]
) -> None:
    """Optuna TPE (seeded by ``tuning.random_state``); appends each new candidate it tries."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=tuning.random_state)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    seen: dict[Candidate, int] = {}

    def suggest(trial: Any, name: str, space: Any) -> float:
        if isinstance(space, RangeSpec):
            return float(trial.suggest_float(name, space.low, space.high, log=space.log))
        return float(trial.suggest_categorical(name, list(space)))

    asks = 0
    while len(candidates) < target and asks < MAX_ASKS_FACTOR * target:
        asks += 1
        trial = study.ask()
        kind = base.kinds[0]
        if "penalty" in tuning.space:
            kind = PENALTY_ALIASES[str(trial.suggest_categorical("penalty", list(base.kinds)))]
        alpha = (
            suggest(trial, "alpha", tuning.space["alpha"])
            if "alpha" in tuning.space
            else base.alpha
        )
        ratio = None
        if kind == "elasticnet":
            ratio = (
                suggest(trial, "l1_ratio", tuning.space["l1_ratio"])
                if "l1_ratio" in tuning.space
                else base.l1_ratio
            )
        candidate = Candidate(kind, alpha, ratio)
        if candidate in seen:  # TPE may propose a point again: answer from the record
            value = float(np.mean(_scores_of(search.scores, tuning.scoring)[seen[candidate]]))
            study.tell(
                trial,
                value if math.isfinite(value) else None,
                state=None if math.isfinite(value) else optuna.trial.TrialState.FAIL,
            )
            continue
        index = len(candidates)
        candidates.append(candidate)
        seen[candidate] = index
        search.scores.grow(len(candidates))
        try:
            search.run_one(index, candidate)
        except _StopSearch:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        value = float(np.mean(_scores_of(search.scores, tuning.scoring)[index]))
        if math.isfinite(value):
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)


def search(
    columns: Columns,
    layout: FeatureLayout,
    prep: PreprocessingSpec,
    y: np.ndarray,
    train: np.ndarray,
    tuning: TuningSpec,
    penalty_spec: PenaltySpec,
    *,
    progress: Progress,
    should_stop: StopCheck,
    n_jobs: int | None = None,
    train_numeric: np.ndarray | None = None,
) -> TuningOutcome:
    """Run the cross-validated search of ``tuning`` on the ``train`` rows.

    ``train_numeric``, when given, is the numeric block of the training rows (as
    :class:`DesignTransformer` builds it); the search takes it over and changes it.

    Returns
    -------
    TuningOutcome
        The selected candidate and the ``tuning`` summary.

    Raises
    ------
    TuningCancelled
        When ``should_stop()`` turns true.
    FitError
        When the folds cannot be built, or the timeout came before any candidate finished.
    """
    started = time.perf_counter()  # ``seconds`` covers preparing the folds too
    n_train = len(train)
    base = _base(tuning, penalty_spec, n_train)
    common = resolve_penalty(
        penalty_spec.model_copy(update={"type": penalty_spec.type or base.kinds[0]}), n_train
    )
    common = replace(common, lambda1=None, lambda2=None)
    planned = count_candidates(tuning, penalty_spec)
    if tuning.strategy == "grid":
        candidates = grid_candidates(tuning, penalty_spec, n_train)
    elif tuning.strategy == "random":
        candidates = random_candidates(tuning, penalty_spec, n_train)
    else:
        candidates = []
    n_start = len(candidates) if tuning.strategy != "bayesian" else 0
    stopped: str | None = None
    # Each pool thread is one core's worth of work: multi-threaded BLAS inside them would
    # oversubscribe the cores (measured 4-6x slower at 20000×500 on 2 cores).
    blas = (
        threadpool_controller().limit(limits=1, user_api="blas")
        if _n_threads(tuning.cv.folds, n_jobs) > 1
        else contextlib.nullcontext()
    )
    with warnings.catch_warnings(record=True) as caught, blas:
        # Solver warnings from the pool's threads land here too (the filters are global);
        # convergence is judged from the duality gaps instead (see the module doc).
        warnings.simplefilter("always")
        search_ = _Search(
            columns,
            layout,
            prep,
            y,
            train,
            tuning,
            common,
            n_candidates=n_start,
            progress=progress,
            should_stop=should_stop,
            n_jobs=n_jobs,
            train_numeric=train_numeric,
        )
        search_.total = planned * tuning.cv.folds
        search_.message = (
            f"{tuning.strategy} search: {planned} candidates × {tuning.cv.folds} folds"
        )
        try:
            search_.report()
            if tuning.strategy == "bayesian":
                _bayesian(search_, tuning, base, planned, candidates)
            else:
                search_.run_batch(candidates)
        except _StopSearch as stop:
            stopped = stop.reason
        finally:
            search_.scheduler.close()
    seconds = time.perf_counter() - started
    if stopped == "cancelled":
        raise TuningCancelled("the job was asked to stop")
    return _outcome(search_, tuning, base, common, candidates, planned, stopped, seconds, caught)


def _outcome(
    search_: _Search,
    tuning: TuningSpec,
    base: _Base,
    common: Penalty,
    candidates: list[Candidate],
    planned: int,
    stopped: str | None,
    seconds: float,
    caught: list[warnings.WarningMessage],
) -> TuningOutcome:
    scores = search_.scores
    n_folds = tuning.cv.folds
    fold_scores_all = _scores_of(scores, tuning.scoring)
    finished = [i for i in range(len(candidates)) if scores.done[i].all()]
    if not finished:
        raise FitError(
            f"the search stopped at timeout_seconds={tuning.timeout_seconds} before any "
            f"candidate finished all {n_folds} folds; allow more time or search less"
        )
    fold_scores = fold_scores_all[finished]
    means = fold_scores.mean(axis=1)
    stds = fold_scores.std(axis=1)
    ranks = _rank(means)
    best = int(np.argmin(ranks))
    chosen = best
    one_se: dict[str, Any] | None = None
    if tuning.select == "1se":
        # glmnet's cvsd: the standard error of the mean of the fold scores, the sample
        # standard deviation over √folds (= the population std_score over √(folds − 1)).
        threshold = means[best] - stds[best] / math.sqrt(n_folds - 1)
        kind = candidates[finished[best]].kind
        eligible = [
            j
            for j in range(len(finished))
            if candidates[finished[j]].kind == kind and means[j] >= threshold
        ]
        chosen = min(
            eligible,
            key=lambda j: (-candidates[finished[j]].alpha, scores.nonzero[finished[j]].mean(), j),
        )
        one_se = {
            "threshold": finite_or_none(threshold),
            "max_score_index": best,
            "max_score": finite_or_none(means[best]),
            "rule": "largest alpha of the best candidate's penalty whose mean score is at "
            "least the best mean minus its standard error (std_score/sqrt(folds - 1), "
            "glmnet's cvsd); equal alphas: fewest nonzero coefficients",
        }
    chosen_candidate = candidates[finished[chosen]]
    rows: list[dict[str, Any]] = []
    for j, i in enumerate(finished):
        rows.append(
            {
                "params": candidate_params(candidates[i], base.searched),
                "mean_score": finite_or_none(means[j]),
                "std_score": finite_or_none(stds[j]),
                "fold_scores": finite_list(fold_scores[j]),
                "fit_seconds": float(scores.seconds[i]),
                "rank": int(ranks[j]),
                "n_nonzero": float(scores.nonzero[i].mean()),
            }
        )
    warnings_out: list[str] = []
    unconverged = [j for j, i in enumerate(finished) if scores.unconverged[i].any()]
    if unconverged:
        warnings_out.append(
            f"ConvergenceWarning: {len(unconverged)} candidate(s) did not converge on every "
            f"fold within max_iter={common.max_iter} at tol={common.tol} (e.g. "
            f"{rows[unconverged[0]]['params']}); increase max_iter or tol"
        )
    for record in caught:
        if issubclass(record.category, ConvergenceWarning):
            continue  # judged from the gaps above, at the job's tol
        text = f"{record.category.__name__}: {record.message}"
        if text not in warnings_out:
            warnings_out.append(text)
    undefined = int(np.isnan(means).sum())
    if undefined:
        warnings_out.append(
            f"{undefined} of {len(finished)} candidate(s) have no finite mean CV score "
            f"({tuning.scoring} is undefined on some fold, e.g. r2 on fewer than two "
            f"validation rows); they rank last, as in GridSearchCV"
            + (
                "; every candidate is affected, so the first was selected"
                if undefined == len(finished)
                else ""
            )
        )
    if stopped == "timeout":
        warnings_out.append(
            f"tuning stopped at timeout_seconds={tuning.timeout_seconds}: {len(finished)} of "
            f"{planned} candidates finished every fold; the best of those was selected"
        )
    summary: dict[str, Any] = {
        "strategy": tuning.strategy,
        "scoring": tuning.scoring,
        "cv": tuning.cv.model_dump(),
        "select": tuning.select,
        "best_params": rows[chosen]["params"],
        "best_score": rows[chosen]["mean_score"],
        "best_index": chosen,
        "candidates": rows,
        "timed_out": stopped == "timeout",
        "n_candidates": planned,
        "n_candidates_finished": len(finished),
        "seconds": seconds,
    }
    if tuning.strategy != "grid":
        summary["random_state"] = tuning.random_state
    if one_se is not None:
        summary["one_se"] = one_se
    comparison_penalties: dict[str, Penalty] = {}
    if "penalty" in tuning.space:
        comparison: dict[str, Any] = {}
        for kind in base.kinds:
            of_kind = [j for j, i in enumerate(finished) if candidates[i].kind == kind]
            if not of_kind:
                continue
            top = min(of_kind, key=lambda j: (ranks[j], j))
            c = candidates[finished[top]]
            comparison[kind] = {
                "best_score": rows[top]["mean_score"],
                "best_params": {"alpha": c.alpha, "l1_ratio": c.l1_ratio},
                "best_index": top,
                "n_nonzero": None,  # filled by the refit on the training split
            }
            comparison_penalties[kind] = estimator_penalty(common, c, base.max_iter)
        summary["comparison"] = comparison
    chain = [j for j, i in enumerate(finished) if candidates[i].chain == chosen_candidate.chain]
    by_alpha: dict[float, int] = {}
    for j in chain:
        by_alpha.setdefault(candidates[finished[j]].alpha, j)
    path_alphas = sorted(by_alpha, reverse=True)
    chosen_metrics = scores.metrics[finished[chosen]].mean(axis=0)
    return TuningOutcome(
        penalty=estimator_penalty(common, chosen_candidate, base.max_iter),
        summary=summary,
        cv_metrics={
            name: finite_or_none(v) for name, v in zip(METRICS, chosen_metrics, strict=True)
        },
        path_alphas=path_alphas,
        path_mean=[rows[by_alpha[a]]["mean_score"] for a in path_alphas],
        path_std=[rows[by_alpha[a]]["std_score"] for a in path_alphas],
        comparison_penalties=comparison_penalties,
        fits_done=scores.fits_done,
        # A Bayesian search may find fewer distinct candidates than planned.
        fits_total=(planned if stopped else len(candidates)) * n_folds,
        warnings=warnings_out,
        **_path_of(search_, chosen_candidate, path_alphas),
    )


def _path_of(search_: _Search, chosen: Candidate, alphas: list[float]) -> dict[str, Any]:
    """The outcome's ``path_problem`` and, when the search solved it, ``path_coefficients``."""
    if search_.full_path is not None:
        segment, problem, coefs, gaps = search_.full_path
        if (segment.kind, segment.l1_ratio) == chosen.chain and segment.alphas == alphas:
            converged = bool(np.all(gaps <= search_.penalty.tol))
            return {"path_problem": problem, "path_coefficients": (coefs, converged)}
    if search_.moments is None:
        return {"path_problem": None}
    return {"path_problem": search_.moments.fold(None).problem}


# --------------------------------------------------------------------------------------------
# Regularization path of a fitted model


def default_path_alphas(
    X: np.ndarray, y: np.ndarray, penalty: Penalty, n_alphas: int = 30
) -> list[float]:
    """Alphas around a fitted penalty, for an untuned model's path (descending).

    Lasso/ElasticNet: scikit-learn's ``_alpha_grid`` (``n_alphas`` log-spaced values from
    the smallest alpha that zeroes every coefficient down to 1e-3 of it), plus the fitted
    alpha. Ridge (or ``l1_ratio`` 0): ``alpha·logspace(-3, 3, 31)``.
    """
    alpha = penalty.alpha
    ratio = 1.0 if penalty.kind == "l1" else (penalty.l1_ratio or 0.0)
    if penalty.kind != "l2" and ratio > 0:
        # Xᵀ(y − ȳ) equals the centred design's (X − x̄)ᵀ(y − ȳ).
        Xy = X.T @ (y - y.mean() if penalty.fit_intercept else y)
        alpha_max = float(np.max(np.abs(Xy))) / (len(y) * ratio) if len(y) else 0.0
        if alpha_max > 0 and math.isfinite(alpha_max):
            grid = set(np.geomspace(alpha_max, alpha_max * 1e-3, n_alphas).tolist())
            grid.add(float(alpha))
            return sorted(grid, reverse=True)
    if alpha <= 0:
        return [float(a) for a in np.logspace(3, -3, 31)] + [0.0]
    return [float(alpha * s) for s in np.logspace(3, -3, 31)]


def coefficient_path(
    X: np.ndarray,
    y: np.ndarray,
    penalty: Penalty,
    alphas: Sequence[float],
    *,
    problem: PenalizedLeastSquares | None = None,
) -> tuple[np.ndarray, bool]:
    """Coefficients (one column per alpha, descending) of ``penalty`` along ``alphas``.

    Fitted as in the search (exact Ridge, warm-started coordinate descent at ``tol·1e-4``),
    on ``problem`` when the search already prepared the training split's. Returns the
    coefficients and whether every solution met ``penalty.tol``.
    """
    if problem is None or (penalty.kind == "l2" and penalty.positive):
        problem = PenalizedLeastSquares.from_design(
            X, y, fit_intercept=penalty.fit_intercept, copy=True
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        coefs, gaps = solve_chain(
            problem, penalty, penalty.kind, penalty.l1_ratio, list(alphas), None
        )
    return coefs, bool(np.all(gaps <= penalty.tol))
