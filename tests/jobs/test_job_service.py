"""Job state transitions the Celery executor relies on: who may claim a delivered message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from service.config import Settings
from service.db import Database, utcnow
from service.jobs import service as jobs
from service.ml.spec import JobSpec
from service.models.documents import ModelDocuments
from service.tables import Job, Model
from service.worker import runner

pytestmark = pytest.mark.backends("sqlite", "postgres")

DEAD_PID = 2**22 + 12345


def _job(db: Database, **state: object) -> str:
    spec = JobSpec.model_validate({"dataset_id": "ds_x", "target": "y", "penalty": {"type": "l2"}})
    with db.session() as session:
        job = jobs.create(session=session, spec=spec, executor="celery", total=1)
        for name, value in state.items():
            setattr(job, name, value)
        return job.id


def _claim(db: Database, job_id: str, *, max_attempts: int = 3, gone: bool = False) -> int | None:
    with db.session() as session:
        return jobs.claim_delivery(
            session=session,
            job_id=job_id,
            pid=4242,
            stale_before=jobs.stale_cutoff(30),
            max_attempts=max_attempts,
            worker_gone=lambda job: gone,
        )


def _state(db: Database, job_id: str) -> Job:
    with db.session(readonly=True) as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)  # loaded attributes stay readable after the session ends
        return job


def test_a_queued_job_is_claimed_once(db: Database) -> None:
    job_id = _job(db)
    assert _claim(db, job_id) == 1
    assert _claim(db, job_id) is None  # the second message of a duplicate send
    job = _state(db, job_id)
    assert (job.status, job.attempts, job.worker_pid) == ("running", 1, 4242)


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_redelivered_finished_job_is_ignored(db: Database, status: str) -> None:
    job_id = _job(db, status=status, attempts=1)
    assert _claim(db, job_id, gone=True) is None
    assert (_state(db, job_id).status, _state(db, job_id).attempts) == (status, 1)


def test_a_healthy_running_job_is_left_to_its_worker(db: Database) -> None:
    job_id = _job(db, status="running", attempts=1, heartbeat_at=utcnow())
    assert _claim(db, job_id) is None
    assert _state(db, job_id).attempts == 1


def test_a_job_whose_heartbeat_stopped_is_taken_over(db: Database) -> None:
    job_id = _job(db, status="running", attempts=1, heartbeat_at=utcnow() - timedelta(minutes=5))
    assert _claim(db, job_id) == 2
    assert _state(db, job_id).status == "running"


def test_a_job_whose_worker_process_died_is_taken_over_at_once(db: Database) -> None:
    job_id = _job(
        db,
        status="running",
        attempts=1,
        heartbeat_at=utcnow(),
        worker_host=jobs.HOSTNAME,
        worker_pid=DEAD_PID,
    )
    assert _claim(db, job_id, gone=True) == 2


def test_a_lost_job_out_of_attempts_fails_with_the_reason(db: Database) -> None:
    old = utcnow() - timedelta(minutes=5)
    job_id = _job(db, status="running", attempts=3, heartbeat_at=old)
    assert _claim(db, job_id, max_attempts=3) is None
    job = _state(db, job_id)
    assert job.status == "failed" and job.error is not None
    assert "gave up after 3 attempts" in job.error["detail"]


def test_dispatch_marks_only_the_attempt_that_was_sent(db: Database) -> None:
    job_id = _job(db)
    with db.session() as session:
        assert jobs.undispatched(session=session, executor="celery", limit=10) == [(job_id, 0)]
        assert not jobs.mark_dispatched(session=session, job_id=job_id, attempts=1)
        assert jobs.mark_dispatched(session=session, job_id=job_id, attempts=0)
        assert jobs.undispatched(session=session, executor="celery", limit=10) == []


def test_an_undispatched_job_fails_with_the_reason(db: Database) -> None:
    job_id = _job(db)
    with db.session() as session:
        assert jobs.fail_undispatched(
            session=session, job_id=job_id, attempts=0, reason="broker unreachable"
        )
    job = _state(db, job_id)
    assert job.status == "failed" and job.error is not None
    assert job.error["status"] == 503 and job.error["detail"] == "broker unreachable"


def _outcome() -> ModelDocuments:
    summary = {"fit_seconds": 0.5, "n_nonzero": 1}
    return ModelDocuments(
        portable={"format": "regfit.linear.v1"}, summary=summary, progress=(3, 3, "done")
    )


def test_succeed_writes_the_model_with_the_transition_once(db: Database) -> None:
    job_id = _job(db)
    attempt = _claim(db, job_id)
    assert attempt == 1
    spec = JobSpec.model_validate({"dataset_id": "ds_x", "target": "y", "penalty": {"type": "l2"}})
    with db.session() as session:
        model = jobs.succeed(
            session=session, job_id=job_id, attempt=attempt, spec=spec, outcome=_outcome()
        )
        assert model is not None
        model_id = model.id
    job = _state(db, job_id)
    assert (job.status, job.model_id, job.progress_done, job.progress_message) == (
        "succeeded",
        model_id,
        3,
        "done",
    )
    with db.session() as session:  # a second success of the same attempt writes nothing
        again = jobs.succeed(
            session=session, job_id=job_id, attempt=attempt, spec=spec, outcome=_outcome()
        )
        assert again is None
    with db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Model)) == 1


def test_a_crashed_job_reports_no_traceback(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's log has the traceback; the job's error (a client's view) never does."""
    job_id = _job(db)
    attempt = _claim(db, job_id)
    assert attempt is not None

    def crash(**_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(runner.datasets, "get", crash)  # an unexpected error inside the attempt
    assert runner.execute(job_id, attempt, db=db, settings=settings) == "failed"
    error = _state(db, job_id).error
    assert error is not None and "traceback" not in error
    assert error["detail"] == "internal error while training: RuntimeError: boom"
    assert (error["title"], error["status"]) == ("Training crashed", 500)
    assert error["type"].endswith("/internal")
