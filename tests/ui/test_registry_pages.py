"""The dashboard's registry page: a name's versions, each linked to its model page and to
its plots by reference (``/ui/models/{name}/versions/{n}/plots/{kind}``)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from support import wait_for_job


def test_a_registered_names_page_links_its_versions_plots(client: TestClient) -> None:
    dataset = client.post("/v1/datasets/synthetic", json={"n_samples": 80, "n_features": 4})
    assert dataset.status_code == 201, dataset.text
    body = {
        "dataset_id": dataset.json()["id"],
        "target": "y",
        "penalty": {"type": "l1"},
        "tuning": {
            "space": {"alpha": [0.01, 0.1, 1.0], "penalty": ["l1", "l2"]},
            "cv": {"folds": 3},
        },
    }
    job = wait_for_job(client, client.post("/v1/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    model_id = job["model_id"]
    assert client.post("/v1/registry", json={"name": "houses"}).status_code == 201
    assert (
        client.post("/v1/registry/houses/versions", json={"model_id": model_id}).status_code == 201
    )
    assert (
        client.put("/v1/registry/houses/aliases/champion", json={"version": 1}).status_code == 200
    )

    home = client.get("/ui")
    assert home.status_code == 200 and 'href="/ui/registry/houses"' in home.text
    page = client.get("/ui/registry/houses")
    assert page.status_code == 200
    assert f'href="/ui/models/{model_id}"' in page.text and "champion" in page.text
    links = re.findall(r'class="plot-link" href="([^"]+)"', page.text)
    assert sorted(links) == sorted(
        f"/ui/models/houses/versions/1/plots/{kind}"
        for kind in ("coefficients", "path", "cv", "residuals", "comparison")
    )
    for link in links:
        plot = client.get(link)
        assert plot.status_code == 200, (link, plot.text)
        assert plot.headers["content-type"].startswith("image/svg+xml")
    assert "nobody" in client.get("/ui/registry/nobody").text  # the API's problem, shown
    # The model page shows the comparison plot of a comparison.
    assert f"/ui/models/{model_id}/plots/comparison" in client.get(f"/ui/models/{model_id}").text
