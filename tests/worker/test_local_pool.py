"""The local executor's long-lived worker processes: reuse, replacement, recovery."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from fastapi.testclient import TestClient
from support import wait_for_job

from service.config import Settings
from service.worker.local import LocalExecutor


def _executor(client: TestClient) -> LocalExecutor:
    executor = client.app_state["regfit"].executor
    assert isinstance(executor, LocalExecutor)
    return executor


def _worker_pids(client: TestClient, count: int, timeout: float = 30) -> set[int]:
    """The pids of the pool once it has ``count`` live workers."""
    deadline = time.monotonic() + timeout
    while True:
        workers = list(_executor(client)._workers)
        pids = {w.process.pid for w in workers if w.process.is_alive() and w.process.pid}
        if len(pids) == count:
            return pids
        assert time.monotonic() < deadline, f"the pool has {len(pids)} live workers, not {count}"
        time.sleep(0.05)


def _fit(client: TestClient, dataset_id: str, alpha: float) -> dict[str, Any]:
    response = client.post(
        "/v1/jobs",
        json={"dataset_id": dataset_id, "target": "y", "penalty": {"type": "l2", "alpha": alpha}},
    )
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json()["id"], timeout=60)


def _dataset(client: TestClient) -> str:
    response = client.post(
        "/v1/datasets/synthetic", json={"n_samples": 60, "n_features": 4, "random_state": 3}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_workers_outlive_their_jobs(settings: Settings) -> None:
    from service.main import create_app

    with TestClient(create_app(settings.model_copy(update={"workers": 2}))) as client:
        dataset_id = _dataset(client)
        before = _worker_pids(client, 2)
        outcomes = [_fit(client, dataset_id, alpha)["status"] for alpha in (0.1, 1.0, 10.0)]
        assert outcomes == ["succeeded"] * 3
        # The same two processes ran the three jobs; none was started for them.
        assert _worker_pids(client, 2) == before
        assert sum(w.jobs_started for w in _executor(client)._workers) == 3


def test_a_worker_is_replaced_after_worker_max_jobs(settings: Settings) -> None:
    from service.main import create_app

    one_job_each = settings.model_copy(update={"workers": 1, "worker_max_jobs": 2})
    with TestClient(create_app(one_job_each)) as client:
        dataset_id = _dataset(client)
        (first,) = _worker_pids(client, 1)
        assert _fit(client, dataset_id, 0.1)["status"] == "succeeded"
        assert _worker_pids(client, 1) == {first}  # one job: still the same process
        assert _fit(client, dataset_id, 1.0)["status"] == "succeeded"
        # The job reads succeeded as soon as its worker wrote it; the dispatcher retires that
        # worker when the worker's answer arrives, a moment later.
        deadline = time.monotonic() + 30
        while _worker_pids(client, 1) == {first}:
            assert time.monotonic() < deadline, "the worker was not replaced after 2 jobs"
            time.sleep(0.05)
        assert _fit(client, dataset_id, 10.0)["status"] == "succeeded"


def test_an_idle_worker_that_dies_is_replaced(settings: Settings) -> None:
    from service.main import create_app

    with TestClient(create_app(settings.model_copy(update={"workers": 1}))) as client:
        dataset_id = _dataset(client)
        (victim,) = _worker_pids(client, 1)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _worker_pids(client, 1) == {victim}:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.05)
        assert _fit(client, dataset_id, 0.5)["status"] == "succeeded"


def test_stopping_the_service_ends_its_workers(settings: Settings) -> None:
    from service.main import create_app

    with TestClient(create_app(settings.model_copy(update={"workers": 2}))) as client:
        pids = _worker_pids(client, 2)
    deadline = time.monotonic() + 10
    for pid in pids:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, f"worker {pid} outlived the service"
            time.sleep(0.05)
