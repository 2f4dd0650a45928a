"""Job routes: submit, read, list, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from service import errors
from service.datasets import service as datasets
from service.db import after_commit
from service.errors import problem_responses
from service.jobs import service as jobs
from service.jobs.schemas import JobOut, JobPage, JobStatus
from service.ml.fitting import split_sizes
from service.ml.spec import JobSpec
from service.ml.tuning import count_candidates
from service.tables import Job
from service.web import (
    AppExecutor,
    AppSettings,
    FastJSONResponse,
    PageParams,
    ReadSession,
    WriteSession,
    page_body,
)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_TEXT_DTYPES = ("string", "large_string", "utf8", "large_utf8", "str", "text")


def _check_columns(spec: JobSpec, columns: list[dict[str, Any]]) -> None:
    names = [c["name"] for c in columns]
    by_name = {c["name"]: c for c in columns}
    problems = []
    if spec.target not in by_name:
        problems.append(
            errors.field_error(
                "/target", f"column {spec.target!r} is not in the dataset; columns: {names[:50]}"
            )
        )
    elif str(by_name[spec.target].get("dtype", "")).lower() in _TEXT_DTYPES:
        problems.append(
            errors.field_error("/target", f"target column {spec.target!r} is not numeric")
        )
    for i, feature in enumerate(spec.features or []):
        if feature not in by_name:
            problems.append(
                errors.field_error(f"/features/{i}", f"column {feature!r} is not in the dataset")
            )
        elif feature == spec.target:
            problems.append(
                errors.field_error(f"/features/{i}", f"column {feature!r} is the target")
            )
    if problems:
        raise errors.InvalidInput(problems[0]["msg"], errors=problems)


def _check_split(spec: JobSpec, n_rows: int) -> None:
    """The split must leave training rows, and enough of them for the CV folds."""
    try:
        n_train, _ = split_sizes(n_rows, spec.split)
    except errors.FitError as exc:
        raise errors.InvalidInput(
            exc.detail, errors=[errors.field_error("/split/test_size", exc.detail)]
        ) from exc
    if spec.tuning is not None and spec.tuning.cv.folds > n_train:
        detail = (
            f"cannot cut {n_train} training rows into {spec.tuning.cv.folds} folds "
            f"(the dataset has {n_rows} rows, split.test_size={spec.split.test_size})"
        )
        raise errors.InvalidInput(detail, errors=[errors.field_error("/tuning/cv/folds", detail)])


def planned_fits(spec: JobSpec, max_candidates: int) -> int:
    """Fits the job will run (candidates × folds, plus the final fit), for progress."""
    if spec.tuning is None:
        return 1
    tuning = spec.tuning
    candidates = count_candidates(tuning, spec.penalty)
    if candidates > max_candidates:
        raise errors.InvalidInput(
            f"the search has {candidates} candidates; the limit is {max_candidates}",
            errors=[
                errors.field_error("/tuning", f"{candidates} candidates > limit {max_candidates}")
            ],
        )
    return candidates * tuning.cv.folds + 1


def job_item(job: Job) -> dict[str, Any]:
    """The list item of a job: its state, without the echo of its request."""
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "dataset_id": job.dataset_id,
        "progress": {
            "done": job.progress_done,
            "total": job.progress_total,
            "message": job.progress_message,
        },
        "attempts": job.attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.error,
        "model_id": job.model_id,
    }


def job_body(job: Job) -> dict[str, Any]:
    """The body of a job (:class:`JobOut`): its list item and the validated request."""
    return {**job_item(job), "spec": job.spec}


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=problem_responses(400, 413, 415, 422, 429),
)
def create_job(
    spec: JobSpec, session: WriteSession, settings: AppSettings, executor: AppExecutor
) -> Response:
    """Queues a training job (a fit, or a cross-validated search) on a dataset."""
    try:
        dataset = datasets.get(session=session, dataset_id=spec.dataset_id)
    except errors.NotFound as exc:
        raise errors.InvalidInput(
            f"dataset {spec.dataset_id!r} does not exist",
            errors=[errors.field_error("/dataset_id", "no dataset with this id")],
        ) from exc
    _check_columns(spec, dataset.columns)
    _check_split(spec, dataset.n_rows)
    total = planned_fits(spec, settings.max_candidates)
    job = jobs.create(session=session, spec=spec, executor=executor.name, total=total)
    # The job row must exist before any worker can look for it.
    after_commit(session, lambda: executor.submit(job.id))
    return FastJSONResponse(
        job_body(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
    )


@router.get("", response_model=JobPage, responses=problem_responses(422))
def list_jobs(
    session: ReadSession,
    page: PageParams,
    status: Annotated[JobStatus | None, Query()] = None,
) -> Response:
    """Lists jobs newest first, as compact items (``GET /v1/jobs/{id}`` has the spec)."""
    items, total = jobs.list_page(
        session=session, limit=page.limit, offset=page.offset, status=status
    )
    return FastJSONResponse(page_body([job_item(j) for j in items], total=total, page=page))


@router.get("/{job_id}", response_model=JobOut, responses=problem_responses(404))
def get_job(job_id: str, session: ReadSession) -> Response:
    """A job: status, progress, error and, once it succeeded, its model id."""
    return FastJSONResponse(job_body(jobs.get(session=session, job_id=job_id)))


@router.post("/{job_id}/cancel", response_model=JobOut, responses=problem_responses(404, 409))
def cancel_job(job_id: str, session: WriteSession, executor: AppExecutor) -> Response:
    """Stops a queued or running job; its worker process is terminated within seconds."""
    job = jobs.cancel(session=session, job_id=job_id)
    after_commit(session, lambda: executor.cancel(job_id))
    return FastJSONResponse(job_body(job))
