"""Tuning through the service against GridSearchCV on the same cores.

Starts ``python -m service serve`` on a free port (temporary SQLite file and data
directory), creates ``make_regression`` datasets through ``POST /v1/datasets/synthetic``,
and for Lasso, ElasticNet and Ridge grids of 30 alphas × 5 folds measures

* the service: ``POST /v1/jobs`` → the job reads ``succeeded`` (polling every 10 ms), which
  includes queueing, reading the job, the search, the refit, the test metrics, the path and
  storing the model (median of five jobs). One job before them reads the new dataset's file
  into the worker's cache (REGFIT_DATASET_CACHE_BYTES), as GridSearchCV gets its arrays in
  memory; it is timed apart and printed below the table;
* ``GridSearchCV(make_pipeline(StandardScaler(), estimator), {alpha: …}, cv=KFold(5))``
  fitted on the same training rows (its refit included), at the job workers' CPU
  niceness, twice: with ``n_jobs=2`` (both cores, as the service uses them) and as the
  seed writes it (``n_jobs`` unset: one core),

after one unmeasured warm-up job, then prints the times (in parentheses: the search alone
inside the job, i.e. preparing the folds and every candidate × fold fit, the model's
``tuning.seconds``), the speed-ups, the largest |mean_score − mean_test_score| over the
grid and whether the best alphas agree.
Run from the repository root::

    .venv/bin/python benchmarks/tuning.py                     # 1000×20 … 20000×500
    .venv/bin/python benchmarks/tuning.py --quick             # 1000×20 … 10000×300
    .venv/bin/python benchmarks/tuning.py --sizes 10000x300 --kinds l1

It prints; it never asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from service.worker.local import WORKER_NICENESS

REPO = Path(__file__).resolve().parent.parent
QUICK_SIZES = [(1000, 20), (5000, 100), (10000, 300)]
FULL_SIZES = [*QUICK_SIZES, (20000, 500)]
N_ALPHAS = 30
FOLDS = 5
GRIDS: dict[str, tuple[Any, list[float]]] = {
    "l1": (Lasso(), [float(a) for a in np.logspace(-3, 1, N_ALPHAS)]),
    "elasticnet": (ElasticNet(l1_ratio=0.5), [float(a) for a in np.logspace(-3, 1, N_ALPHAS)]),
    "l2": (Ridge(), [float(a) for a in np.logspace(-2, 4, N_ALPHAS)]),
}
SPLIT = {"test_size": 0.2, "shuffle": True, "random_state": 0}
# The service's time is the median of this many jobs (a tenth of a second each at 10000×300,
# so one scheduling hiccup on a shared machine moves a single job by half); GridSearchCV
# runs once (seconds, so its relative noise is smaller).
REPEAT = 5
POLL_SECONDS = 0.01


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def regfit_server(workdir: Path) -> Iterator[str]:
    """``python -m service serve`` on a free port; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "REGFIT_DATABASE_URL": f"sqlite:///{workdir / 'regfit.db'}",
        "REGFIT_DATA_DIR": str(workdir / "data"),
        "REGFIT_LOG_LEVEL": "warning",
        "REGFIT_ACCESS_LOG": "false",
    }
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {(workdir / 'server.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready in 120 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def service_search(
    client: httpx.Client, dataset_id: str, kind: str, alphas: list[float]
) -> tuple[float, dict[str, Any]]:
    """Submit a grid search and wait for it; returns (seconds, model)."""
    body = {
        "dataset_id": dataset_id,
        "target": "y",
        "penalty": {"type": kind},
        "split": SPLIT,
        "tuning": {"strategy": "grid", "space": {"alpha": alphas}, "cv": {"folds": FOLDS}},
    }
    started = time.perf_counter()
    response = client.post("/v1/jobs", json=body)
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
    return seconds, client.get(f"/v1/models/{job['model_id']}").json()


def sklearn_search(
    X: np.ndarray, y: np.ndarray, estimator: Any, alphas: list[float], n_jobs: int | None
) -> tuple[float, GridSearchCV]:
    name = type(estimator).__name__.lower()
    search = GridSearchCV(
        make_pipeline(StandardScaler(), estimator),
        {f"{name}__alpha": alphas},
        cv=KFold(FOLDS),
        scoring="r2",
        n_jobs=n_jobs,
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    return time.perf_counter() - started, search


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        rows, _, cols = item.strip().lower().replace("×", "x").partition("x")
        sizes.append((int(rows), int(cols)))
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 10000×300 only")
    parser.add_argument("--sizes", help="comma-separated ROWSxCOLS, e.g. 10000x300")
    parser.add_argument(
        "--kinds", default="l1,elasticnet,l2", help="comma-separated: l1, elasticnet, l2"
    )
    args = parser.parse_args()
    sizes = parse_sizes(args.sizes) if args.sizes else QUICK_SIZES if args.quick else FULL_SIZES
    kinds = args.kinds.split(",")
    print(
        f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{N_ALPHAS} alphas × {FOLDS} folds, scoring r2; GridSearchCV with n_jobs=2 and with "
        f"n_jobs unset (1 core, the seed's form), at the workers' niceness {WORKER_NICENESS}"
    )
    header = (
        f"{'penalty':<11} {'rows×cols':>10} {'service s':>10} {'(search s)':>11} "
        f"{'GSCV 2-core s':>14} {'speed-up':>9} {'(search)':>9} "
        f"{'GSCV 1-core s':>14} {'speed-up':>9} "
        f"{'max |score gap|':>16} {'same best alpha':>16}"
    )
    print(header)
    print("-" * len(header))
    with (
        tempfile.TemporaryDirectory(prefix="regfit-bench-") as tmp,
        regfit_server(Path(tmp)) as url,
        httpx.Client(base_url=url, timeout=600) as client,
    ):
        # GridSearchCV gets the CPU priority of the service's job workers (the server keeps
        # its own: it was started before).
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICENESS)
        warm_up = client.post(
            "/v1/datasets/synthetic", json={"n_samples": 200, "n_features": 5, "random_state": 0}
        )
        warm_up.raise_for_status()
        service_search(client, warm_up.json()["id"], "l1", [0.1, 1.0])  # starts the workers
        first_jobs: list[str] = []
        for n, p in sizes:
            params = {
                "n_samples": n,
                "n_features": p,
                "n_informative": max(1, p // 5),
                "noise": 20.0,
                "random_state": 0,
            }
            response = client.post("/v1/datasets/synthetic", json=params)
            response.raise_for_status()
            dataset_id = response.json()["id"]
            X, y = make_regression(**params)
            train, _ = train_test_split(np.arange(n), test_size=0.2, shuffle=True, random_state=0)
            # GridSearchCV is timed on arrays in memory: the job that reads the new dataset's
            # file into the worker is timed apart, not in the medians.
            first, _ = service_search(client, dataset_id, kinds[0], GRIDS[kinds[0]][1])
            first_jobs.append(f"{n}×{p} {first:.2f} s")
            for kind in kinds:
                estimator, alphas = GRIDS[kind]
                runs = [service_search(client, dataset_id, kind, alphas) for _ in range(REPEAT)]
                ours_s = float(np.median([seconds for seconds, _ in runs]))
                model = runs[0][1]
                search_s = float(np.median([m["tuning"]["seconds"] for _, m in runs]))
                two_s, search = sklearn_search(X[train], y[train], estimator, alphas, 2)
                one_s, _ = sklearn_search(X[train], y[train], estimator, alphas, None)
                means = np.array([c["mean_score"] for c in model["tuning"]["candidates"]])
                gap = float(np.max(np.abs(means - search.cv_results_["mean_test_score"])))
                ours_alpha = model["tuning"]["best_params"]["alpha"]
                theirs_alpha = next(iter(search.best_params_.values()))
                same = (
                    "yes"
                    if ours_alpha == theirs_alpha
                    else f"no ({ours_alpha:.4g}/{theirs_alpha:.4g})"
                )
                print(
                    f"{kind:<11} {f'{n}×{p}':>10} {ours_s:>10.2f} {search_s:>11.2f} "
                    f"{two_s:>14.2f} {two_s / ours_s:>8.1f}× {two_s / search_s:>8.1f}× "
                    f"{one_s:>14.2f} {one_s / ours_s:>8.1f}× "
                    f"{gap:>16.1e} {same:>16}",
                    flush=True,
                )
    print(
        f"# the first job on each new dataset (reads its file; not in the medians): "
        f"{', '.join(first_jobs)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
