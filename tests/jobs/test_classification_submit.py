"""A classification target is checked at submit: a text or boolean target needs
``task: "classification"``, and a classifier's target has at most REGFIT_MAX_CLASSES values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings


def _csv(n_labels: int) -> bytes:
    lines = ["x,flag,label"]
    lines += [f"{i / 10},{'true' if i % 2 else 'false'},class-{i % n_labels}" for i in range(60)]
    return ("\n".join(lines) + "\n").encode()


def _upload(client: TestClient, n_labels: int) -> str:
    response = client.post("/v1/datasets", files={"file": ("c.csv", _csv(n_labels), "text/csv")})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def few_classes_client(settings: Settings) -> Iterator[TestClient]:
    from service.main import create_app

    with TestClient(create_app(settings.model_copy(update={"max_classes": 3}))) as client:
        yield client


@pytest.mark.parametrize("target", ["label", "flag"])
def test_a_label_target_with_the_default_task_suggests_classification(
    client: TestClient, target: str
) -> None:
    dataset_id = _upload(client, 3)
    response = client.post(
        "/v1/jobs", json={"dataset_id": dataset_id, "target": target, "penalty": {"type": "l2"}}
    )
    assert response.status_code == 422, response.text
    problem: dict[str, Any] = response.json()
    assert problem["errors"][0]["loc"] == "/target"
    assert '"task": "classification"' in problem["detail"]


def test_more_classes_than_the_limit_names_the_count(few_classes_client: TestClient) -> None:
    dataset_id = _upload(few_classes_client, 5)
    response = few_classes_client.post(
        "/v1/jobs",
        json={
            "dataset_id": dataset_id,
            "target": "label",
            "task": "classification",
            "penalty": {"type": "l2", "C": 1.0},
        },
    )
    assert response.status_code == 422, response.text
    assert (
        "5 distinct values, more than 3 classes (REGFIT_MAX_CLASSES)" in response.json()["detail"]
    )


def test_a_classification_job_is_queued(client: TestClient) -> None:
    dataset_id = _upload(client, 3)
    response = client.post(
        "/v1/jobs",
        json={
            "dataset_id": dataset_id,
            "target": "label",
            "task": "classification",
            "penalty": {"type": "l2", "C": 1.0},
        },
    )
    assert response.status_code == 202, response.text
    assert response.json()["spec"]["task"] == "classification"
