"""Job API schemas (the request body is ``service.ml.spec.JobSpec``, echoed as ``spec``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.errors import Problem
from service.ml.spec import JobSpec

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class Progress(BaseModel):
    """Fits done of the planned total (candidates × folds + the refit), and what runs now."""

    model_config = ConfigDict(extra="forbid")

    done: int
    total: int
    message: str | None


class JobItem(BaseModel):
    """A job in a list: everything but the echo of its request (``GET /v1/jobs/{id}``)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str | None
    status: JobStatus
    dataset_id: str
    progress: Progress
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: Problem | None = Field(description="Why the job failed (or was cancelled)")
    model_id: str | None = Field(description="The model, once the job succeeded")


class JobOut(JobItem):
    """A job, with its request as validated (canonical penalty type, defaults filled in)."""

    spec: JobSpec


class JobPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[JobItem]
    total: int
    limit: int
    offset: int
