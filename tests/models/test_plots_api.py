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


def _texts(svg: bytes) -> str:
    return " ".join(t for t in ET.fromstring(svg).itertext())


def test_path_plot_has_a_panel_per_compared_penalty_and_marks_the_models_alpha(
    client: TestClient, compared: str
) -> None:
    ids = _plot(client, compared, "path")
    assert sorted(i for i in ids if i.startswith("penalty-")) == ["penalty-l1", "penalty-l2"]
    for kind in ("l1", "l2"):
        assert sum(i.startswith(f"path-{kind}-") for i in ids) == PARAMS["n_features"]
    model = client.get(f"/v1/models/{compared}").json()
    own = model["penalty"]["type"]
    other = {"l1": "l2", "l2": "l1"}[own]
    assert "chosen-alpha" in ids and f"best-alpha-{other}" in ids
    path = client.get(f"/v1/models/{compared}/path").json()
    assert path["alpha"] == model["penalty"]["alpha"]
    assert path["compared"][own]["alpha"] == model["penalty"]["alpha"]
    svg = client.get(f"/v1/models/{compared}/plots/path").content
    assert f"{own}: chosen alpha = {model['penalty']['alpha']:.4g}" in _texts(svg)
    best = model["tuning"]["comparison"][other]["best_params"]["alpha"]
    assert f"{other}: its best alpha = {best:.4g}" in _texts(svg)


def test_cv_plot_has_one_curve_per_compared_penalty(client: TestClient, compared: str) -> None:
    ids = _plot(client, compared, "cv")
    assert sorted(i for i in ids if i.startswith("cv-")) == ["cv-l1", "cv-l2"]
    assert "best-alpha" in ids and "one-se-alpha" in ids
    model = client.get(f"/v1/models/{compared}").json()
    svg = client.get(f"/v1/models/{compared}/plots/cv").content
    assert f"1-SE alpha {model['penalty']['alpha']:.4g}" in _texts(svg)


def test_comparison_plot_has_a_bar_per_penalty_and_coefficient(
    client: TestClient, compared: str
) -> None:
    ids = _plot(client, compared, "comparison")
    names = {f"x{j}" for j in range(PARAMS["n_features"])}
    for kind in ("l1", "l2"):
        assert {
            i.removeprefix(f"compare-{kind}-") for i in ids if i.startswith(f"compare-{kind}-")
        } == names


def test_a_random_search_plots_its_candidates_as_points(client: TestClient) -> None:
    model_id = _train(
        client,
        {
            "target": "y",
            "penalty": {"type": "elasticnet"},
            "tuning": {
                "strategy": "random",
                "n_trials": 8,
                "random_state": 0,
                "space": {
                    "alpha": {"low": 1e-3, "high": 1.0, "log": True},
                    "l1_ratio": {"low": 0.1, "high": 0.9},
                },
                "cv": {"folds": 3},
            },
        },
    )
    svg = client.get(f"/v1/models/{model_id}/plots/cv").content
    assert [i for i in _ids(svg) if i.startswith("cv-")] == ["cv-elasticnet"]
    assert "l1_ratio" in _texts(svg)  # the colour bar of the scattered candidates
    root = ET.fromstring(svg)
    group = next(el for el in root.iter() if el.attrib.get("id") == "cv-elasticnet")
    assert sum(1 for el in group.iter() if el.tag.endswith("use")) == 8  # one per candidate
    ids = _plot(client, model_id, "path")
    assert sum(i.startswith("path-") for i in ids) == PARAMS["n_features"]
    path = client.get(f"/v1/models/{model_id}/path").json()
    assert len(path["alphas"]) == 30 and len(path["cv"]["points"]) == 8
    response = client.get(f"/v1/models/{model_id}/plots/comparison")
    assert response.status_code == 404  # nothing was compared


def test_plots_by_registry_reference(client: TestClient, compared: str) -> None:
    response = client.post("/v1/registry", json={"name": "plotted"})
    assert response.status_code == 201, response.text
    response = client.post("/v1/registry/plotted/versions", json={"model_id": compared})
    assert response.status_code == 201, response.text
    response = client.put("/v1/registry/plotted/aliases/champion", json={"version": 1})
    assert response.status_code in (200, 201), response.text
    direct = client.get(f"/v1/models/{compared}/plots/cv").content
    for ref in ("plotted@champion", "plotted/versions/1"):
        response = client.get(f"/v1/models/{ref}/plots/cv")
        assert response.status_code == 200, (ref, response.text)
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.content == direct
    assert client.get("/v1/models/plotted/versions/2/plots/cv").status_code == 404


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
