"""One evaluation of candidates on every fold: the search's single evaluation loop.

Per fold, the design matrix is built once and centred (``fit_intercept``: with the fold's
training means, as the estimators do) — from :class:`~service.ml.paths.moments.TrainingMoments`
when they apply — and each chain of candidates (one family and ``l1_ratio``) is solved by
its family's path solver, chunk by chunk. Chunks are scheduled across folds
(:mod:`.schedule`) so that candidates finish in path order on every fold: a timeout then
keeps whole candidates.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

from service.ml import estimators
from service.ml.errors import FitError
from service.ml.estimators import Penalty
from service.ml.paths.moments import CVFold, TrainingMoments
from service.ml.paths.problem import PenalizedLeastSquares
from service.ml.preprocessing import Columns, FeatureLayout
from service.ml.search.candidates import Candidate, searched_kinds
from service.ml.search.schedule import Scheduler, StopCheck, Task
from service.ml.spec import PreprocessingSpec, TuningSpec
from service.ml.threads import n_threads

Progress = Callable[[int, int, str], None]

# A path's first chunk is this fraction of it; later chunks aim at CHUNK_SECONDS each. A
# chunk is the unit of scheduling, progress, cancellation and timeout.
PATH_CHUNKS = 12
CHUNK_SECONDS = 0.05
# A chunk is at most this many times the size of the one before. Alphas get dearer down the
# path, so the seconds per alpha of a short chunk undervalue the next one; but each chunk
# costs its fold a validation pass (as much as a short solve), so a fast path should take
# its rest in one go (30 alphas at 10000×300: 2 chunks instead of 5).
CHUNK_GROWTH = 16


def alpha_seconds(work: np.ndarray, solve_seconds: float, score_seconds: float) -> np.ndarray:
    """Each alpha's seconds of a path solved and scored in one go: the solve's measured
    time split in proportion to the solver's count of each alpha's ``work`` (coordinate
    descent's sweeps), the validation scoring's (the same product per alpha) evenly."""
    total = float(work.sum())
    share = work / total if total > 0 else np.full(len(work), 1.0 / len(work))
    return solve_seconds * share + score_seconds / len(work)


@dataclass(frozen=True)
class Segment:
    """Alphas (descending) of one chain, solved in one go; ``members[j]`` sit at ``alphas[j]``."""

    kind: str
    l1_ratio: float | None
    alphas: list[float]
    members: list[list[int]]


@dataclass
class CandidateScores:
    """Per-fold results of every candidate: metrics, nonzero counts, seconds, completion."""

    n_candidates: int
    n_folds: int
    n_metrics: int
    metrics: np.ndarray = field(init=False)
    nonzero: np.ndarray = field(init=False)
    seconds: np.ndarray = field(init=False)
    done: np.ndarray = field(init=False)
    unconverged: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.n_candidates, self.n_folds)
        self.metrics = np.full((*shape, self.n_metrics), np.nan)
        self.nonzero = np.zeros(shape)
        self.seconds = np.zeros(self.n_candidates)
        self.done = np.zeros(shape, dtype=bool)
        self.unconverged = np.zeros(shape, dtype=bool)

    def grow(self, n_candidates: int) -> None:
        extra = n_candidates - self.n_candidates
        if extra <= 0:
            return
        self.metrics = np.concatenate(
            [self.metrics, np.full((extra, self.n_folds, self.n_metrics), np.nan)]
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


class CrossValidation:
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
        self.full_path: tuple[Segment, PenalizedLeastSquares, np.ndarray, np.ndarray] | None
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
        needs_design = any(
            estimators.get(kind).path_needs_design(penalty)
            for kind in searched_kinds(tuning, penalty.kind)
        )
        self.scores = CandidateScores(n_candidates, n_folds, len(penalty.family.metrics))
        self.progress, self.total = progress, n_candidates * n_folds
        self.message = f"cross-validating {n_candidates} candidates × {n_folds} folds"
        self.scheduler = Scheduler(
            n_threads(n_folds, n_jobs),
            deadline=deadline,
            should_stop=should_stop,
            report=self.report,
        )
        if penalty.fit_intercept and not needs_design:
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

    def build_task(self, k: int, follow_up: Callable[[int], list[Task]]) -> Task:
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

        def done(fold: CVFold | None) -> list[Task]:
            if fold is None:
                return []
            self.folds[k] = fold
            return follow_up(k)

        return Task((-1, k), run, done)

    def chain_task(
        self,
        k: int,
        segments: list[Segment],
        coef_init: np.ndarray | None,
        priority: tuple[int, ...],
        follow_up: Callable[[np.ndarray, float], list[Task]] | None,
    ) -> Task:
        """Solve ``segments`` one after the other on fold ``k``; record their candidates.

        ``coef_init`` warm-starts the first segment; ``follow_up`` receives the last
        solution (the warm start of the chain's next chunk) and the seconds the task took.
        """

        def run() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None:
            fold = self.folds[k]
            results = []
            start = coef_init
            for segment in segments:
                if fold is None or self.scheduler.stop.is_set():
                    return None
                started = time.perf_counter()
                family = estimators.get(segment.kind)
                solution = family.solve_path(
                    fold.problem, self.penalty, segment.l1_ratio, segment.alphas, start
                )
                solved = time.perf_counter()
                metrics, nonzero = fold.evaluate(solution.coefs, family.fold_metrics)
                seconds = alpha_seconds(
                    solution.work, solved - started, time.perf_counter() - solved
                )
                results.append((solution.coefs, solution.gaps, metrics, nonzero, seconds))
                start = None
            return results

        def done(results: Any) -> list[Task]:
            if results is None:
                return []
            fold = self.folds[k]
            assert fold is not None
            for segment, (coefs, gaps, metrics, nonzero, seconds) in zip(
                segments, results, strict=True
            ):
                solved = fold.solved.setdefault((segment.kind, segment.l1_ratio), {})
                for j, (alpha, indices) in enumerate(
                    zip(segment.alphas, segment.members, strict=True)
                ):
                    solved[alpha] = coefs[:, j]
                    for i in indices:
                        self.scores.metrics[i, k] = metrics[j]
                        self.scores.nonzero[i, k] = nonzero[j]
                        self.scores.seconds[i] += seconds[j]
                        self.scores.done[i, k] = True
                        self.scores.unconverged[i, k] = gaps[j] > self.penalty.tol
            if follow_up is None:
                return []
            return follow_up(results[-1][0][:, -1].copy(), sum(float(r[4].sum()) for r in results))

        return Task(priority, run, done)

    # -- grid and random: every candidate known up front, batched onto paths ---------------

    def run_batch(self, candidates: list[Candidate]) -> None:
        """Evaluate ``candidates`` on every fold: one path per chain, chunked.

        A chain of several alphas is walked in warm-started chunks (in one chunk where its
        family's ``path_in_one_step``: Ridge's single decomposition). The first chunk is
        ``1/PATH_CHUNKS`` of the path; each next one is sized from the seconds per alpha the
        last one took, to last about ``CHUNK_SECONDS`` (at most ``CHUNK_GROWTH`` times the
        last size), so a chunk's fixed cost (validation predictions, scheduling) stays small
        next to its solve while cancel and timeout still act within a fraction of a second.
        Chains of one alpha (a random search over a continuous ``l1_ratio``) are cold fits,
        bundled so that a few dozen tasks per fold cover them.
        """
        chains: dict[tuple[str, float | None], dict[float, list[int]]] = {}
        for i, c in enumerate(candidates):
            chains.setdefault(c.chain, {}).setdefault(c.alpha, []).append(i)
        paths: list[tuple[str, float | None, list[float], list[list[int]], int]] = []
        singletons: list[Segment] = []
        for (kind, ratio), by_alpha in chains.items():
            alphas = sorted(by_alpha, reverse=True)
            if len(alphas) == 1:
                singletons.append(Segment(kind, ratio, alphas, [by_alpha[alphas[0]]]))
                continue
            if estimators.get(kind).path_in_one_step(self.penalty):
                first = len(alphas)
            else:
                first = max(1, math.ceil(len(alphas) / PATH_CHUNKS))
            paths.append((kind, ratio, alphas, [by_alpha[a] for a in alphas], first))
        bundles: list[list[Segment]] = []
        if singletons:
            size = max(1, math.ceil(len(singletons) / (4 * PATH_CHUNKS)))
            bundles = [singletons[s : s + size] for s in range(0, len(singletons), size)]

        def path_steps(
            k: int, c: int, step: int, start: int, size: int, coef_init: np.ndarray | None
        ) -> list[Task]:
            kind, ratio, alphas, members, _ = paths[c]
            if start >= len(alphas):
                return []
            stop = min(start + size, len(alphas))
            segment = Segment(kind, ratio, alphas[start:stop], members[start:stop])

            def follow(last: np.ndarray, seconds: float) -> list[Task]:
                per_alpha = seconds / (stop - start)
                grown = CHUNK_GROWTH * (stop - start)
                if per_alpha > 0:
                    grown = min(grown, max(1, int(CHUNK_SECONDS / per_alpha)))
                return path_steps(k, c, step + 1, stop, grown, last)

            return [self.chain_task(k, [segment], coef_init, (step, c, k), follow)]

        def after_build(k: int) -> list[Task]:
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
            tasks.append(self.full_path_task(Segment(kind, ratio, alphas, members)))
        self.scheduler.run(tasks)

    def full_path_task(self, segment: Segment) -> Task:
        """The path of a search's only chain on the whole training split: the model's
        regularization path, computed by a thread the folds leave idle (it runs last)."""

        def run() -> tuple[PenalizedLeastSquares, np.ndarray, np.ndarray] | None:
            if self.scheduler.stop.is_set() or self.moments is None:
                return None
            problem = self.moments.fold(None).problem
            solution = estimators.get(segment.kind).solve_path(
                problem, self.penalty, segment.l1_ratio, segment.alphas, None
            )
            return problem, solution.coefs, solution.gaps

        def done(
            result: tuple[PenalizedLeastSquares, np.ndarray, np.ndarray] | None,
        ) -> list[Task]:
            if result is not None:
                self.full_path = (segment, *result)
            return []

        return Task((sys.maxsize,), run, done)

    # -- bayesian: one candidate at a time, folds in parallel --------------------------------

    def run_one(self, index: int, candidate: Candidate) -> None:
        def tasks_for(k: int) -> list[Task]:
            fold = self.folds[k]
            assert fold is not None
            solved = fold.solved.get(candidate.chain, {})
            coef_init = None
            if solved and candidate.family.warm_starts:
                nearest = min(
                    solved,
                    key=lambda a: abs(math.log(a + 1e-300) - math.log(candidate.alpha + 1e-300)),
                )
                coef_init = solved[nearest].copy()
            segment = Segment(candidate.kind, candidate.l1_ratio, [candidate.alpha], [[index]])
            return [self.chain_task(k, [segment], coef_init, (0, k), None)]

        missing = [k for k, fold in enumerate(self.folds) if fold is None]
        tasks = [self.build_task(k, tasks_for) for k in missing]
        tasks += [t for k in range(len(self.folds)) if k not in missing for t in tasks_for(k)]
        self.scheduler.run(tasks)
