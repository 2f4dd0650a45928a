"""A model trained on a boolean column takes the values the column was uploaded with."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support import wait_for_job

pytestmark = pytest.mark.backends("sqlite", "postgres")


def test_bool_feature_is_recorded_as_bool_and_accepts_booleans(client: TestClient) -> None:
    rng = np.random.default_rng(3)
    n = 60
    flag = rng.random(n) < 0.5
    size = rng.normal(10, 3, n)
    y = 2.0 * flag + 0.5 * size + rng.normal(0, 0.1, n)
    rows = [[bool(f), float(s), float(t)] for f, s, t in zip(flag, size, y, strict=True)]
    dataset = client.post(
        "/v1/datasets", json={"name": "flags", "columns": ["flag", "size", "y"], "rows": rows}
    ).json()
    assert {c["name"]: c["dtype"] for c in dataset["columns"]}["flag"] == "bool"
    spec = {
        "dataset_id": dataset["id"],
        "target": "y",
        "penalty": {"type": "l2", "alpha": 1.0},
        "split": {"test_size": 0},
    }
    job = wait_for_job(client, client.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "succeeded", job
    model_id = job["model_id"]

    exported = client.get(f"/v1/models/{model_id}/export").json()
    assert {f["name"]: f["dtype"] for f in exported["features"]} == {
        "flag": "bool",
        "size": "float64",
    }

    X = np.column_stack([flag.astype(float), size])
    expected = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X, y)
    queries = [[True, 1.5], [False, 12.0], [True, -3.0], [False, 0.0], [True, 7.0], [False, 2.0]]
    want = expected.predict(np.array(queries, dtype=float))

    by_rows = client.post(f"/v1/models/{model_id}/predict", json={"rows": queries})
    assert by_rows.status_code == 200, by_rows.text
    np.testing.assert_allclose(by_rows.json()["predictions"], want, rtol=1e-9)

    records = [{"flag": f, "size": s} for f, s in queries]
    by_records = client.post(f"/v1/models/{model_id}/predict", json={"records": records})
    assert by_records.status_code == 200, by_records.text
    np.testing.assert_allclose(by_records.json()["predictions"], want, rtol=1e-9)

    spellings = ["true", "False", "True", "false", "1", "0"]
    csv = "flag,size\n" + "".join(
        f"{word},{s}\n" for word, (_, s) in zip(spellings, queries, strict=True)
    )
    by_csv = client.post(
        f"/v1/models/{model_id}/predict", content=csv, headers={"content-type": "text/csv"}
    )
    assert by_csv.status_code == 200, by_csv.text
    np.testing.assert_allclose(by_csv.json()["predictions"], want, rtol=1e-9)

    # A numeric feature still refuses booleans, naming the cell.
    bad = client.post(f"/v1/models/{model_id}/predict", json={"rows": [[True, True]]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == "/rows/0/1"
    word = client.post(
        f"/v1/models/{model_id}/predict",
        content="flag,size\nyes,1\n",
        headers={"content-type": "text/csv"},
    )
    assert word.status_code == 422
    assert word.json()["errors"][0]["loc"] == "/rows/0/0"
