"""Runs one attempt of a training job: load the dataset, fit, write the model.

The runner receives only a job id and an attempt number and opens its own session; the
local executor's worker processes and the Celery task both call :func:`execute`. Every
write is conditional on the job still being ``running`` at that attempt, and the model row
is inserted in the same transaction that marks the job succeeded (``models.job_id`` is
unique), so a cancelled, re-queued or redelivered attempt can never write a second model.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import OperationalError

from service import errors
from service.config import Settings
from service.datasets import files, reader
from service.datasets import service as datasets
from service.db import Database
from service.jobs import service as jobs
from service.ml import errors as ml_errors
from service.ml import fitting
from service.ml.preprocessing import (
    Columns,
    ColumnTable,
    check_design_budget,
    n_rows_of,
    select_features,
)
from service.ml.spec import JobSpec
from service.models import documents
from service.registry import service as registry

log = logging.getLogger("regfit.runner")

PROGRESS_INTERVAL_SECONDS = 0.3
STOP_CHECK_INTERVAL_SECONDS = 0.5
# glibc's mallopt parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


class JobStopped(Exception):
    """The job was cancelled (or re-assigned) while this attempt ran."""


class JobCancelled(errors.RegfitError):
    """The fit stopped because the job was cancelled or taken over while this attempt ran."""

    status = 409
    slug = "cancelled"
    title = "Job cancelled"


def _progress_writer(db: Database, job_id: str, attempt: int) -> Callable[[int, int, str], None]:
    # The first write waits one interval too: the claim already shows the job starting, with
    # its total, so a job shorter than the interval writes no progress before its end.
    last = time.monotonic()

    def report(done: int, total: int, message: str) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < PROGRESS_INTERVAL_SECONDS:
            return
        last = now
        with db.session() as session:
            jobs.set_progress(
                session=session,
                job_id=job_id,
                attempt=attempt,
                done=done,
                total=total,
                message=message,
            )

    return report


def _stop_checker(db: Database, job_id: str, attempt: int) -> Callable[[], bool]:
    last = 0.0
    stopped = False

    def should_stop() -> bool:
        nonlocal last, stopped
        now = time.monotonic()
        if stopped or now - last < STOP_CHECK_INTERVAL_SECONDS:
            return stopped
        last = now
        with db.session(readonly=True) as session:
            state = jobs.statuses(session=session, job_ids=[job_id]).get(job_id)
        stopped = state != ("running", attempt)
        return stopped

    return should_stop


def reuse_freed_memory(keep_bytes: int) -> None:
    """Let this worker process reuse the memory of freed arrays up to ``keep_bytes`` each.

    By default glibc hands a large freed array (and a thread's freed heap) back to the
    system, so the next job touches fresh pages again: at 10000×300 a tuning job took
    2000-9000 page faults in a worker, against ~10 once the memory stays (through HTTP, the
    median job 0.16-0.195 s → 0.157-0.165 s in an A/B). Arrays above ``keep_bytes`` are
    still returned when freed, and so is free memory at the heap's top beyond twice it.
    0 keeps the C library's defaults; elsewhere than glibc this does nothing.
    """
    if keep_bytes <= 0:
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        threshold = min(keep_bytes, 2**30)
        if not libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(threshold)):
            threshold = min(threshold, 32 * 1024**2)  # the most some glibc versions accept
            libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(threshold))
        libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2 * threshold))


# The last dataset this process read: (path, sha256) → its columns, read-only. Workers live
# across jobs, and a user tuning one dataset sends one job after another on it.
_last_dataset: tuple[tuple[str, str], ColumnTable] | None = None


def _dataset_columns(path: Path, sha256: str, max_bytes: int) -> Columns:
    """The dataset's columns, from this process's cache when the last job read the same file.

    A cached dataset is a :class:`ColumnTable`: what jobs derive from its columns (their
    checks, the row-major matrix of the numeric ones) is kept too, within ``max_bytes``.
    """
    global _last_dataset
    key = (str(path), sha256)
    if _last_dataset is not None and _last_dataset[0] == key:
        return _last_dataset[1]
    _last_dataset = None  # let the previous dataset go before reading the next one
    columns = reader.read_columns(path)
    size = 0
    for values in columns.values():
        values.flags.writeable = False  # shared by later jobs: nobody may change them
        size += values.nbytes if values.dtype != object else 64 * len(values)
    if size > max_bytes:
        return columns
    table = ColumnTable(columns, matrix_bytes=max_bytes - size)
    _last_dataset = (key, table)
    return table


def execute(
    job_id: str, attempt: int, *, db: Database, settings: Settings, deadline: float | None = None
) -> str:
    """Runs attempt ``attempt`` of job ``job_id`` to its end and returns the job's status.

    ``deadline`` (wall clock): a fit that ends after it fails with the time limit instead of
    recording a model, so no job succeeds after its limit whoever was meant to stop it.
    """
    try:
        with db.session(readonly=True) as session:
            job = jobs.get(session=session, job_id=job_id)
            if (job.status, job.attempts) != ("running", attempt):
                return job.status
            spec = JobSpec.model_validate(job.spec)
            try:
                dataset = datasets.get(session=session, dataset_id=job.dataset_id)
            except errors.NotFound as exc:
                raise errors.FitError(
                    f"dataset {job.dataset_id!r} was deleted before the job ran",
                    errors=[errors.field_error("/dataset_id", "dataset no longer exists")],
                ) from exc
            path = files.dataset_path(settings, dataset)
            sha256 = dataset.sha256
            stored_dtypes = {column["name"]: column["dtype"] for column in dataset.columns}
        columns = _dataset_columns(path, sha256, settings.dataset_cache_bytes)
        try:
            _check_design(columns, spec, settings.max_design_bytes)
            result = fitting.fit_model(
                columns,
                spec,
                training_sha256=sha256,
                max_classes=settings.max_classes,
                stored_dtypes=stored_dtypes,
                progress=_progress_writer(db, job_id, attempt),
                should_stop=_stop_checker(db, job_id, attempt),
                n_jobs=settings.search_thread_count(),
            )
        except ml_errors.FitCancelled as exc:
            raise JobCancelled(exc.detail) from exc
        except ml_errors.FitError as exc:
            raise errors.FitError(exc.detail, errors=exc.errors) from exc
        if deadline is not None and time.time() >= deadline:
            with db.session() as session:
                jobs.fail(
                    session=session,
                    job_id=job_id,
                    attempt=attempt,
                    problem=jobs.time_limit_problem(settings.job_time_limit_seconds),
                )
            return _status(db, job_id)
        outcome = documents.model_documents(result, spec)
        with db.session() as session:
            model = jobs.succeed(
                session=session, job_id=job_id, attempt=attempt, spec=spec, outcome=outcome
            )
            if model is not None and spec.register_model is not None:
                # In the transaction that stores the model: registered with it, or neither.
                registry.register_job_model(
                    session=session,
                    model_id=model.id,
                    name=spec.register_model.name,
                    alias=spec.register_model.alias,
                    description=spec.register_model.description,
                )
        return "succeeded" if model is not None else _status(db, job_id)
    except errors.RegfitError as exc:
        problem = exc.problem()
    except OperationalError:
        # The database went away (restart, dropped connection): the attempt is lost, not
        # failed. The executor puts the job back in the queue (bounded attempts).
        raise
    except Exception as exc:  # the job fails with the reason; the worker survives
        # The traceback goes to the worker's log only: a client never sees one.
        log.exception("job %s attempt %s crashed", job_id, attempt)
        problem = errors.RegfitError(
            f"internal error while training: {type(exc).__name__}: {exc}",
            status=500,
            title="Training crashed",
            slug="internal",
        ).problem()
    with db.session() as session:
        jobs.fail(session=session, job_id=job_id, attempt=attempt, problem=problem)
    return _status(db, job_id)


def _check_design(columns: Columns, spec: JobSpec, budget: int) -> None:
    """Fail at once when the design matrix would be over ``budget`` bytes (its one-hot
    columns counted from the data), rather than after building it."""
    layout = select_features(
        columns, target=spec.target, features=spec.features, prep=spec.preprocessing
    )
    check_design_budget(
        layout,
        spec.preprocessing,
        n_rows=n_rows_of(columns),
        searched=spec.tuning is not None,
        budget=budget,
    )


def _status(db: Database, job_id: str) -> str:
    with db.session(readonly=True) as session:
        return jobs.get(session=session, job_id=job_id).status
