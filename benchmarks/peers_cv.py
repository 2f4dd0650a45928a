"""The same search with python-glmnet, celer and glum, run by ``tuning.py --peers-python``.

These tools must not go into the project's venv (native builds, pinned numpy ranges), so
``benchmarks/tuning.py`` runs this file with another interpreter, e.g. one made by::

    python -m venv /work/peers-venv && /work/peers-venv/bin/pip install celer glum glmnet

It reads the arrays the benchmark wrote (``X_train``, ``y_train``, ``X_test``, ``y_test``,
``fold`` — the KFold(5) block of each training row — and ``alphas``) from an ``.npz`` file and
does, for every tool that imports, what the service's job does: per fold, standard scaling
fitted on the fold's training rows, the regularization path over the alphas (warm-started,
largest alpha first, as each tool's own path routine does it), the validation R² of each
alpha; the best mean R² (ties: the first alpha in the grid's order, as GridSearchCV); the
refit on the whole training split scaled on it; the test R². Only that is timed, after one
small untimed fit per tool (imports, first-call set-up). One JSON line per tool on stdout.

Alpha conventions: the Lasso and ElasticNet objectives of celer and glum are
scikit-learn's (``1/(2n)·RSS + α·penalty``), so the alphas are passed as they are; their
Ridge is ``1/(2n)·RSS + λ/2·‖w‖²`` against scikit-learn's ``RSS + α·‖w‖²``, so λ = α/n for
the ``n`` rows that fit. glmnet standardizes y internally, which divides the ridge part of
its penalty by sd(y): its (λ, mixing) are converted (see :func:`glmnet_solver`; at a tight
tolerance all three match scikit-learn's coefficients to 1e-6). celer has no Ridge. Every
tool runs with its own tolerance parameter at 1e-4; the definitions differ: glmnet's is
relative to the null deviance and stops furthest from the optimum (~1e-3 relative in the
coefficients on a 2000×50 check), celer's and glum's land within ~1e-5.

    python benchmarks/peers_cv.py DATA.npz l1|elasticnet|l2
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np

TOL = 1e-4
L1_RATIO = {"l1": 1.0, "elasticnet": 0.5, "l2": 0.0}
# solve(X, y, alphas descending) → coefficients (features × alphas), intercepts (alphas)
Solver = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def standardize(X_fit: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """StandardScaler's arithmetic: fitted on ``X_fit``, applied to it and ``others``."""
    mean = X_fit.mean(axis=0)
    scale = X_fit.std(axis=0)
    scale[scale == 0.0] = 1.0
    return [(A - mean) / scale for A in (X_fit, *others)]


