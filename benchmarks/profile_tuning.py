"""Where a tuning job's time goes: the worker's ``fit_job`` in this process, by section.

For each size and penalty (Lasso, ElasticNet(l1_ratio=0.5), Ridge; 30 alphas × 5 KFold
folds, standard scaling, 20 % test split — the job of ``benchmarks/tuning.py``), this
writes a ``make_regression`` dataset as the service stores it (``storage.ingest_table``),
reads it as a worker does (``runner._dataset_columns``: the first job reads the file, the
next ones find it kept), and runs :func:`service.ml.fitting.fit_job` on it as a worker
would: its BLAS thread limit (cores // workers), its glibc memory setting, no database.
Then it serializes the outcome as the model row stores it (orjson; the database write is
not included).

The breakdown comes from wrapping the service's functions in this process (nothing is
replaced: each wrapper calls the original and notes the time). Time is *exclusive* — a
section nested in another is subtracted from it — and summed over the threads that ran it,
so the search's sections (on its fold threads) can add up to more than the job's wall
time. Sections are told apart by the caller where one function serves several steps (a
path solve on a fold, for the model's own path on an idle search thread, or after the
refit). A wrapped name the service no longer has is listed as missing, not an error.

``--prep-at-nice-19`` puts the refit's preprocessing thread back at nice 19 (below the
search's threads, as before 2026-12-04); ``--prep-ab`` alternates jobs with it at nice 19
(A) and at the job's priority (B, the service's), and compares their numbers.

``--cprofile`` adds cProfile's view of one job, every thread merged (the fold threads
too), by own time; ``--py-spy DIR`` runs a few jobs per size and penalty in a subprocess
under py-spy (the ``bench`` extra installs it), native frames included (BLAS, the Cython
coordinate descent), keeps the collapsed stacks in DIR and prints the innermost Python frames.

    .venv/bin/python benchmarks/profile_tuning.py                      # 10000×300, 50000×500
    .venv/bin/python benchmarks/profile_tuning.py --sizes 10000x300 --kinds l1 --cprofile

It prints; it never asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import importlib
import io
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from sklearn.datasets import make_regression

from service.config import Settings
from service.datasets import storage
from service.ml import fitting
from service.ml.spec import JobSpec
from service.ml.threads import threadpool_controller
from service.models import documents
from service.worker import runner

SIZES = [(10000, 300), (50000, 500)]
KINDS = ["l1", "elasticnet", "l2"]
ALPHAS = {
    "l1": [float(a) for a in np.logspace(-3, 1, 30)],
    "elasticnet": [float(a) for a in np.logspace(-3, 1, 30)],
    "l2": [float(a) for a in np.logspace(-2, 4, 30)],
}
FOLDS = 5
REPEAT_UNDER_PY_SPY = 3
IDLE_FRAMES = {
    "_worker (concurrent/futures/thread.py)",
    "Condition.wait (threading.py)",
    "Event.wait (threading.py)",
}
# The worker's dataset cache (read once: Settings() reads the environment and .env).
CACHE_BYTES = Settings().dataset_cache_bytes
# What the model row's JSON columns are written with (service/db.py).
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

# (module, attribute path, section or {caller's qualified name: section, None: default}).
# The caller is the function whose code called the wrapped one (a key matches its qualified
# name or a dotted tail of it). "a|b" modules: the first that has the attribute. The layout
# is issue 11's: the search in service/ml/search/, its path solvers in service/ml/paths/
# (reached through the estimator families' ``solve_path``), the result in
# service/ml/fitted.py and the stored documents in service/models/documents.py.
_SOLVE_PATH: dict[str | None, str | None] = {
    "full_path_task.<locals>.run": "model's path: solve (on a search thread)",
    "coefficient_path": "model's path: solve (after the refit)",
    None: "search: path solves",
}
_PREP_WAIT: dict[str | None, str | None] = {
    "_search_and_prepare": "refit: waiting for the prep thread"
}
HOOKS: list[tuple[str, str, str | dict[str | None, str | None]]] = [
    ("service.worker.runner", "_dataset_columns", "read: the worker's dataset cache"),
    ("service.datasets.storage", "read_columns", "read: Parquet → numpy (first job only)"),
    ("service.ml.preprocessing", "ColumnTable.__init__", "read: keep the dataset (first job only)"),
    ("service.ml.fitting", "select_features", "checks: features, target, split"),
    ("service.ml.fitting", "target_values", "checks: features, target, split"),
    ("service.ml.fitting", "split_rows", "checks: features, target, split"),
    ("service.ml.preprocessing", "DesignTransformer.numeric_blocks", "gather: numeric blocks"),
    (
        "service.ml.preprocessing",
        "DesignTransformer.fit_transform",
        {
            "TrainingMoments.raw_design": "search: raw design Z",
            None: "preprocessing: fit_transform (refit design)",
        },
    ),
    ("service.ml.preprocessing", "DesignTransformer.transform", "preprocessing: transform (test)"),
    ("service.ml.fitting", "_prepare", "preprocessing: other"),
    # the refit waits for the preprocessing thread (nice 19) when the search ends first:
    # in the result, and in leaving the thread pool's block (which joins the thread)
    ("concurrent.futures", "Future.result", _PREP_WAIT),
    ("concurrent.futures._base", "Executor.__exit__", _PREP_WAIT),
    ("service.ml.paths.moments", "TrainingMoments.__init__", "search: fold moments (block Grams)"),
    (
        "service.ml.paths.moments",
        "TrainingMoments.fold",
        {
            "full_path_task.<locals>.run": "model's path: whole-split Gram",
            None: "search: fold Gram (centre, scale), validation rows",
        },
    ),
    ("service.ml.estimators.linear", "_CoordinateDescent.solve_path", _SOLVE_PATH),
    ("service.ml.estimators.linear", "RidgeFamily.solve_path", _SOLVE_PATH),
    ("service.ml.paths.moments", "CVFold.evaluate", "search: validation scores"),
    ("service.ml.paths.problem", "PenalizedLeastSquares.from_design", "model's path: problem"),
    ("service.ml.search.strategies", "select", "selection: ranking, summary"),
    ("service.ml.fitting", "_tune", "search: main thread (scheduling, waiting)"),
    (
        "sklearn.linear_model",
        "ElasticNet.fit",
        {"fit_job": "refit: estimator.fit", None: "refit: other fits"},
    ),
    (
        "sklearn.linear_model",
        "Ridge.fit",
        {"fit_job": "refit: estimator.fit", None: "refit: other fits"},
    ),
    ("sklearn.linear_model._base", "LinearModel.predict", "metrics: predict (train, test)"),
    ("sklearn.linear_model", "Ridge.predict", "metrics: predict (train, test)"),
    ("service.ml.fitting", "regression_metrics", "metrics: train and test"),
    ("service.ml.fitting", "comparison_nonzero", "refit: other fits"),
    ("service.ml.fitting", "regularization_path", "model's path: other"),
    ("service.ml.fitting", "original_units", "body: coefficient tables"),
    ("service.ml.fitting", "penalty_notations", "body: coefficient tables"),
    ("service.ml.fitting", "portable_document", "body: portable document"),
    ("service.models.documents", "model_summary", "body: the model's summary"),
]


class Sections:
    """Exclusive seconds per section, per thread: a nested section pauses its parent's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.threads: dict[str, set[int]] = defaultdict(set)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.missing: list[str] = []

    def reset(self) -> None:
        with self._lock:
            self.seconds.clear()
            self.calls.clear()
            self.threads.clear()

    def enter(self, section: str) -> None:
        stack = self._local.__dict__.setdefault("stack", [])
        now = time.perf_counter()
        if stack:
            parent = stack[-1]
            parent[1] += now - parent[2]
        stack.append([section, 0.0, now])

    def leave(self) -> None:
        stack = self._local.stack
        now = time.perf_counter()
        section, spent, resumed = stack.pop()
        with self._lock:
            self.seconds[section] += spent + now - resumed
            self.calls[section] += 1
            self.threads[section].add(threading.get_ident())
        if stack:
            stack[-1][2] = now

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        self.enter(name)
        try:
            yield
        finally:
            self.leave()

    def wrap(self, owner: Any, attribute: str, section: str | dict[str | None, str | None]) -> None:
        """Time calls of ``owner.attribute`` (by caller; a caller mapped to None: not timed)."""
        if isinstance(owner, type):
            original = owner.__dict__[attribute]
        else:
            original = getattr(owner, attribute)
        kind = type(original) if isinstance(original, classmethod | staticmethod) else None
        if kind is not None:
            original = original.__func__
        by_caller: dict[str | None, str | None] = (
            dict(section) if isinstance(section, dict) else {None: section}
        )
        by_caller.setdefault(None, None)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_code.co_qualname
            name = by_caller.get(caller, by_caller[None])
            for key, value in by_caller.items():
                if key is not None and caller.endswith("." + key):
                    name = value
            if name is None:
                return original(*args, **kwargs)
            self.enter(name)
            try:
                return original(*args, **kwargs)
            finally:
                self.leave()

        setattr(owner, attribute, wrapper if kind is None else kind(wrapper))

    def install(self) -> None:
        for modules, paths, section in HOOKS:
            for module_name, path in ((m, a) for m in modules.split("|") for a in paths.split("|")):
                try:
                    owner: Any = importlib.import_module(module_name)
                    *parents, attribute = path.split(".")
                    for name in parents:
                        owner = getattr(owner, name)
                    if isinstance(owner, type) and attribute not in owner.__dict__:
                        raise AttributeError(attribute)
                    if not isinstance(owner, type):
                        getattr(owner, attribute)
                except (ImportError, AttributeError):
                    continue
                self.wrap(owner, attribute, section)
                break
            else:
                self.missing.append(f"{modules}.{paths}")


