"""Job routes: submit, read, list, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from service import errors
from service.config import Settings
from service.datasets import service as datasets
from service.db import after_commit
from service.errors import problem_responses
from service.http.dependencies import AppExecutor, AppSettings, ReadSession, WriteSession
from service.http.paging import PageParams, page_body
from service.http.responses import FastJSONResponse
from service.jobs import service as jobs
from service.jobs.schemas import JobOut, JobPage, JobStatus
from service.ml import fitting
from service.ml.errors import FitError
from service.ml.preprocessing import design_bytes
from service.ml.spec import JobSpec
from service.ml.split import split_sizes
from service.tables import Dataset, Job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_TEXT_DTYPES = ("string", "large_string", "utf8", "large_utf8", "str", "text")


def _target_problems(
    spec: JobSpec, column: dict[str, Any], max_classes: int
) -> list[dict[str, Any]]:
    """A text or boolean target needs ``task: "classification"``; a classification target
    may have at most ``max_classes`` distinct values (REGFIT_MAX_CLASSES; a numeric target's
    count is checked when the job runs, from the values)."""
    dtype = str(column.get("dtype", "")).lower()
    text = dtype in _TEXT_DTYPES
    if spec.task == "regression" and (text or dtype in ("bool", "boolean")):
        kind = "text" if text else "boolean"
        return [
            errors.field_error(
                "/target",
                f"target column {spec.target!r} is {kind}, not numeric: to predict its "
                f'labels set "task": "classification"',
            )
        ]
    if spec.task == "classification" and text:
        distinct = column.get("n_unique")
        if distinct is None or distinct > max_classes:
            count = "more than 10000" if distinct is None else str(distinct)
            return [
                errors.field_error(
                    "/target",
                    f"target column {spec.target!r} has {count} distinct values, more than "
                    f"{max_classes} classes (REGFIT_MAX_CLASSES)",
                )
            ]
    return []


def _check_columns(spec: JobSpec, columns: list[dict[str, Any]], max_classes: int) -> None:
    names = [c["name"] for c in columns]
    by_name = {c["name"]: c for c in columns}
    problems = []
    if spec.target not in by_name:
        problems.append(
            errors.field_error(
                "/target", f"column {spec.target!r} is not in the dataset; columns: {names[:50]}"
            )
        )
    else:
        problems.extend(_target_problems(spec, by_name[spec.target], max_classes))
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


def _bound_categories(spec: JobSpec, settings: Settings) -> JobSpec:
    """``spec`` with the one-hot bound filled in from the settings; 422 above it."""
    prep = spec.preprocessing
    if prep.max_categories is None:
        filled = prep.model_copy(update={"max_categories": settings.max_categories})
        return spec.model_copy(update={"preprocessing": filled})
    if prep.max_categories > settings.max_categories:
        message = f"at most {settings.max_categories} (REGFIT_MAX_CATEGORIES)"
        raise errors.InvalidInput(
            f"/preprocessing/max_categories: {message}",
            errors=[errors.field_error("/preprocessing/max_categories", message)],
        )
    return spec


def _check_design(spec: JobSpec, dataset: Dataset, budget: int) -> None:
    """Refuse a job whose design matrix the dataset's column summaries already show to be
    over ``budget`` bytes (a text column's distinct values past the summary's cap count
    as ``max_categories``)."""
    features = spec.features or [c["name"] for c in dataset.columns if c["name"] != spec.target]
    by_name = {c["name"]: c for c in dataset.columns}
    bound = spec.preprocessing.max_categories or 2**31
    n_numeric = 0
    onehot: dict[str, int] = {}
    for name in features:
        column = by_name[name]
        if column.get("kind") != "text":
            n_numeric += 1
        elif spec.preprocessing.categorical == "onehot":
            distinct = column.get("n_unique")
            if distinct is None:  # capped: at least as many as the summary counts
                onehot[name] = bound
            else:
                onehot[name] = min(distinct + (1 if column.get("n_missing") else 0), bound)
    width = n_numeric + sum(onehot.values())
    estimate = design_bytes(dataset.n_rows, width, searched=spec.tuning is not None)
    if estimate <= budget:
        return
    widest = sorted(onehot.items(), key=lambda item: -item[1])[:5]
    named = ", ".join(f"{name!r} ({n} one-hot columns)" for name, n in widest)
    detail = (
        f"the design matrix would take about {estimate} bytes ({dataset.n_rows} rows × "
        f"{width} columns × 8 bytes × the copies a fit holds), over the limit of {budget} "
        "bytes (REGFIT_MAX_DESIGN_BYTES)" + (f"; the widest text columns: {named}" if named else "")
    )
    loc = "/preprocessing/max_categories" if onehot else "/features"
    raise errors.PayloadTooLarge(
        detail,
        errors=[errors.field_error(loc, detail)],
        estimate_bytes=estimate,
        limit_design_bytes=budget,
    )


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


def planned_fits(spec: JobSpec, settings: Settings) -> int:
    """Fits the job will run (candidates × folds, plus the final fit), for progress; 422
    naming the field when the search is over an operator's cap (candidates, trials, fits)."""
    if spec.tuning is None:
        return 1
    tuning = spec.tuning
    # Bayesian trials cost more as they accumulate (each is proposed from all before it);
    # random draws are bounded as candidates.
    if tuning.strategy == "bayesian" and tuning.n_trials > settings.max_trials:
        message = f"{tuning.n_trials} trials; the limit is {settings.max_trials}"
        raise errors.InvalidInput(
            f"the search asks for {message}",
            errors=[errors.field_error("/tuning/n_trials", message)],
        )
    candidates = fitting.planned_candidates(spec)
    if candidates > settings.max_candidates:
        raise errors.InvalidInput(
            f"the search has {candidates} candidates; the limit is {settings.max_candidates}",
            errors=[
                errors.field_error(
                    "/tuning", f"{candidates} candidates > limit {settings.max_candidates}"
                )
            ],
        )
    fits = candidates * tuning.cv.folds
    if fits > settings.max_job_fits:
        message = (
            f"{candidates} candidates × {tuning.cv.folds} folds = {fits} fits; "
            f"the limit is {settings.max_job_fits}"
        )
        raise errors.InvalidInput(
            f"the search needs {message}",
            errors=[errors.field_error("/tuning/cv/folds", message)],
        )
    return fits + 1


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
    spec: JobSpec,
    request: Request,
    session: WriteSession,
    settings: AppSettings,
    executor: AppExecutor,
) -> Response:
    """Queues a training job (a fit, or a cross-validated search) on a dataset."""
    try:
        dataset = datasets.get(session=session, dataset_id=spec.dataset_id)
    except errors.NotFound as exc:
        raise errors.InvalidInput(
            f"dataset {spec.dataset_id!r} does not exist",
            errors=[errors.field_error("/dataset_id", "no dataset with this id")],
        ) from exc
    _check_columns(spec, dataset.columns, settings.max_classes)
    spec = _bound_categories(spec, settings)
    _check_design(spec, dataset, settings.max_design_bytes)
    _check_split(spec, dataset.n_rows)
    total = planned_fits(spec, settings)
    owner = request.scope.get("regfit.key") or jobs.OPEN_OWNER
    jobs.check_active_jobs(session=session, owner=owner, limit=settings.max_active_jobs_per_key)
    job = jobs.create(session=session, spec=spec, executor=executor.name, total=total, owner=owner)
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
