"""Scaling curves: fit and tuning time against rows and against features.

Times :func:`service.ml.fitting.fit_job` — what a worker computes once the dataset is
loaded — on ``make_regression`` data (10 informative features, noise 5), for:

- ``fit l2``: Ridge(alpha=1), standard scaling, 20 % test split;
- ``fit l1``: Lasso(alpha=0.1), the same preprocessing;
- ``tune l1``: a grid over 6 alphas (0.001 … 100) with 5-fold CV, L1, then the refit.

Two sweeps: rows (features fixed, ``--base-features``) and features (rows fixed,
``--base-rows``). Prints one table and draws ``benchmarks/results/scaling.png`` (needs
matplotlib: ``pip install -e '.[bench]'``).

    .venv/bin/python benchmarks/scaling.py              # rows 1k…1M ×20, features 10…2000 ×10k
    .venv/bin/python benchmarks/scaling.py --quick      # rows 1k…100k, features 10…500
    .venv/bin/python benchmarks/scaling.py --rows 1000,1000000 --features 10,2000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from harness import RESULTS, fmt_table
from sklearn.datasets import make_regression
from threadpoolctl import threadpool_limits

from service.ml.fitting import fit_job
from service.ml.spec import JobSpec

ALPHAS = [0.001, 0.01, 0.1, 1, 10, 100]
SPECS: dict[str, dict[str, Any]] = {
    "fit l2": {"penalty": {"type": "l2", "alpha": 1.0}},
    "fit l1": {"penalty": {"type": "l1", "alpha": 0.1}},
    "tune l1": {
        "penalty": {"type": "l1"},
        "tuning": {"strategy": "grid", "space": {"alpha": ALPHAS}, "cv": {"folds": 5}},
    },
}


def ints(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",")]


def time_fits(n_rows: int, n_features: int) -> dict[str, float]:
    X, y = make_regression(
        n_samples=n_rows,
        n_features=n_features,
        n_informative=min(10, n_features),
        noise=5.0,
        random_state=0,
    )
    columns = {f"x{j}": np.ascontiguousarray(X[:, j]) for j in range(n_features)} | {"y": y}
    del X
    seconds = {}
    for name, body in SPECS.items():
        spec = JobSpec.model_validate({"dataset_id": "scaling", "target": "y", **body})
        started = time.perf_counter()
        fit_job(columns, spec, training_sha256="0" * 64)
        seconds[name] = time.perf_counter() - started
    return seconds


def plot(sweeps: dict[str, list[tuple[int, dict[str, float]]]], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install -e '.[bench]')"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (label, points) in zip(axes, sweeps.items(), strict=True):
        xs = [x for x, _ in points]
        for name in SPECS:
            ax.plot(xs, [s[name] for _, s in points], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("seconds (fit_job, in-process)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_title("time against rows")
    axes[1].set_title("time against features")
    fig.suptitle("regfit fit and tuning time (grid of 6 alphas × 5 folds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"plot: {path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,10000,100000,1000000")
    parser.add_argument("--features", default="10,100,500,2000")
    parser.add_argument("--base-rows", type=int, default=10_000, help="rows of the feature sweep")
    parser.add_argument("--base-features", type=int, default=20, help="features of the row sweep")
    parser.add_argument("--quick", action="store_true", help="rows ≤ 100k, features ≤ 500")
    parser.add_argument("--output", default=str(RESULTS / "scaling.png"))
    parser.add_argument(
        "--blas-threads", type=int, default=1, help="as a worker has (1); 0 = library default"
    )
    args = parser.parse_args()
    if args.blas_threads:
        threadpool_limits(args.blas_threads)
    if args.quick:
        args.rows, args.features = "1000,10000,100000", "10,100,500"
    sweeps: dict[str, list[tuple[int, dict[str, float]]]] = {"rows": [], "features": []}
    table = []
    for n_rows in ints(args.rows):
        seconds = time_fits(n_rows, args.base_features)
        sweeps["rows"].append((n_rows, seconds))
        table.append([f"{n_rows:,}", args.base_features, *(f"{seconds[n]:.3f}" for n in SPECS)])
        print(f"  {n_rows:,}×{args.base_features}: done", flush=True)
    for n_features in ints(args.features):
        seconds = time_fits(args.base_rows, n_features)
        sweeps["features"].append((n_features, seconds))
        table.append([f"{args.base_rows:,}", n_features, *(f"{seconds[n]:.3f}" for n in SPECS)])
        print(f"  {args.base_rows:,}×{n_features}: done", flush=True)
    print()
    blas = args.blas_threads or "default"
    print(f"fit_job seconds, in-process, one run each, BLAS threads: {blas}")
    print("tune = grid of 6 alphas × 5 folds, then the refit")
    print(fmt_table(["rows", "features", *(f"{n} s" for n in SPECS)], table))
    print(plot(sweeps, Path(args.output)))


if __name__ == "__main__":
    main()
