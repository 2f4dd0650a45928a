"""GET /v1/models/{id}/plots/{kind}: valid SVG with one series per coefficient / penalty."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient
from support import wait_for_job

PARAMS = {"n_samples": 120, "n_features": 8, "noise": 1.0, "random_state": 3}
ALPHAS = [0.01, 0.1, 1.0, 10.0]


def _ids(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)  # raises on invalid XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return [el.attrib["id"] for el in root.iter() if "id" in el.attrib]


def _train(client: TestClient, body: dict[str, object]) -> str:
    response = client.post("/v1/datasets/synthetic", json=PARAMS)
    assert response.status_code == 201, response.text
    response = client.post("/v1/jobs", json={"dataset_id": response.json()["id"], **body})
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    return str(job["model_id"])


def _plot(client: TestClient, model_id: str, kind: str) -> list[str]:
    response = client.get(f"/v1/models/{model_id}/plots/{kind}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    return _ids(response.content)


@pytest.fixture
def compared(client: TestClient) -> str:
    return _train(
        client,
        {
            "target": "y",
            "penalty": {"type": "l1"},
            "tuning": {
                "strategy": "grid",
                "space": {"alpha": ALPHAS, "penalty": ["l1", "l2"]},
                "cv": {"folds": 3},
                "select": "1se",
            },
        },
    )


def test_coefficients_plot_has_fitted_and_unregularized_series(
    client: TestClient, compared: str
) -> None:
    ids = _plot(client, compared, "coefficients")
    names = {f"x{j}" for j in range(PARAMS["n_features"])}
    assert {i.removeprefix("coef-") for i in ids if i.startswith("coef-")} == names
    assert {i.removeprefix("unregularized-") for i in ids if i.startswith("unregularized-")} == (
        names
    )


def test_path_plot_has_one_line_per_coefficient_and_marks_the_chosen_alpha(
    client: TestClient, compared: str
) -> None:
    ids = _plot(client, compared, "path")
    assert sum(i.startswith("path-") for i in ids) == PARAMS["n_features"]
    assert "chosen-alpha" in ids
    model = client.get(f"/v1/models/{compared}").json()
    path = client.get(f"/v1/models/{compared}/path").json()
    assert path["alpha"] == model["penalty"]["alpha"]


def test_cv_plot_has_one_curve_per_compared_penalty(client: TestClient, compared: str) -> None:
    ids = _plot(client, compared, "cv")
    assert sorted(i for i in ids if i.startswith("cv-")) == ["cv-l1", "cv-l2"]
    assert "best-alpha" in ids and "one-se-alpha" in ids


def test_residuals_plot_and_an_untuned_model(client: TestClient) -> None:
    model_id = _train(client, {"target": "y", "penalty": {"type": "l2", "alpha": 0.5}})
    ids = _plot(client, model_id, "residuals")
    assert "residuals" in ids
    assert sum(i.startswith("coef-") for i in _plot(client, model_id, "coefficients")) == 8
    response = client.get(f"/v1/models/{model_id}/plots/cv")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    response = client.get(f"/v1/models/{model_id}/plots/pie")
    assert response.status_code == 422
