"""Job API schemas (the request body is ``service.ml.spec.JobSpec``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from service.tables import Job

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class Progress(BaseModel):
    done: int
    total: int
    message: str | None


class JobOut(BaseModel):
    id: str
    name: str | None
    status: JobStatus
    dataset_id: str
    progress: Progress
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: dict[str, Any] | None
    model_id: str | None
    spec: dict[str, Any]


def job_body(job: Job) -> dict[str, Any]:
    """The JSON body of a job."""
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
        "spec": job.spec,
    }