def store_dataset(workdir: Path, n: int, p: int) -> tuple[Path, str]:
    """A ``make_regression`` dataset written as the service writes a synthetic one."""
    X, y = make_regression(
        n_samples=n, n_features=p, n_informative=max(1, p // 5), noise=20.0, random_state=0
    )
    table = pa.table({**{f"x{j}": X[:, j] for j in range(p)}, "y": y})
    stored = storage.ingest_table(
        table,
        data_dir=workdir,
        dataset_id=f"ds_profile_{n}x{p}",
        limits=storage.IngestLimits(max_rows=10**9, max_columns=10**6, parse_threads=1),
    )
    return workdir / stored.filename, stored.sha256


def job_spec(dataset_id: str, kind: str) -> JobSpec:
    return JobSpec.model_validate(
        {
            "dataset_id": dataset_id,
            "target": "y",
            "penalty": {"type": kind},
            "split": {"test_size": 0.2, "shuffle": True, "random_state": 0},
            "tuning": {
                "strategy": "grid",
                "space": {"alpha": ALPHAS[kind]},
                "cv": {"folds": FOLDS},
            },
        }
    )


def run_job(path: Path, sha256: str, spec: JobSpec, sections: Sections) -> dict[str, Any]:
    """One job as the worker runs it; returns its wall seconds and the model's timings."""
    started = time.perf_counter()
    columns = runner._dataset_columns(path, sha256, CACHE_BYTES)
    result = fitting.fit_job(columns, spec, training_sha256=sha256)
    stored = documents.model_documents(result, spec)
    with sections.section("body: orjson of summary and portable (the row's JSON)"):
        orjson.dumps(stored.summary, option=JSON_OPTIONS)
        orjson.dumps(stored.portable, option=JSON_OPTIONS)
    wall = time.perf_counter() - started
    return {"wall": wall, "search": 0.0 if result.search is None else result.search.seconds}


def profile_all_threads(call: Callable[[], object]) -> pstats.Stats:
    """cProfile of ``call``, merged with a profile of each thread started meanwhile."""
    profiles: list[cProfile.Profile] = []

    def start_thread_profile(*_: Any) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()  # replaces this function as the thread's profiler

    main = cProfile.Profile()
    threading.setprofile(start_thread_profile)
    try:
        main.runcall(call)
    finally:
        threading.setprofile(None)
    stats = pstats.Stats(main)
    for profile in profiles:
        with contextlib.suppress(TypeError):  # a thread that recorded nothing
            stats.add(profile)
    return stats


def print_breakdown(
    title: str, sections: Sections, walls: list[float], searches: list[float], runs: int
) -> None:
    wall = statistics.median(walls)
    print(f"\n## {title}")
    print(
        f"# wall of the job (fit_job + the body's JSON): median {wall:.3f} s over {runs} "
        f"jobs on the kept dataset (min {min(walls):.3f}, max {max(walls):.3f}); the "
        f"model's tuning.seconds median {statistics.median(searches):.3f} s"
    )
    rows = sorted(sections.seconds.items(), key=lambda item: -item[1])
    width = max(len(name) for name, _ in rows)
    main_thread = threading.main_thread().ident
    on_main = 0.0
    print(
        "# exclusive seconds per job, summed over threads; 'main' sections add up to the "
        "wall, the others (fold threads, the prep thread) overlap it"
    )
    print(f"{'section':<{width}}  {'s per job':>9}  {'% of wall':>9}  {'calls/job':>9}  on")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 9}  {'-' * 9}  ----------------")
    for name, seconds in rows:
        per_job = seconds / runs
        threads = sections.threads[name]
        others = len(threads - {main_thread})
        where = "main" if main_thread in threads else ""
        if others:
            where += ("+" if where else "") + f"{others} other thread{'s' * (others > 1)}"
        if main_thread in threads and not others:
            on_main += per_job
        print(
            f"{name:<{width}}  {per_job:>9.4f}  {100 * per_job / wall:>8.1f}%  "
            f"{sections.calls[name] / runs:>9.1f}  {where}"
        )
    print(
        f"{'(main thread, not in a section: fit_job’s own lines)':<{width}}  "
        f"{max(0.0, wall - on_main):>9.4f}  {100 * max(0.0, wall - on_main) / wall:>8.1f}%"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000x300,50000x500", help="ROWSxCOLS,...")
    parser.add_argument("--kinds", default=",".join(KINDS), help="l1, elasticnet, l2")
    parser.add_argument("--repeat", type=int, default=5, help="jobs per penalty (median)")
    parser.add_argument("--cprofile", action="store_true", help="cProfile one job per penalty")
    parser.add_argument("--top", type=int, default=25, help="cProfile rows printed")
    parser.add_argument("--py-spy", metavar="DIR", help="py-spy one job per penalty into DIR")
    parser.add_argument(
        "--prep-at-nice-19",
        action="store_true",
        help="the refit's preprocessing thread at nice 19 (the service before 2026-12-04)",
    )
    parser.add_argument(
        "--prep-ab",
        action="store_true",
        help="interleave jobs with the prep thread at nice 19 (A) and at the job's priority "
        "(B); print each one's wall, their ratio, and whether the results are identical",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: the job py-spy records
    args = parser.parse_args()
    settings = Settings()
    if args.prep_at_nice_19:
        fitting._prepare = _at_nice_19(fitting._prepare)
    runner.reuse_freed_memory(settings.worker_reuse_memory_bytes)
    blas_threads = max(1, (os.cpu_count() or 1) // settings.workers)
    threadpool_controller().limit(limits=blas_threads)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    if args.one:  # under py-spy: one job, nothing printed but its time
        n, p = sizes[0]
        with tempfile.TemporaryDirectory(prefix="regfit-profile-") as tmp:
            path, sha = store_dataset(Path(tmp), n, p)
            spec = job_spec(path.stem, kinds[0])
            for _ in range(1 + REPEAT_UNDER_PY_SPY):  # the first one reads the file
                run_job(path, sha, spec, Sections())
        return 0
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.platform()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}; "
        f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}; BLAS threads "
        f"{blas_threads} (the worker's), 30 alphas × {FOLDS} folds"
        + ("; the prep thread at nice 19" if args.prep_at_nice_19 else "")
    )
    if args.prep_ab:
        return prep_ab(sizes, kinds, args.repeat)
    sections = Sections()
    sections.install()
    if sections.missing:
        print(f"# not found in this build (not timed): {', '.join(sections.missing)}")
    for n, p in sizes:
        with tempfile.TemporaryDirectory(prefix="regfit-profile-") as tmp:
            path, sha = store_dataset(Path(tmp), n, p)
            runner._last_dataset = None
            for kind in kinds:
                spec = job_spec(path.stem, kind)
                sections.reset()
                first = run_job(path, sha, spec, sections)
                if kind == kinds[0]:
                    read = {k: v for k, v in sections.seconds.items() if k.startswith("read")}
                    print(
                        f"\n# {n}×{p}: the first job read the file: {first['wall']:.3f} s, "
                        + ", ".join(f"{k} {v:.3f} s" for k, v in read.items())
                    )
                sections.reset()
                walls, searches = [], []
                for _ in range(args.repeat):
                    timing = run_job(path, sha, spec, sections)
                    walls.append(timing["wall"])
                    searches.append(timing["search"])
                print_breakdown(f"{kind} {n}×{p}", sections, walls, searches, args.repeat)
                if args.cprofile:
                    one_job = functools.partial(run_job, path, sha, spec, Sections())
                    stats = profile_all_threads(one_job)
                    out = io.StringIO()
                    stats.stream = out  # type: ignore[attr-defined]
                    stats.sort_stats("tottime").print_stats(args.top)
                    text = out.getvalue()
                    body = text[text.find("   ncalls") :] if "   ncalls" in text else text
                    print(f"# cProfile, one job, every thread merged, by own time:\n{body}")
                if args.py_spy:
                    record_py_spy(Path(args.py_spy), n, p, kind, args.top)
    return 0


