"""Tuning through the service against GridSearchCV and the strong peers on the same cores.

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

Then, against the strong peers (issue 15), on the same training rows, the same 5 KFold
blocks, the same 30 alphas, search + refit + test R², at the same niceness:

* scikit-learn's own path CV, interleaved with the service's jobs (one after each of the
  first jobs while it has taken under 10 s in all, at most 3 runs; median):
  ``make_pipeline(StandardScaler(), LassoCV(alphas=grid, cv=KFold(5), n_jobs=2))``, the
  same with ``ElasticNetCV(l1_ratio=0.5)``, and ``RidgeCV(alphas=grid, cv=KFold(5))``
  (which has no ``n_jobs``). These estimators cannot scale inside each fold: the scaler
  before them is fitted once on the whole training split, so each fold's rows are scaled
  with statistics that include its validation rows, where the service (like
  ``GridSearchCV(make_pipeline(StandardScaler(), …))``) scales each fold on its own
  training rows. Their time is thus a lower bound for the same search with per-fold
  scaling (that adds one standardization per fold), and their scores can differ from the
  service's in the last digits; the best alpha and the test R² are compared;
* python-glmnet, celer and glum, when an interpreter that has them is given with
  ``--peers-python`` (default ``/work/peers-venv/bin/python``): ``benchmarks/peers_cv.py``
  runs in a subprocess on the same arrays (a temporary ``.npz``), with per-fold scaling, and
  times only its search + refit (see there), once with each of ``--peers-threads`` OpenMP /
  BLAS threads (default 1 and 2; each tool's faster run is kept), each run bounded by
  ``--peers-timeout``;
* the floor: ``Xs.T @ Xs`` of the standardized training split, with numpy on the same cores
  (the best of 5 with 1 and with 2 BLAS threads): no search can beat one pass over the data;
* the first job on the new dataset, less the median job, next to
  ``pyarrow.parquet.read_table(path, columns).column(j).to_numpy()`` of the same columns
  from the dataset's file in the server's ``REGFIT_DATA_DIR`` (best of 3; target: at most
  2× that + 50 ms).

Run from the repository root::

    .venv/bin/python benchmarks/tuning.py                     # 1000×20 … 20000×500
    .venv/bin/python benchmarks/tuning.py --quick             # 1000×20 … 10000×300
    .venv/bin/python benchmarks/tuning.py --sizes 10000x300,50000x500
    .venv/bin/python benchmarks/tuning.py --sizes 10000x300 --kinds l1 --no-gridsearch

It prints; it never asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, ElasticNetCV, Lasso, LassoCV, Ridge, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

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
# scikit-learn's *CV runs after each service job while its runs so far took less than this
# (and at most CV_RUNS times): Ridge's takes tens of seconds at 50000×500.
CV_BUDGET_SECONDS = 10.0
CV_RUNS = 3
DEFAULT_PEERS_PYTHON = "/work/peers-venv/bin/python"
PEERS_SCRIPT = Path(__file__).resolve().parent / "peers_cv.py"
PEER_TOOLS = ("python-glmnet", "celer", "glum")  # peers_cv.py's order


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


def sklearn_cv(
    X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, kind: str
) -> tuple[float, float, float]:
    """scikit-learn's path CV for ``kind`` (search + refit + test R²): seconds, alpha, R²."""
    alphas = GRIDS[kind][1]
    estimator: Any
    if kind == "l1":
        estimator = LassoCV(alphas=alphas, cv=KFold(FOLDS), n_jobs=2)
    elif kind == "elasticnet":
        estimator = ElasticNetCV(l1_ratio=0.5, alphas=alphas, cv=KFold(FOLDS), n_jobs=2)
    else:
        estimator = RidgeCV(alphas=alphas, cv=KFold(FOLDS))
    pipeline = make_pipeline(StandardScaler(), estimator)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(X, y)
    r2 = float(pipeline.score(X_test, y_test))
    return time.perf_counter() - started, float(estimator.alpha_), r2


