"""Job routes: submit, read, list, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from service import errors
from service.datasets import service as datasets
from service.jobs import service as jobs
from service.jobs.schemas import JobOut, JobStatus, job_body
from service.ml.errors import FitError
from service.ml.search.candidates import count_candidates
from service.ml.spec import JobSpec
from service.ml.split import split_sizes
from service.web import (
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
    except FitError as exc:
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


@router.post("", status_code=202, response_model=JobOut)
def submit(
    spec: JobSpec, request: Request, session: WriteSession, settings: AppSettings
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
    executor = request.app.state.executor
    job = jobs.create(session=session, spec=spec, executor=executor.name, total=total)
    body = job_body(job)
    session.commit()  # the job row exists before any worker can look for it
    executor.submit(job.id)
    return FastJSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("", response_model=dict[str, Any])
def list_jobs(
    session: ReadSession,
    page: PageParams,
    status: Annotated[JobStatus | None, Query()] = None,
) -> dict[str, Any]:
    """Lists jobs, newest first."""
    items, total = jobs.list_page(
        session=session, limit=page.limit, offset=page.offset, status=status
    )
    return page_body([job_body(j) for j in items], total=total, page=page)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: ReadSession) -> dict[str, Any]:
    """A job: status, progress, error and, once it succeeded, its model id."""
    return job_body(jobs.get(session=session, job_id=job_id))


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, request: Request, session: WriteSession) -> dict[str, Any]:
    """Stops a queued or running job; its worker process is terminated within seconds."""
    job = jobs.cancel(session=session, job_id=job_id)
    body = job_body(job)
    session.commit()
    request.app.state.executor.cancel(job_id)
    return body
