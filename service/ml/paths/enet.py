"""Lasso and ElasticNet along a path of alphas: warm-started coordinate descent.

One :func:`sklearn.linear_model.enet_path` per ``l1_ratio`` walks the alphas from the
largest down, on the precomputed Gram matrix when there are more rows than columns. A warm
start stops as soon as the duality gap is below the tolerance, and on a dense path (alphas
close together) the previous solution already is below it for the next alpha after a sweep
or two: the path then lags behind, each solution sitting at the edge of the tolerance on the
side of the larger alpha. So the families run it at ``tol · 1e-4`` (scikit-learn's meaning
of ``tol``: the gap relative to ``‖y − ȳ‖²``; see ``benchmarks/README.md`` for the
measurements), and a fit is reported as not converged only if its gap exceeds the job's
``tol``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import config_context
from sklearn.linear_model import enet_path

from service.ml.paths.problem import PathSolution, PenalizedLeastSquares


def enet_path_chunk(
    problem: PenalizedLeastSquares,
    alphas: Sequence[float],
    l1_ratio: float,
    *,
    coef_init: np.ndarray | None,
    tol: float,
    max_iter: int,
    positive: bool,
) -> PathSolution:
    """Coordinate-descent solutions along ``alphas`` (descending), warm-started.

    Returns the coefficients (one column per alpha), each solution's duality gap relative
    to ``‖y − ȳ‖²`` — the quantity scikit-learn compares with ``tol`` — and the sweeps
    each alpha took (``n_iter``: every sweep costs the same, ``O(p²)`` on the Gram matrix,
    ``O(np)`` on the design).
    """
    # The arguments are built here, never by a user: scikit-learn's parameter validation
    # (about 1 ms a call, 3× the solve of a short path chunk) is skipped.
    with config_context(skip_parameter_validation=True):
        _, coefs, gaps, n_iters = enet_path(
            problem.X,
            problem.y,
            l1_ratio=l1_ratio,
            alphas=np.asarray(alphas, dtype=np.float64),
            precompute=problem.gram if problem.gram is not None else False,
            Xy=problem.xy,
            copy_X=False,
            coef_init=coef_init,
            check_input=False,
            tol=tol,
            max_iter=max_iter,
            positive=positive,
            return_n_iter=True,
        )
    relative_gaps = np.asarray(gaps) * problem.n_samples / max(problem.y_norm2, 1e-300)
    return PathSolution(coefs, relative_gaps, np.asarray(n_iters, dtype=np.float64))