def best_of(function: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def gram_floor(X: np.ndarray) -> float:
    """Seconds of ``Xs.T @ Xs`` for the standardized ``X``, numpy on this process's cores.

    The best of 5 with each BLAS thread count up to the cores: on a loaded VM one thread
    can beat two that spin.
    """
    scaled = StandardScaler().fit_transform(X)
    times = []
    for threads in range(1, (os.cpu_count() or 1) + 1):
        with threadpool_limits(limits=threads, user_api="blas"):
            times.append(best_of(lambda: scaled.T @ scaled, 5))
    return min(times)


def parquet_read_seconds(path: Path, names: list[str]) -> float:
    """``pyarrow.parquet.read_table`` of ``names`` and each column's ``to_numpy``, best of 3."""

    def read() -> list[np.ndarray]:
        table = pq.read_table(path, columns=names)
        return [table.column(j).to_numpy() for j in range(table.num_columns)]

    return best_of(read, 3)


def dataset_file(data_dir: Path, dataset_id: str) -> Path:
    found = sorted(data_dir.rglob(f"{dataset_id}*.parquet"))
    if not found:
        raise RuntimeError(f"no Parquet file of {dataset_id} under {data_dir}")
    return found[0]


def peers_available(python: str | None) -> str | None:
    """Why the external peers are skipped, or None when ``python`` can run them."""
    if not python:
        return "no --peers-python"
    if not Path(python).exists():
        return (
            f"no interpreter at {python} (python -m venv /work/peers-venv && "
            "/work/peers-venv/bin/pip install numpy celer glum glmnet)"
        )
    return None


def run_peers(
    python: str, data: Path, kind: str, threads: list[int], timeout: float
) -> list[dict[str, Any]]:
    """python-glmnet, celer and glum on the arrays in ``data`` (one dict per tool).

    Run once per count in ``threads`` (OpenMP and BLAS threads); each tool's fastest run is
    kept: on a loaded 2-core VM glum's OpenMP threads spin (a 2000×50 Lasso path: 3.8 s with
    2 threads, 0.24 s with 1), and the peers should not lose to a setting. A run that takes
    longer than ``timeout`` seconds is stopped; the tools it finished are kept.
    """
    best: dict[str, dict[str, Any]] = {}
    for count in threads:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(count),
            "OPENBLAS_NUM_THREADS": str(count),
            "MKL_NUM_THREADS": str(count),
        }
        command = [python, str(PEERS_SCRIPT), str(data), kind]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=timeout, env=env
            )
            stdout, note = done.stdout, f"exit {done.returncode}: {done.stderr[-200:]}"
        except subprocess.TimeoutExpired as exc:  # the tools that finished are kept
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            note = f"timed out after {timeout:.0f} s"
        lines = [json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")]
        reported = {line["tool"] for line in lines}
        lines += [{"tool": t, "error": note} for t in PEER_TOOLS if t not in reported]
        for line in lines:
            line["threads"] = count
            kept = best.get(line["tool"])
            # a run that worked beats one that failed; of two that worked, the faster
            rank = ("error" in line, line.get("seconds", 0.0))
            if kept is None or rank < ("error" in kept, kept.get("seconds", 0.0)):
                best[line["tool"]] = line
    return list(best.values())


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    return "?"


def same_alpha(ours: float, theirs: float) -> str:
    return "yes" if np.isclose(ours, theirs, rtol=1e-9) else f"no ({ours:.4g}/{theirs:.4g})"


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    if not rows:
        return
    rows = [[*r, *[""] * (len(headers) - len(r))] if len(r) < len(headers) else r for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print()
    for line in textwrap.wrap(title, 98):
        print(f"# {line}")
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        rows, _, cols = item.strip().lower().replace("×", "x").partition("x")
        sizes.append((int(rows), int(cols)))
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 10000×300 only")
    parser.add_argument("--sizes", help="comma-separated ROWSxCOLS, e.g. 10000x300,50000x500")
    parser.add_argument(
        "--kinds", default="l1,elasticnet,l2", help="comma-separated: l1, elasticnet, l2"
    )
    parser.add_argument(
        "--peers-python",
        default=DEFAULT_PEERS_PYTHON,
        help="an interpreter with python-glmnet / celer / glum (not the project's venv)",
    )
    parser.add_argument(
        "--peers-threads",
        default="1,2",
        help="OpenMP/BLAS thread counts to run the external peers with (each tool's best kept)",
    )
    parser.add_argument(
        "--peers-timeout",
        type=float,
        default=600.0,
        help="seconds one peers_cv.py run (all three tools, one penalty) may take",
    )
    parser.add_argument(
        "--no-gridsearch", action="store_true", help="skip the GridSearchCV columns (slow)"
    )
    args = parser.parse_args()
    # a stopped run still stops its server (and the server its workers): SIGTERM unwinds
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = parse_sizes(args.sizes) if args.sizes else QUICK_SIZES if args.quick else FULL_SIZES
    kinds = args.kinds.split(",")
    peers_skipped = peers_available(args.peers_python)
    peer_threads = [int(t) for t in args.peers_threads.split(",")]
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.platform()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; load average "
        f"{load_average()} at the start"
    )
    print(
        f"# {N_ALPHAS} alphas × {FOLDS} folds, scoring r2; GridSearchCV with n_jobs=2 and with "
        f"n_jobs unset (1 core, the seed's form); every peer at the workers' niceness "
        f"{WORKER_NICENESS}"
    )
    header = (
        f"{'penalty':<11} {'rows×cols':>10} {'service s':>10} {'(search s)':>11} "
        f"{'GSCV 2-core s':>14} {'speed-up':>9} {'(search)':>9} "
        f"{'GSCV 1-core s':>14} {'speed-up':>9} "
        f"{'max |score gap|':>16} {'same best alpha':>16}"
    )
    if not args.no_gridsearch:
        print(header)
        print("-" * len(header))
    strong: list[list[str]] = []
    external: list[list[str]] = []
    firsts: list[list[str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="regfit-bench-") as tmp,
        regfit_server(Path(tmp)) as url,
        httpx.Client(base_url=url, timeout=600) as client,
    ):
        # Every peer gets the CPU priority of the service's job workers (the server keeps
        # its own: it was started before; the peers' subprocess inherits this one).
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICENESS)
        warm_up = client.post(
            "/v1/datasets/synthetic", json={"n_samples": 200, "n_features": 5, "random_state": 0}
        )
        warm_up.raise_for_status()
        service_search(client, warm_up.json()["id"], "l1", [0.1, 1.0])  # starts the workers
        for n, p in sizes:
            size = f"{n}×{p}"
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
            train, test = train_test_split(
                np.arange(n), test_size=0.2, shuffle=True, random_state=0
            )
            X_train, y_train, X_test, y_test = X[train], y[train], X[test], y[test]
            # GridSearchCV is timed on arrays in memory: the job that reads the new dataset's
            # file into the worker is timed apart, not in the medians.
            first, _ = service_search(client, dataset_id, kinds[0], GRIDS[kinds[0]][1])
            path = dataset_file(Path(tmp) / "data", dataset_id)
            read_s = parquet_read_seconds(path, [*(f"x{j}" for j in range(p)), "y"])
            floor_s = gram_floor(X_train)
            data = Path(tmp) / f"arrays-{n}x{p}.npz"
            fold = np.empty(len(train), dtype=np.int64)
            for k, (_, block) in enumerate(KFold(FOLDS).split(train)):
                fold[block] = k
            np.savez(
                data,
                X_train=X_train,
                y_train=y_train,
                X_test=X_test,
                y_test=y_test,
                fold=fold,
                **{f"alphas_{kind}": GRIDS[kind][1] for kind in GRIDS},
            )
            for kind in kinds:
                estimator, alphas = GRIDS[kind]
                runs, cv_runs = [], []
                for _ in range(REPEAT):
                    runs.append(service_search(client, dataset_id, kind, alphas))
                    spent = sum(r[0] for r in cv_runs)
                    if len(cv_runs) < CV_RUNS and spent < CV_BUDGET_SECONDS:
                        cv_runs.append(sklearn_cv(X_train, y_train, X_test, y_test, kind))
                ours_s = float(np.median([seconds for seconds, _ in runs]))
                model = runs[0][1]
                search_s = float(np.median([m["tuning"]["seconds"] for _, m in runs]))
                ours_alpha = float(model["tuning"]["best_params"]["alpha"])
                ours_r2 = float(model["metrics"]["test"]["r2"])
                if kind == kinds[0]:
                    extra = first - ours_s
                    budget = 2 * read_s + 0.05
                    firsts.append(
                        [
                            size,
                            f"{first:.3f}",
                            f"{extra:.3f}",
                            f"{read_s:.3f}",
                            f"{budget:.3f}",
                            "yes" if extra <= budget else f"NO ({extra / budget:.1f}×)",
                        ]
                    )
                cv_s = float(np.median([r[0] for r in cv_runs]))
                cv_alpha, cv_r2 = cv_runs[0][1], cv_runs[0][2]
                strong.append(
                    [
                        kind,
                        size,
                        f"{ours_s:.3f}",
                        f"({search_s:.3f})",
                        f"{cv_s:.3f} ({len(cv_runs)})",
                        f"{cv_s / ours_s:.1f}×",
                        f"{floor_s:.4f}",
                        f"{ours_s / floor_s:.0f}×",
                        f"{search_s / floor_s:.0f}×",
                        same_alpha(ours_alpha, cv_alpha),
                        f"{abs(ours_r2 - cv_r2):.1e}",
                    ]
                )
                if peers_skipped is None:
                    for line in run_peers(
                        args.peers_python, data, kind, peer_threads, args.peers_timeout
                    ):
                        if "error" in line:
                            error = line["error"][:60]
                            external.append([line["tool"], "", kind, size, error])
                            continue
                        external.append(
                            [
                                f"{line['tool']} {line.get('version') or ''}".strip(),
                                str(line["threads"]),
                                kind,
                                size,
                                f"{line['seconds']:.3f}",
                                f"{line['seconds'] / ours_s:.1f}×",
                                same_alpha(ours_alpha, line["best_alpha"]),
                                f"{abs(ours_r2 - line['test_r2']):.1e}",
                            ]
                        )
                # as it comes (the tables below repeat it): a long run can be read part way
                print(f"# done: {' | '.join(strong[-1])}", flush=True)
                for row in external[len(external) - 3 * (peers_skipped is None) :]:
                    print(f"# done: {' | '.join(row)}", flush=True)
                if args.no_gridsearch:
                    continue
                two_s, search = sklearn_search(X_train, y_train, estimator, alphas, 2)
                one_s, _ = sklearn_search(X_train, y_train, estimator, alphas, None)
                means = np.array([c["mean_score"] for c in model["tuning"]["candidates"]])
                gap = float(np.max(np.abs(means - search.cv_results_["mean_test_score"])))
                theirs_alpha = next(iter(search.best_params_.values()))
                same = (
                    "yes"
                    if ours_alpha == theirs_alpha
                    else f"no ({ours_alpha:.4g}/{theirs_alpha:.4g})"
                )
                print(
                    f"{kind:<11} {size:>10} {ours_s:>10.2f} {search_s:>11.2f} "
                    f"{two_s:>14.2f} {two_s / ours_s:>8.1f}× {two_s / search_s:>8.1f}× "
                    f"{one_s:>14.2f} {one_s / ours_s:>8.1f}× "
                    f"{gap:>16.1e} {same:>16}",
                    flush=True,
                )
    print_table(
        "against scikit-learn's path CV (Pipeline(StandardScaler(), LassoCV / "
        "ElasticNetCV(l1_ratio=0.5) (alphas=grid, cv=KFold(5), n_jobs=2) / RidgeCV(alphas=grid, "
        "cv=KFold(5))), search + refit + test R²; the scaler is fitted once on the training "
        "split, before the CV: these *CV estimators cannot scale per fold, so their time is a "
        "lower bound for the service's per-fold-scaled search, median of (n) runs interleaved "
        "with the service's jobs). floor = Xs.T @ Xs of the standardized training split, "
        "numpy, 2 cores, best of 5",
        [
            "penalty",
            "rows×cols",
            "service s",
            "(search s)",
            "sklearn *CV s (n)",
            "*CV / service",
            "floor s",
            "job / floor",
            "search / floor",
            "same best alpha",
            "|test R² diff|",
        ],
        strong,
    )
    if peers_skipped is None:
        print_table(
            f"external peers (benchmarks/peers_cv.py under {args.peers_python}: per-fold "
            "scaling, path per fold, refit, test R²; one run each; tool / service = its "
            "seconds over the service's median job)",
            [
                "tool",
                "threads",
                "penalty",
                "rows×cols",
                "seconds",
                "tool / service",
                "same alpha",
                "|ΔR²|",
            ],
            external,
        )
    else:
        print(f"\n# external peers (python-glmnet, celer, glum): skipped — {peers_skipped}")
    print_table(
        "the first job on each new dataset (reads its file; not in the medians). extra = "
        "first − the median job; read = pyarrow.parquet.read_table(file, columns) + "
        "to_numpy of each column, best of 3; target extra ≤ 2 × read + 50 ms",
        ["rows×cols", "first job s", "extra s", "read s", "2×read+0.05 s", "met"],
        firsts,
    )
    print(f"# load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
