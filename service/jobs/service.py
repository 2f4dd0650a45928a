"""Job state transitions. The jobs table is the durable queue; every transition is one
conditional UPDATE, so two processes can never both claim or both finish a job."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from service import errors
from service.db import utcnow
from service.jobs.schemas import TERMINAL_STATES
from service.ml.spec import JobSpec
from service.models import service as models
from service.models.documents import ModelDocuments
from service.tables import Job, Model

HOSTNAME = socket.gethostname()


def new_id() -> str:
    return "job_" + uuid.uuid4().hex


OPEN_OWNER = "open"
# A caller over its active-job cap is told to come back after about this long.
RETRY_AFTER_SECONDS = 30


def check_active_jobs(*, session: Session, owner: str, limit: int) -> None:
    """429 when ``owner`` already has ``limit`` queued or running jobs."""
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.owner == owner, Job.status.in_(("queued", "running")))
    )
    if (active or 0) >= limit:
        raise errors.TooManyRequests(
            f"this API key has {active} queued or running jobs, the limit; submit more when "
            "some have finished (or cancel some)",
            limit_active_jobs=limit,
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )


def create(
    *, session: Session, spec: JobSpec, executor: str, total: int, owner: str | None = None
) -> Job:
    """Creates a queued job for ``spec``, submitted by ``owner``."""
    job = Job(
        id=new_id(),
        owner=owner,
        name=spec.name,
        dataset_id=spec.dataset_id,
        status="queued",
        spec=spec.model_dump(mode="json", exclude_none=False),
        progress_done=0,
        progress_total=total,
        progress_message="queued",
        attempts=0,
        executor=executor,
        dispatched=False,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def get(*, session: Session, job_id: str) -> Job:
    """Gets a job by its id."""
    job = session.get(Job, job_id)
    if job is None:
        raise errors.NotFound(f"job {job_id!r} does not exist")
    return job


def list_page(
    *, session: Session, limit: int, offset: int, status: str | None = None
) -> tuple[list[Job], int]:
    """Lists jobs, newest first, without loading their specs (a list item leaves them out)."""
    query = select(Job).options(defer(Job.spec))
    count = select(func.count()).select_from(Job)
    if status is not None:
        query = query.where(Job.status == status)
        count = count.where(Job.status == status)
    rows = session.scalars(
        query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), int(session.scalar(count) or 0)


def cancel(*, session: Session, job_id: str) -> Job:
    """Marks a queued or running job cancelled (its executor then stops the process)."""
    job = get(session=session, job_id=job_id)
    if job.status in TERMINAL_STATES:
        raise errors.Conflict(
            f"job {job_id!r} is already {job.status}; only queued or running jobs can be cancelled",
            job_status=job.status,
        )
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(("queued", "running")))
        .values(status="cancelled", finished_at=now, progress_message="cancelled")
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        session.refresh(job)
        raise errors.Conflict(f"job {job_id!r} is already {job.status}", job_status=job.status)
    session.flush()
    session.refresh(job)
    return job


def claim(*, session: Session, job_id: str, pid: int | None = None) -> int | None:
    """Moves ``job_id`` from queued to running; returns the new attempt number or None."""
    return _claim_where(session=session, job_id=job_id, pid=pid, condition=Job.status == "queued")


def next_queued(*, session: Session, executor: str, limit: int) -> list[str]:
    """The oldest queued job ids for ``executor``."""
    rows = session.scalars(
        select(Job.id)
        .where(Job.status == "queued", Job.executor == executor)
        .order_by(Job.created_at, Job.id)
        .limit(limit)
    ).all()
    return list(rows)


def heartbeat(*, session: Session, job_ids: list[str]) -> None:
    """Refreshes the heartbeat of running jobs this process owns."""
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.status == "running")
            .values(heartbeat_at=utcnow())
        )


def statuses(*, session: Session, job_ids: list[str]) -> dict[str, tuple[str, int]]:
    """Status and attempt of each job."""
    if not job_ids:
        return {}
    rows = session.execute(select(Job.id, Job.status, Job.attempts).where(Job.id.in_(job_ids)))
    return {row.id: (row.status, row.attempts) for row in rows}


def set_progress(
    *, session: Session, job_id: str, attempt: int, done: int, total: int, message: str
) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.attempts == attempt)
        .values(
            progress_done=done,
            progress_total=total,
            progress_message=message[:255],
            heartbeat_at=utcnow(),
        )
    )


def succeed(
    *, session: Session, job_id: str, attempt: int, spec: JobSpec, outcome: ModelDocuments
) -> Model | None:
    """Marks a running job succeeded and stores its model, in the caller's transaction.

    Returns None (and writes nothing) when the job is no longer running at ``attempt``;
    ``models.job_id`` is unique, so no attempt can ever leave a second model.
    """
    model = models.build_for_job(
        model_id=models.new_id(), job_id=job_id, spec=spec, outcome=outcome
    )
    done, total, message = outcome.progress
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.attempts == attempt)
        .values(
            status="succeeded",
            model_id=model.id,
            finished_at=model.created_at,
            progress_done=done,
            progress_total=total,
            progress_message=message[:255],
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.add(model)
    session.flush()
    return model


def fail(*, session: Session, job_id: str, attempt: int | None, problem: dict[str, Any]) -> bool:
    """Marks a running job failed with ``problem``; False if it was no longer running."""
    query = update(Job).where(Job.id == job_id, Job.status.in_(("running", "queued")))
    if attempt is not None:
        query = query.where(Job.attempts == attempt)
    result = session.execute(
        query.values(
            status="failed", error=problem, finished_at=utcnow(), progress_message="failed"
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def requeue_or_fail(
    *, session: Session, job_id: str, attempt: int, reason: str, max_attempts: int
) -> str:
    """A job whose worker died: back to the queue, or failed once attempts are used up."""
    if attempt >= max_attempts:
        problem = errors.RegfitError(
            f"{reason}; gave up after {attempt} attempts",
            status=500,
            title="Worker lost",
            slug="worker-lost",
        ).problem()
        fail(session=session, job_id=job_id, attempt=attempt, problem=problem)
        return "failed"
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.attempts == attempt)
        .values(
            status="queued",
            started_at=None,
            worker_pid=None,
            heartbeat_at=None,
            dispatched=False,
            progress_done=0,
            progress_message=f"re-queued: {reason}"[:255],
        )
    )
    return "queued"


def recover_lost(
    *, session: Session, lost: Iterable[Job], reason: str, max_attempts: int
) -> list[tuple[str, int, str]]:
    """Re-queues (or fails) each job whose worker is gone; returns (id, attempt, outcome)."""
    return [
        (
            job.id,
            job.attempts,
            requeue_or_fail(
                session=session,
                job_id=job.id,
                attempt=job.attempts,
                reason=reason,
                max_attempts=max_attempts,
            ),
        )
        for job in lost
    ]


def stale_running(*, session: Session, executor: str, older_than: datetime) -> list[Job]:
    """Running jobs whose heartbeat stopped before ``older_than``."""
    return list(
        session.scalars(
            select(Job).where(
                Job.status == "running",
                Job.executor == executor,
                (Job.heartbeat_at.is_(None)) | (Job.heartbeat_at < older_than),
            )
        ).all()
    )


def running_on_host(*, session: Session, executor: str) -> list[Job]:
    return list(
        session.scalars(
            select(Job).where(
                Job.status == "running", Job.executor == executor, Job.worker_host == HOSTNAME
            )
        ).all()
    )


def stale_cutoff(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


# -- Celery executor: deliveries, heartbeats, dispatch ------------------------------------


def claim_delivery(
    *,
    session: Session,
    job_id: str,
    pid: int,
    stale_before: datetime,
    max_attempts: int,
    worker_gone: Callable[[Job], bool],
) -> int | None:
    """Claims a job for a delivered ``run_job`` message; returns the attempt, or None.

    A delivery may start a queued job, or take over a running one whose worker is gone (its
    heartbeat is older than ``stale_before``, or ``worker_gone(job)`` says so): that is a
    redelivery after a worker died. A job that is finished, cancelled or healthily running
    elsewhere is left alone. A job whose attempts are used up is failed with the reason.
    """
    claimable = (Job.attempts < max_attempts) & (
        (Job.status == "queued")
        | (
            (Job.status == "running")
            & ((Job.heartbeat_at.is_(None)) | (Job.heartbeat_at < stale_before))
        )
    )
    attempt = _claim_where(session=session, job_id=job_id, pid=pid, condition=claimable)
    if attempt is not None:
        return attempt
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status != "running":
        return None
    stale = job.heartbeat_at is None or job.heartbeat_at < stale_before
    if not stale and not worker_gone(job):
        return None
    if job.attempts >= max_attempts:
        requeue_or_fail(
            session=session,
            job_id=job_id,
            attempt=job.attempts,
            reason="its worker was lost",
            max_attempts=max_attempts,
        )
        return None
    taken_over = (Job.status == "running") & (Job.attempts == job.attempts)
    return _claim_where(session=session, job_id=job_id, pid=pid, condition=taken_over)


def _claim_where(*, session: Session, job_id: str, pid: int | None, condition: Any) -> int | None:
    """Moves ``job_id`` to running (a new attempt) where ``condition`` holds."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, condition)
        .values(
            status="running",
            attempts=Job.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            worker_host=HOSTNAME,
            worker_pid=pid,
            progress_done=0,
            progress_message="starting",
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    attempts = session.scalar(select(Job.attempts).where(Job.id == job_id))
    return int(attempts) if attempts is not None else None


def heartbeat_attempt(*, session: Session, job_id: str, attempt: int) -> bool:
    """Refreshes the heartbeat of one attempt; False once that attempt no longer runs."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.attempts == attempt)
        .values(heartbeat_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def undispatched(*, session: Session, executor: str, limit: int) -> list[tuple[str, int]]:
    """Queued jobs whose message has not reached the broker yet: (id, attempts), oldest first."""
    rows = session.execute(
        select(Job.id, Job.attempts)
        .where(Job.status == "queued", Job.executor == executor, Job.dispatched.is_(False))
        .order_by(Job.created_at, Job.id)
        .limit(limit)
    ).all()
    return [(row.id, row.attempts) for row in rows]


def mark_dispatched(*, session: Session, job_id: str, attempts: int) -> bool:
    """Records that the broker accepted the message for the job still queued at ``attempts``."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued", Job.attempts == attempts)
        .values(dispatched=True)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fail_undispatched(*, session: Session, job_id: str, attempts: int, reason: str) -> bool:
    """Fails a queued job whose message could not be handed to the broker in time."""
    problem = errors.ServiceUnavailable(
        reason, title="Job could not be enqueued", slug="enqueue"
    ).problem()
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == "queued",
            Job.attempts == attempts,
            Job.dispatched.is_(False),
        )
        .values(status="failed", error=problem, finished_at=utcnow(), progress_message="failed")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def time_limit_problem(limit_seconds: float) -> dict[str, Any]:
    """The error of a job stopped by ``REGFIT_JOB_TIME_LIMIT_SECONDS``."""
    detail = f"time limit of {limit_seconds:g} s exceeded"
    return errors.RegfitError(
        detail, status=504, title="Job time limit exceeded", slug="time-limit"
    ).problem()
