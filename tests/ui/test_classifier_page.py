"""The dashboard trains a classifier from its job form and shows its metrics, confusion
matrices and plots on the model page."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris
from support import wait_for_job


def test_job_form_trains_a_classifier_and_the_model_page_shows_it(client: TestClient) -> None:
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    rows = [[*map(float, x), label] for x, label in zip(X, names, strict=True)]
    dataset = client.post(
        "/v1/datasets",
        json={"name": "iris", "columns": ["a", "b", "c", "d", "species"], "rows": rows},
    ).json()
    form = {
        "dataset_id": dataset["id"],
        "target": "species",
        "task": "classification",
        "penalty": "l2",
        "strength": "0.5",
        "alphas": "0.1,1,10",
        "folds": "3",
    }
    created = client.post("/ui/jobs", data=form, follow_redirects=False)
    assert created.status_code == 303, created.text
    job_id = created.headers["location"].rsplit("/", 1)[-1]
    job = wait_for_job(client, job_id)
    assert job["status"] == "succeeded", job
    assert job["spec"]["task"] == "classification"
    assert job["spec"]["tuning"]["space"] == {"C": [0.1, 1.0, 10.0]}

    page = client.get(f"/ui/models/{job['model_id']}")
    assert page.status_code == 200
    html = page.text
    assert "Classifier" in html and "Confusion matrix (test)" in html
    assert 'id="confusion-test"' in html and "versicolor" in html
    for kind in ("coefficients", "path", "cv"):
        assert f'data-kind="{kind}"' in html
        assert client.get(f"/ui/models/{job['model_id']}/plots/{kind}").status_code == 200
    answer = client.post(
        f"/ui/models/{job['model_id']}/predict",
        data={"a": "5.1", "b": "3.5", "c": "1.4", "d": "0.2"},
    )
    assert answer.json()["predictions"] == ["setosa"]
