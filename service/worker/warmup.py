"""Imported once by the local executor's fork server, before it forks any worker.

A worker is a fresh fork per job, so whatever a first query or fit costs it would pay on every job:
importing the database driver and configuring the ORM mappers took about 70 ms of a
1000-row fit's 200 ms in the worker (benchmarks/README.md, "Fit overhead"). Doing it here
once, in the fork server, hands every worker a warm copy.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
from sqlalchemy.orm import configure_mappers

from service.ml.fitting import fit_job
from service.ml.spec import JobSpec
from service.ml.threads import threadpool_controller
from service.worker import runner  # noqa: F401  (scikit-learn, pyarrow, the ORM tables)
from service.worker.local import exit_with_parent

# The fork server goes at once when the API does (and its workers with it).
exit_with_parent()
configure_mappers()
# The native thread pools, found once (each worker then only sets its limit).
threadpool_controller()
# One tiny fit fills the per-process caches a job's first fit would otherwise fill in every
# worker: train_test_split's dataframe-plugin lookup (it scans every installed package's
# entry points, ~20 ms), scikit-learn's parameter validation and estimator tags.
with contextlib.suppress(Exception), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _rows = np.arange(20.0)
    fit_job(
        {"x": _rows, "z": np.sqrt(_rows), "y": 2.0 * _rows},
        JobSpec.model_validate(
            {"dataset_id": "warm-up", "target": "y", "penalty": {"type": "l2", "alpha": 1.0}}
        ),
        training_sha256="0" * 64,
    )
with contextlib.suppress(ImportError):
    import sqlite3  # noqa: F401

    import sqlalchemy.dialects.sqlite.pysqlite
with contextlib.suppress(ImportError):
    import psycopg  # noqa: F401
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
