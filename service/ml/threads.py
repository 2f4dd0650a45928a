"""How many threads a search uses, and the process's native (BLAS, OpenMP) thread pools."""

from __future__ import annotations

import functools
import os

from threadpoolctl import ThreadpoolController


@functools.cache
def threadpool_controller() -> ThreadpoolController:
    """The process's native thread pools (BLAS, OpenMP), found once.

    ``threadpool_limits`` looks them up again on every call (resolving every loaded shared
    library's path: ~10 ms of a small job); the local executor's fork server calls this once
    so that every worker inherits the answer.
    """
    return ThreadpoolController()


def n_threads(n_folds: int, n_jobs: int | None) -> int:
    """Threads of a search's pool: one per fold, at most ``n_jobs`` (default: the cores)."""
    cores = os.cpu_count() or 1
    return max(1, min(n_folds, n_jobs if n_jobs is not None else cores))
