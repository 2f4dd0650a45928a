"""Classification tuning: regfit's reference grid search against LogisticRegressionCV and
GridSearchCV (issue 12, item 5; first measurement).

``make_classification(10000, 100, n_informative=20, random_state=0)``, standard scaling,
5 stratified folds, 20 values of ``C`` in ``logspace(-3, 2, 20)``, selection by log-loss,
search + refit, on an 80 % stratified training split; test log-loss on the other 20 %.

Measured *in process* (``service.ml.classification_search.grid_search_classifier``, the
cold-fit reference the fast search must equal), not yet end to end through HTTP like
``benchmarks/tuning.py``: the job API does not serve classification yet. Prints each
tool's seconds, the ratio to regfit, the chosen C and the test log-loss.

Usage: ``.venv/bin/python benchmarks/classification.py [--penalty l2|l1|elasticnet|all]``
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from service.ml.classification import resolve_classifier
from service.ml.classification_search import grid_search_classifier
from service.ml.preprocessing import DesignTransformer, select_features
from service.ml.spec import PenaltySpec, PreprocessingSpec

GRID = np.logspace(-3, 2, 20).tolist()
SETTINGS: dict[str, dict[str, Any]] = {
    "l2": {"l1_ratio": 0.0, "solver": "lbfgs"},
    "l1": {"l1_ratio": 1.0, "solver": "saga"},
    "elasticnet": {"l1_ratio": 0.5, "solver": "saga"},
}


def _regfit(X: np.ndarray, y: np.ndarray, train: np.ndarray, kind: str) -> tuple[float, Any]:
    columns: dict[str, np.ndarray] = {f"x{j}": X[:, j] for j in range(X.shape[1])}
    columns["y"] = y
    prep = PreprocessingSpec()
    layout = select_features(columns, target="y", features=None, prep=prep)
    spec = {"type": kind, **({"l1_ratio": 0.5} if kind == "elasticnet" else {})}
    base = resolve_classifier(PenaltySpec.model_validate(spec), len(train))
    started = time.perf_counter()
    search = grid_search_classifier(
        columns, layout, prep, y, train, [{"C": c} for c in GRID], base, folds=5
    )
    design = DesignTransformer(layout, prep)
    X_train = design.fit_transform(columns, train)
    model = search.penalty.estimator().fit(X_train, y[train])
    seconds = time.perf_counter() - started
    return seconds, (search.penalty.C, model, design)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--penalty", default="l2", choices=[*SETTINGS, "all"])
    args = parser.parse_args()
    X, y = make_classification(10_000, 100, n_informative=20, random_state=0)
    rows = np.arange(len(y))
    train, test = train_test_split(rows, test_size=0.2, random_state=0, stratify=y)
    print(f"load average at start: {os.getloadavg()}")
    kinds = list(SETTINGS) if args.penalty == "all" else [args.penalty]
    for kind in kinds:
        setting = SETTINGS[kind]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours, (c_ours, model, design) = _regfit(X, y, train, kind)
            columns = {f"x{j}": X[:, j] for j in range(X.shape[1])}
            test_ours = log_loss(y[test], model.predict_proba(design.transform(columns, test)))
            started = time.perf_counter()
            grid = GridSearchCV(
                make_pipeline(StandardScaler(), LogisticRegression(**setting)),
                {"logisticregression__C": GRID},
                cv=StratifiedKFold(5),
                scoring="neg_log_loss",
            ).fit(X[train], y[train])
            grid_seconds = time.perf_counter() - started
            started = time.perf_counter()
            lrcv = make_pipeline(
                StandardScaler(),
                LogisticRegressionCV(
                    Cs=GRID,
                    cv=StratifiedKFold(5),
                    scoring="neg_log_loss",
                    l1_ratios=(setting["l1_ratio"],),
                    solver=setting["solver"],
                ),
            ).fit(X[train], y[train])
            lrcv_seconds = time.perf_counter() - started
        c_grid = grid.best_params_["logisticregression__C"]
        c_lrcv = float(np.ravel(lrcv[-1].C_)[0])
        print(
            f"{kind:10s} regfit {ours:7.2f} s  C={c_ours:.4g}  test log-loss {test_ours:.6f}\n"
            f"{'':10s} GridSearchCV {grid_seconds:7.2f} s (regfit ×{grid_seconds / ours:.2f})"
            f"  C={c_grid:.4g}  test log-loss "
            f"{log_loss(y[test], grid.predict_proba(X[test])):.6f}\n"
            f"{'':10s} LogisticRegressionCV {lrcv_seconds:7.2f} s (regfit "
            f"×{lrcv_seconds / ours:.2f})  C={c_lrcv:.4g}  test log-loss "
            f"{log_loss(y[test], lrcv.predict_proba(X[test])):.6f}",
            flush=True,
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