def r2_columns(y: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    residual = ((predictions - y[:, None]) ** 2).sum(axis=0)
    return 1.0 - residual / ((y - y.mean()) ** 2).sum()


def search(
    solve: Solver, data: Any, alphas: np.ndarray, per_row: bool
) -> tuple[float, float, float]:
    """(best alpha, test R², seconds) of the job's search + refit with ``solve``.

    ``per_row``: the tool's alpha is scikit-learn's divided by the rows that fit (Ridge).
    """
    X, y, folds = data["X_train"], data["y_train"], data["fold"]
    order = np.argsort(alphas)[::-1]  # paths run from the largest alpha down
    started = time.perf_counter()
    scores = np.empty((int(folds.max()) + 1, len(alphas)))
    for k in range(len(scores)):
        fit = folds != k
        X_fit, X_val = standardize(X[fit], X[~fit])
        tool_alphas = alphas[order] / (fit.sum() if per_row else 1.0)
        coefs, intercepts = solve(X_fit, y[fit], tool_alphas)
        scores[k, order] = r2_columns(y[~fit], X_val @ coefs + intercepts)
    best = int(np.argmax(scores.mean(axis=0)))  # the first of equal means, in grid order
    X_all, X_test = standardize(X, data["X_test"])
    alpha = alphas[best] / (len(y) if per_row else 1.0)
    coefs, intercepts = solve(X_all, y, np.array([alpha]))
    r2 = float(r2_columns(data["y_test"], X_test @ coefs + intercepts)[0])
    return float(alphas[best]), r2, time.perf_counter() - started


def glmnet_solver(l1_ratio: float) -> Solver:
    from glmnet import ElasticNet  # python-glmnet

    def solve(X: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # glmnet fits y / sd(y) at λ / sd(y) and scales back, which divides the ridge part of
        # the penalty by sd(y): (λ, mixing) below give scikit-learn's objective at (alpha,
        # l1_ratio) exactly.
        sd = float(y.std())
        scale = l1_ratio + sd * (1.0 - l1_ratio)
        model = ElasticNet(
            alpha=l1_ratio / scale,
            lambda_path=alphas * scale,
            standardize=False,
            n_splits=0,
            tol=TOL,
        ).fit(X, y)
        # glmnet may stop a path early; the missing alphas are then predicted with its last
        coefs = model.coef_path_
        if coefs.shape[1] < len(alphas):
            pad = len(alphas) - coefs.shape[1]
            coefs = np.hstack([coefs, np.repeat(coefs[:, -1:], pad, axis=1)])
        intercepts = np.resize(model.intercept_path_, len(alphas))
        return coefs, intercepts

    return solve


def celer_solver(l1_ratio: float) -> Solver:
    from celer import celer_path

    def solve(X: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # X is centred by the scaling, so the intercept is the mean of y: the path fits the
        # centred target (celer_path has no intercept).
        y_mean = float(y.mean())
        _, coefs, _ = celer_path(
            X, y - y_mean, pb="lasso", alphas=alphas, l1_ratio=l1_ratio, tol=TOL
        )
        return np.asarray(coefs), np.full(len(alphas), y_mean)

    return solve


def glum_solver(l1_ratio: float) -> Solver:
    from glum import GeneralizedLinearRegressor

    def solve(X: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = GeneralizedLinearRegressor(
            family="normal",
            alpha=list(alphas),
            alpha_search=True,
            l1_ratio=l1_ratio,
            fit_intercept=True,
            gradient_tol=TOL,
        )
        model.fit(X, y)
        if len(alphas) == 1:
            return np.asarray(model.coef_)[:, None], np.array([model.intercept_])
        return np.asarray(model.coef_path_).T, np.asarray(model.intercept_path_)

    return solve


DISTRIBUTIONS = {"python-glmnet": "glmnet", "celer": "celer", "glum": "glum"}
TOOLS: dict[str, Callable[[float], Solver]] = {
    "python-glmnet": glmnet_solver,
    "celer": celer_solver,
    "glum": glum_solver,
}


def main() -> int:
    path, kind = sys.argv[1], sys.argv[2]
    data = dict(np.load(path))
    alphas = np.asarray(data.get(f"alphas_{kind}", data.get("alphas")), dtype=np.float64)
    l1_ratio = L1_RATIO[kind]
    for name, make in TOOLS.items():
        line: dict[str, Any] = {"tool": name, "kind": kind}
        try:
            if name == "celer" and kind == "l2":
                raise NotImplementedError("celer has no Ridge")
            solve = make(l1_ratio)
            version = metadata.version(DISTRIBUTIONS[name])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rng = np.random.default_rng(0)
                warm = {
                    "X_train": rng.normal(size=(200, 5)),
                    "y_train": rng.normal(size=200),
                    "X_test": rng.normal(size=(50, 5)),
                    "y_test": rng.normal(size=50),
                    "fold": np.repeat(np.arange(5), 40),
                }
                search(solve, warm, alphas[:3], kind == "l2")
                alpha, r2, seconds = search(solve, data, alphas, kind == "l2")
            line.update(best_alpha=alpha, test_r2=r2, seconds=seconds, version=version)
        except ImportError as exc:
            line["error"] = f"not installed ({exc})"
        except Exception as exc:
            line["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
