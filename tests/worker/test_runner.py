"""The runner's own deadline: an attempt that ends after it records no model."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from service.config import Settings
from service.db import Database
from service.jobs import service as jobs
from service.main import create_app
from service.worker import runner


def _claimed_job(settings: Settings, db: Database) -> tuple[str, int]:
    with TestClient(create_app(settings, start_executor=False)) as client:
        dataset = client.post(
            "/v1/datasets/synthetic", json={"n_samples": 40, "n_features": 3, "random_state": 0}
        ).json()
        job = client.post(
            "/v1/jobs", json={"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2"}}
        ).json()
    with db.session() as session:
        attempt = jobs.claim(session=session, job_id=job["id"], pid=1)
    assert attempt == 1
    return str(job["id"]), attempt


def test_an_attempt_past_its_deadline_fails_with_the_time_limit(
    settings: Settings, db: Database
) -> None:
    job_id, attempt = _claimed_job(settings, db)
    status = runner.execute(job_id, attempt, db=db, settings=settings, deadline=time.time() - 0.1)
    assert status == "failed"
    with db.session(readonly=True) as session:
        job = jobs.get(session=session, job_id=job_id)
        assert job.model_id is None
        assert job.error is not None and "time limit" in job.error["detail"]
        assert job.error["status"] == 504


def test_an_attempt_within_its_deadline_succeeds(settings: Settings, db: Database) -> None:
    job_id, attempt = _claimed_job(settings, db)
    status = runner.execute(job_id, attempt, db=db, settings=settings, deadline=time.time() + 60)
    assert status == "succeeded"
    with db.session(readonly=True) as session:
        assert jobs.get(session=session, job_id=job_id).model_id is not None
