"""Jobs through the HTTP API with the real embedded executor: fit, cancel, limits, recovery."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import make_regression
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import select
from support import TERMINAL, wait_for_job

from service.config import Settings
from service.db import Database, utcnow
from service.jobs import service as jobs
from service.tables import Job, Model

pytestmark = pytest.mark.backends("sqlite", "postgres")


def synthetic(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.post("/v1/datasets/synthetic", json=params)
    assert response.status_code == 201, response.text
    return response.json()


def wait(
    client: TestClient, job_id: str, timeout: float = 60, until: tuple[str, ...] = TERMINAL
) -> dict[str, Any]:
    return wait_for_job(client, job_id, timeout=timeout, until=until)


def submit(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()


SEED_PARAMS = {"n_samples": 100, "n_features": 20, "noise": 0.1, "random_state": 42}


@pytest.mark.parametrize(
    ("penalty", "estimator"),
    [
        ({"type": "l1", "alpha": 0.1}, Lasso(alpha=0.1)),
        ({"type": "lasso", "alpha": 0.5}, Lasso(alpha=0.5)),
        ({"type": "l2", "alpha": 0.1}, Ridge(alpha=0.1)),
        (
            {"type": "elasticnet", "alpha": 0.2, "l1_ratio": 0.3},
            ElasticNet(alpha=0.2, l1_ratio=0.3),
        ),
    ],
)
def test_fit_matches_sklearn_pipeline(
    client: TestClient, penalty: dict[str, Any], estimator: Any
) -> None:
    dataset = synthetic(client, **SEED_PARAMS)
    job = submit(client, {"dataset_id": dataset["id"], "target": "y", "penalty": penalty})
    assert job["status"] == "queued" and job["spec"]["penalty"]["alpha"] == penalty["alpha"]
    done = wait(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["started_at"] and done["finished_at"] and done["model_id"]

    X, y = make_regression(**SEED_PARAMS)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    reference = make_pipeline(StandardScaler(), estimator).fit(X_train, y_train)
    model = client.get(f"/v1/models/{done['model_id']}").json()
    names = [f"x{i}" for i in range(20)]
    assert model["features"] == names
    coef = np.array([model["coefficients"]["scaled"][n] for n in names])
    np.testing.assert_allclose(coef, reference[-1].coef_, rtol=1e-9, atol=1e-12)
    assert model["metrics"]["test"]["r2"] == pytest.approx(
        reference.score(X_test, y_test), rel=1e-9
    )
    predictions = client.post(
        f"/v1/models/{model['id']}/predict", json={"rows": X_test.tolist()}
    ).json()
    np.testing.assert_allclose(predictions["predictions"], reference.predict(X_test), rtol=1e-9)


def test_lambda_form_is_converted_and_echoed(client: TestClient) -> None:
    dataset = synthetic(client, **SEED_PARAMS)
    job = submit(
        client,
        {"dataset_id": dataset["id"], "target": "y", "penalty": {"lambda1": 0.4, "lambda2": 0.1}},
    )
    done = wait(client, job["id"])
    model = client.get(f"/v1/models/{done['model_id']}").json()
    penalty = model["penalty"]
    # J = MSE + λ1·|θ|₁ + λ2·|θ|² is ElasticNet with α = λ1/2 + λ2 and ρ = λ1 / (λ1 + 2λ2).
    assert penalty["type"] == "elasticnet"
    assert penalty["alpha"] == pytest.approx(0.3) and penalty["l1_ratio"] == pytest.approx(
        0.4 / 0.6
    )
    assert penalty["lambda1"] == pytest.approx(0.4) and penalty["lambda2"] == pytest.approx(0.1)


def test_job_listing_is_newest_first_and_paged(client: TestClient) -> None:
    dataset = synthetic(client, n_samples=50, n_features=3, random_state=0)
    ids = [
        submit(
            client,
            {"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2", "alpha": a}},
        )["id"]
        for a in (0.1, 1.0, 10.0)
    ]
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert page["total"] == 3 and [j["id"] for j in page["items"]] == ids[::-1][:2]
    assert [j["id"] for j in client.get("/v1/jobs", params={"offset": 2}).json()["items"]] == ids[
        :1
    ]
    for job_id in ids:
        wait(client, job_id)
    models = client.get("/v1/models").json()
    assert models["total"] == 3


# An ill-conditioned design (effective rank 3) with a tiny alpha and tolerance: coordinate
# descent needs millions of sweeps (~0.2 ms each); max_iter stops it at the bound of a million
# (over three minutes), so the fit runs until it is stopped.
SLOW_DATA = {
    "n_samples": 2000,
    "n_features": 300,
    "effective_rank": 3,
    "noise": 1.0,
    "random_state": 0,
}
SLOW_FIT = {"type": "l1", "alpha": 1e-7, "tol": 1e-14, "max_iter": 1_000_000}


def test_cancel_running_job_frees_the_worker(settings: Settings) -> None:
    from service.main import create_app

    one_worker = settings.model_copy(update={"workers": 1})
    with TestClient(create_app(one_worker)) as client:
        big = synthetic(client, **SLOW_DATA)
        job = submit(client, {"dataset_id": big["id"], "target": "y", "penalty": SLOW_FIT})
        wait(client, job["id"], until=("running",))
        pid = None
        for _ in range(50):
            pid = _worker_pid(client, job["id"])
            if pid:
                break
            time.sleep(0.1)
        started = time.monotonic()
        cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        # The one worker slot is free again: a small job runs to the end.
        small = synthetic(client, n_samples=50, n_features=3, random_state=1)
        follow = submit(
            client, {"dataset_id": small["id"], "target": "y", "penalty": {"type": "l2"}}
        )
        assert wait(client, follow["id"], timeout=30)["status"] == "succeeded"
        assert time.monotonic() - started < 15
        assert pid is not None and not _alive(pid)
        final = client.get(f"/v1/jobs/{job['id']}").json()
        assert final["status"] == "cancelled" and final["model_id"] is None
        again = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert again.status_code == 409 and again.json()["status"] == 409


def _worker_pid(client: TestClient, job_id: str) -> int | None:
    executor = client.app_state["regfit"].executor
    run = executor._running.get(job_id)
    return run.process.pid if run is not None else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_time_limit_fails_the_job(settings: Settings) -> None:
    from service.main import create_app

    limited = settings.model_copy(update={"workers": 1, "job_time_limit_seconds": 1.0})
    with TestClient(create_app(limited)) as client:
        big = synthetic(client, **SLOW_DATA)
        job = submit(client, {"dataset_id": big["id"], "target": "y", "penalty": SLOW_FIT})
        done = wait(client, job["id"], timeout=30)
        assert done["status"] == "failed"
        assert "time limit" in done["error"]["detail"]


def _orphan(db: Database, dataset_id: str, attempts: int) -> str:
    """A job left running by a process that no longer exists."""
    from service.ml.spec import JobSpec

    spec = JobSpec.model_validate(
        {"dataset_id": dataset_id, "target": "y", "penalty": {"type": "l2"}}
    )
    with db.session() as session:
        job = jobs.create(session=session, spec=spec, executor="local", total=1)
        job.status, job.attempts, job.started_at = "running", attempts, utcnow()
        job.worker_host, job.worker_pid, job.heartbeat_at = jobs.HOSTNAME, 2**22 + 12345, utcnow()
        return job.id


def test_restart_requeues_job_of_a_dead_worker(settings: Settings, db: Database) -> None:
    from service.main import create_app

    with TestClient(create_app(settings, start_executor=False)) as client:
        dataset = synthetic(client, n_samples=60, n_features=4, random_state=3)
    requeued = _orphan(db, dataset["id"], attempts=1)
    exhausted = _orphan(db, dataset["id"], attempts=settings.job_max_attempts)
    with TestClient(create_app(settings)) as client:
        done = wait(client, requeued)
        assert done["status"] == "succeeded" and done["attempts"] == 2
        failed = client.get(f"/v1/jobs/{exhausted}").json()
        assert failed["status"] == "failed"
        assert "worker process died" in failed["error"]["detail"]
    with db.session(readonly=True) as session:
        assert session.scalars(select(Model.job_id)).all() == [requeued]
        assert session.get(Job, exhausted).model_id is None  # type: ignore[union-attr]
