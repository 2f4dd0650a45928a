"""One-hot columns are bounded (REGFIT_MAX_CATEGORIES, preprocessing.max_categories) and a
job's design matrix is estimated before it is built (REGFIT_MAX_DESIGN_BYTES)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import wait_for_job

from service.config import Settings

N_IDS = 15_000


def _id(i: int) -> str:
    return f"user-{i:06d}-{i * 7919 % 100003:06d}"


def _id_csv() -> bytes:
    """The issue's 672 KB CSV: `id` with 15,000 distinct strings, `x`, `y`."""
    lines = ["id,x,y"]
    lines += [f"{_id(i)},{i % 97 / 10},{i % 13 + i % 7 / 3}" for i in range(N_IDS)]
    return ("\n".join(lines) + "\n").encode()


def _upload(client: TestClient) -> dict[str, Any]:
    response = client.post("/v1/datasets", files={"file": ("ids.csv", _id_csv(), "text/csv")})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_fifteen_thousand_ids_fit_within_the_category_bound(client: TestClient) -> None:
    """Before: a worker at 7.2 GB, still fitting after 6 minutes."""
    dataset = _upload(client)
    started = time.perf_counter()
    job = client.post(
        "/v1/jobs",
        json={"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2"}},
    )
    assert job.status_code == 202, job.text
    assert job.json()["spec"]["preprocessing"]["max_categories"] == 100
    done = wait_for_job(client, job.json()["id"], timeout=120)
    elapsed = time.perf_counter() - started
    assert done["status"] == "succeeded", done
    assert elapsed < 30, elapsed
    model = client.get(f"/v1/models/{done['model_id']}").json()
    assert model["preprocessing"]["max_categories"] == 100
    exported = client.get(f"/v1/models/{done['model_id']}/export").json()
    assert exported["categorical"]["infrequent"] == [True]
    assert len(exported["categorical"]["categories"][0]) == 99
    assert exported["feature_names_out"][-1] == "id=<infrequent>"
    # An id never seen, and one grouped as infrequent, both take the infrequent column.
    unseen = client.post(
        f"/v1/models/{done['model_id']}/predict",
        json={"records": [{"id": "nobody", "x": 1.0}, {"id": _id(N_IDS - 1), "x": 1.0}]},
    )
    assert unseen.status_code == 200, unseen.text
    first, second = unseen.json()["predictions"]
    assert first == second


@pytest.fixture
def tight(settings: Settings) -> Iterator[TestClient]:
    from service.main import create_app

    limited = settings.model_copy(update={"max_design_bytes": 10_000_000, "max_categories": 500})
    with TestClient(create_app(limited, start_executor=False)) as client:
        yield client


def test_a_design_over_the_budget_is_refused_at_submit_naming_the_column(
    tight: TestClient,
) -> None:
    dataset = _upload(tight)
    body = {"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2"}}
    refused = tight.post("/v1/jobs", json=body)
    assert refused.status_code == 413, refused.text
    problem = refused.json()
    # 15,000 rows × (1 + 500) columns × 8 bytes × 2 copies.
    assert problem["estimate_bytes"] == 15_000 * 501 * 8 * 2
    assert "'id' (500 one-hot columns)" in problem["detail"]
    assert problem["errors"][0]["loc"] == "/preprocessing/max_categories"
    # A lower bound in the job brings it within budget.
    lower = {**body, "preprocessing": {"max_categories": 20}}
    assert tight.post("/v1/jobs", json=lower).status_code == 202
    dropped = {**body, "preprocessing": {"categorical": "drop"}}
    assert tight.post("/v1/jobs", json=dropped).status_code == 202


def test_max_categories_may_lower_but_not_raise_the_operator_bound(tight: TestClient) -> None:
    dataset = tight.post(
        "/v1/datasets/synthetic", json={"n_samples": 30, "n_features": 2, "random_state": 0}
    ).json()
    body = {"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2"}}
    above = tight.post("/v1/jobs", json={**body, "preprocessing": {"max_categories": 501}})
    assert above.status_code == 422, above.text
    assert above.json()["errors"][0]["loc"] == "/preprocessing/max_categories"
    for bad in ({"max_categories": 1}, {"min_frequency": 1.5}, {"min_frequency": 0}):
        response = tight.post("/v1/jobs", json={**body, "preprocessing": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["errors"][0]["loc"].startswith("/preprocessing/")