def _numbers(result: Any) -> tuple[np.ndarray, ...]:
    """Every number a job's result reports that does not depend on timing."""
    search = result.search
    scores = [] if search is None else [c.mean_score for c in search.candidates]
    return (
        np.asarray(result.coef),
        np.asarray([result.intercept]),
        np.asarray(list(result.train_metrics.values())),
        np.asarray(list((result.test_metrics or {}).values())),
        np.asarray(scores, dtype=np.float64),
        np.asarray(result.path.coefs),
    )


def _at_nice_19(prepare: Callable[..., Any]) -> Callable[..., Any]:
    """``fitting._prepare`` run at nice 19 (Linux: per thread), as the service did before."""

    @functools.wraps(prepare)
    def niced(*args: Any, **kwargs: Any) -> Any:
        if sys.platform == "linux" and threading.current_thread() is not threading.main_thread():
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        return prepare(*args, **kwargs)

    return niced


def prep_ab(sizes: list[tuple[int, ...]], kinds: list[str], repeat: int) -> int:
    """Jobs alternating A (prep thread at nice 19) and B (at the job's priority)."""
    job_priority = fitting._prepare
    niced = _at_nice_19(job_priority)

    for n, p in sizes:
        with tempfile.TemporaryDirectory(prefix="regfit-profile-") as tmp:
            path, sha = store_dataset(Path(tmp), n, p)
            runner._last_dataset = None
            for kind in kinds:
                spec = job_spec(path.stem, kind)
                columns = runner._dataset_columns(path, sha, CACHE_BYTES)
                walls: dict[str, list[float]] = {"A": [], "B": []}
                results: dict[str, Any] = {}
                # a first job unmeasured (warm caches), then pairs AB, BA, AB, ...
                order = ["A"] + [m for j in range(repeat) for m in ("AB" if j % 2 else "BA")]
                for i, mode in enumerate(order):
                    fitting._prepare = niced if mode == "A" else job_priority
                    started = time.perf_counter()
                    result = fitting.fit_job(columns, spec, training_sha256=sha)
                    if i:
                        walls[mode].append(time.perf_counter() - started)
                    results.setdefault(mode, result)
                fitting._prepare = job_priority
                same = all(
                    np.array_equal(a, b, equal_nan=True)
                    for a, b in zip(_numbers(results["A"]), _numbers(results["B"]), strict=True)
                )
                a, b = statistics.median(walls["A"]), statistics.median(walls["B"])
                print(
                    f"{kind:<10} {n}×{p}: A (nice 19) median {a:.3f} s "
                    f"[{min(walls['A']):.3f}–{max(walls['A']):.3f}], B (job priority) "
                    f"median {b:.3f} s [{min(walls['B']):.3f}–{max(walls['B']):.3f}], "
                    f"B/A {b / a:.3f}; identical numbers: {same}; load "
                    f"{os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    return 0


def record_py_spy(directory: Path, n: int, p: int, kind: str, top: int) -> None:
    """py-spy (native frames too) on this script's ``--one`` mode; prints where time goes."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("# py-spy: not installed (pip install py-spy)")
        return
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"tuning-{kind}-{n}x{p}.txt"
    command = [
        *(py_spy, "record", "--rate", "1000", "--threads"),
        *("--format", "raw", "--output", str(out), "--"),
        *(sys.executable, __file__, "--sizes", f"{n}x{p}", "--kinds", kind, "--one", "1"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.exists():
        print(f"# py-spy failed: {done.stderr.strip()[-300:]}")
        return
    leaves: dict[str, int] = defaultdict(int)
    total = waiting = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # the jobs only: not the imports, nor writing the dataset
        if "run_job" not in stack and "_bootstrap" not in stack:
            continue
        if "_find_and_load" in stack or "store_dataset" in stack:
            continue
        # the innermost Python function: where the time goes (its native calls included)
        python_frames = [f for f in stack.split(";") if ".py:" in f]
        frame = python_frames[-1] if python_frames else stack.split(";")[-1]
        function = frame.rsplit(":", 1)[0] + ")" if ".py:" in frame else frame
        total += int(count)
        # a pool thread waiting for work, a thread waiting on a condition: idle
        if function in IDLE_FRAMES:
            waiting += int(count)
            continue
        leaves[function] += int(count)
    busy = max(1, total - waiting)
    print(
        f"# py-spy, {kind} {n}×{p}, the file's read and {REPEAT_UNDER_PY_SPY} kept-dataset "
        f"jobs, every thread ({total} samples, of which {waiting} waiting; "
        f"collapsed stacks in {out}); innermost Python functions by share of the busy samples:"
    )
    for frame, hits in sorted(leaves.items(), key=lambda item: -item[1])[:top]:
        print(f"  {100 * hits / busy:5.1f}%  {frame[:150]}")


if __name__ == "__main__":
    raise SystemExit(main())
