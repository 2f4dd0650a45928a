"""Jobs that would occupy a worker for an hour are refused at submit: solver bounds,
operator caps on a search's work, and queued + running jobs per API key (429)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.config import Settings

TRAINER_A = "trainer-key-aaaaaaaaaaaaaaaa"
TRAINER_B = "trainer-key-bbbbbbbbbbbbbbbb"


@pytest.fixture
def capped(settings: Settings) -> Iterator[TestClient]:
    """No executor running (jobs stay queued), small caps."""
    from service.main import create_app

    limited = settings.model_copy(
        update={"max_job_fits": 100, "max_trials": 500, "max_active_jobs_per_key": 2}
    )
    with TestClient(create_app(limited, start_executor=False)) as client:
        yield client


def _dataset(client: TestClient, headers: dict[str, str] | None = None) -> str:
    response = client.post(
        "/v1/datasets/synthetic",
        json={"n_samples": 50, "n_features": 3, "random_state": 0},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _submit(client: TestClient, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return client.post("/v1/jobs", json=body, headers=headers)


def _assert_422_at(response: Any, loc: str, *words: str) -> None:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["loc"] == loc, problem
    for word in words:
        assert word in problem["detail"] or word in problem["errors"][0]["msg"], problem


@pytest.mark.parametrize(
    ("penalty", "loc", "words"),
    [
        ({"type": "l1", "max_iter": 10**9}, "/penalty/max_iter", ("1000000",)),
        ({"type": "l1", "tol": 1e-300}, "/penalty/tol", ("at least 1e-14",)),
    ],
)
def test_solver_parameters_are_bounded(
    capped: TestClient, penalty: dict[str, Any], loc: str, words: tuple[str, ...]
) -> None:
    """The issue's `max_iter: 1e9, tol: 1e-300`."""
    response = _submit(capped, {"dataset_id": _dataset(capped), "target": "y", "penalty": penalty})
    _assert_422_at(response, loc, *words)


def test_a_search_is_bounded_by_trials_and_by_fits(capped: TestClient) -> None:
    dataset_id = _dataset(capped)
    base = {"dataset_id": dataset_id, "target": "y", "penalty": {"type": "l1"}}
    bayesian = {
        "strategy": "bayesian",
        "space": {"alpha": {"low": 1e-4, "high": 10, "log": True}},
        "n_trials": 10_000,
    }
    _assert_422_at(
        _submit(capped, {**base, "tuning": bayesian}), "/tuning/n_trials", "10000 trials", "500"
    )
    grid = {"space": {"alpha": [0.001 * 2**i for i in range(30)]}, "cv": {"folds": 5}}
    _assert_422_at(_submit(capped, {**base, "tuning": grid}), "/tuning/cv/folds", "150 fits", "100")
    within = {"space": {"alpha": [0.1, 1.0]}, "cv": {"folds": 5}}
    assert _submit(capped, {**base, "tuning": within}).status_code == 202


def test_active_jobs_per_caller_are_capped_with_retry_after(capped: TestClient) -> None:
    """Open mode: every caller is one principal."""
    body = {"dataset_id": _dataset(capped), "target": "y", "penalty": {"type": "l2"}}
    first, second = _submit(capped, body), _submit(capped, body)
    assert first.status_code == second.status_code == 202
    refused = _submit(capped, body)
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["retry-after"]) > 0
    assert refused.json()["limit_active_jobs"] == 2
    assert capped.get("/v1/jobs").json()["total"] == 2  # nothing half-created
    # A finished (here: cancelled) job no longer counts.
    assert capped.post(f"/v1/jobs/{first.json()['id']}/cancel").status_code == 200
    assert _submit(capped, body).status_code == 202


def test_each_api_key_has_its_own_cap(settings: Settings) -> None:
    from service.main import create_app

    keyed = settings.model_copy(
        update={
            "auth": "on",
            "api_keys": SecretStr(f"trainer:{TRAINER_A},trainer:{TRAINER_B}"),
            "max_active_jobs_per_key": 1,
        }
    )
    a = {"Authorization": f"Bearer {TRAINER_A}"}
    b = {"Authorization": f"Bearer {TRAINER_B}"}
    with TestClient(create_app(keyed, start_executor=False)) as client:
        body = {"dataset_id": _dataset(client, a), "target": "y", "penalty": {"type": "l2"}}
        assert _submit(client, body, a).status_code == 202
        assert _submit(client, body, a).status_code == 429
        assert _submit(client, body, b).status_code == 202
        assert _submit(client, body, b).status_code == 429
