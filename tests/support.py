"""Helpers shared by the API tests (importable as ``support``: tests/ is on sys.path)."""

from __future__ import annotations

import time
from typing import Any, Protocol

TERMINAL = ("succeeded", "failed", "cancelled")


class _Getter(Protocol):
    def get(self, url: str) -> Any: ...


def wait_for_job(
    client: _Getter, job_id: str, *, timeout: float = 60, until: tuple[str, ...] = TERMINAL
) -> dict[str, Any]:
    """Polls ``GET /v1/jobs/{id}`` until the job's status is one of ``until``."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} is {job.get('status')} after {timeout} s: {job}")


def fit_documents(columns: Any, spec: Any, **kwargs: Any) -> Any:
    """Fits ``spec`` with :func:`service.ml.fitting.fit_job` and returns the stored documents
    (portable model, summary, progress) the job runner makes of the result."""
    from service.ml.fitting import fit_job
    from service.models.documents import model_documents

    return model_documents(fit_job(columns, spec, **kwargs), spec)
