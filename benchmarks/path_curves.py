"""What the path's data for plots costs a penalty comparison: the compared penalties' curves.

A comparison job (``penalty`` searched: l1, l2, elasticnet(l1_ratio=0.5) × 30 alphas × 5
folds, scoring r2) now solves, after the refit, each compared penalty's path on the
training split besides the model's own (``path.compared``). For each size, in this process
on arrays already in memory, interleaved, median of ``--repeat``:

- ``fit_job s``: :func:`service.ml.fitting.fit_job` of the comparison (search, refit,
  paths, what the worker computes);
- ``paths s``: :func:`service.ml.fitted.regularization_path` on the search's outcome, with
  the compared curves, and ``(own only s)`` with the comparison dropped (what it cost
  before): their difference is the added work;
- ``GSCV 2-core s``: the strongest in-process peer for the same question,
  ``GridSearchCV(Pipeline(StandardScaler(), est), [{est: [Lasso()], …}, …], cv=KFold(5),
  n_jobs=2)`` on the same training rows (refit included), once per size;
- ratios: added / fit_job, and GSCV / fit_job.

    .venv/bin/python benchmarks/path_curves.py                       # 2000x50,20000x200
    .venv/bin/python benchmarks/path_curves.py --sizes 5000x100 --repeat 3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import numpy as np
from harness import fmt_table
from sklearn.datasets import make_regression
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from service.ml import fitted
from service.ml.fitting import fit_job
from service.ml.spec import JobSpec

ALPHAS = [float(a) for a in np.logspace(-3, 1, 30)]
KINDS = ["l1", "l2", "elasticnet"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000x50,20000x200", help="ROWSxCOLS,...")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"# load average {os.getloadavg()} at the start; {os.cpu_count()} cores")
    rows = []
    for size in args.sizes.split(","):
        n, p = (int(v) for v in size.lower().split("x"))
        X, y = make_regression(
            n_samples=n, n_features=p, n_informative=max(1, p // 5), noise=20.0, random_state=0
        )
        columns = {f"x{j}": X[:, j] for j in range(p)} | {"y": y}
        spec = JobSpec.model_validate(
            {
                "dataset_id": "d",
                "target": "y",
                "penalty": {"type": "l1"},
                "tuning": {"space": {"alpha": ALPHAS, "penalty": KINDS}, "cv": {"folds": 5}},
            }
        )
        jobs, with_curves, own_only = [], [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = fit_job(columns, spec, training_sha256="x")
            jobs.append(time.perf_counter() - started)
            tuned = result.search
            assert tuned is not None and len(result.path.compared) == len(KINDS)
            train, _ = train_test_split(np.arange(n), test_size=0.2, shuffle=True, random_state=0)
            Xs = StandardScaler().fit_transform(X[train])
            started = time.perf_counter()
            fitted.regularization_path(result.penalty, Xs, y[train], tuned)
            with_curves.append(time.perf_counter() - started)
            alone = dataclasses.replace(tuned, comparison=None)
            started = time.perf_counter()
            fitted.regularization_path(result.penalty, Xs, y[train], alone)
            own_only.append(time.perf_counter() - started)
        train, _ = train_test_split(np.arange(n), test_size=0.2, shuffle=True, random_state=0)
        grid = [
            {"est": [Lasso()], "est__alpha": ALPHAS},
            {"est": [Ridge()], "est__alpha": ALPHAS},
            {"est": [ElasticNet()], "est__alpha": ALPHAS},
        ]
        pipeline = Pipeline([("scale", StandardScaler()), ("est", Lasso())])
        started = time.perf_counter()
        GridSearchCV(pipeline, grid, cv=KFold(5), scoring="r2", n_jobs=2).fit(X[train], y[train])
        peer = time.perf_counter() - started
        job = statistics.median(jobs)
        paths, own = statistics.median(with_curves), statistics.median(own_only)
        rows.append(
            [
                f"{n}×{p}",
                f"{job:.3f}",
                f"{paths:.4f}",
                f"{own:.4f}",
                f"{paths - own:.4f}",
                f"{100 * (paths - own) / job:.1f} %",
                f"{peer:.2f}",
                f"{peer / job:.1f}×",
            ]
        )
    print(
        fmt_table(
            [
                "rows×cols",
                "fit_job s",
                "paths s",
                "(own only s)",
                "added s",
                "added / fit_job",
                "GSCV 2-core s",
                "GSCV / fit_job",
            ],
            rows,
        )
    )
    print(f"# load average {os.getloadavg()} at the end")


if __name__ == "__main__":
    main()
