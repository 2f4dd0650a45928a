"""regfit.portable.load(doc).predict(...) offline equals the service's predictions to the bit,
and its predictor is the server's (one source: the class sources are identical)."""

from __future__ import annotations

import inspect
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from regfit import portable as client_portable
from support import wait_for_job

from service.ml import portable as server_portable

pytestmark = pytest.mark.backends("sqlite")


def test_the_predictor_is_the_servers() -> None:
    assert inspect.getsource(client_portable.CompiledModel) == inspect.getsource(
        server_portable.CompiledModel
    )
    assert client_portable.FORMAT == server_portable.FORMAT


def test_offline_predictions_equal_the_service_to_the_bit(client: TestClient) -> None:
    rng = np.random.default_rng(8)
    n = 120
    flag = rng.random(n) < 0.5
    size = rng.normal(10, 3, n)
    city = rng.choice(np.array(["Paris", "Rome", "Oslo"], dtype=object), size=n)
    y = 2.0 * flag + 0.5 * size + (city == "Rome") + rng.normal(0, 0.1, n)
    rows: list[list[Any]] = [
        [bool(f), float(s), c, float(t)] for f, s, c, t in zip(flag, size, city, y, strict=True)
    ]
    rows[1][1] = None
    rows[2][2] = None
    dataset = client.post(
        "/v1/datasets",
        json={"name": "offline", "columns": ["flag", "size", "city", "y"], "rows": rows},
    ).json()
    spec = {"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l1", "alpha": 0.01}}
    job = wait_for_job(client, client.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "succeeded", job
    model_id = job["model_id"]
    doc = client.get(f"/v1/models/{model_id}/export").json()

    test_rows: list[list[Any]] = [
        [True, 12.0, "Rome"],
        [False, None, "Paris"],
        [True, 7.0, None],
        [False, 9.5, "Lima"],
    ]
    served = client.post(f"/v1/models/{model_id}/predict", json={"rows": test_rows}).json()
    expected = np.array(served["predictions"], dtype=np.float64)

    model = client_portable.load(doc)
    assert model.feature_names == ("flag", "size", "city")
    np.testing.assert_array_equal(model.predict(test_rows), expected)
    records = [dict(zip(model.feature_names, row, strict=True)) for row in test_rows]
    np.testing.assert_array_equal(model.predict(records), expected)
    frame = pd.DataFrame(records).iloc[:, ::-1]  # columns by name, in any order
    np.testing.assert_array_equal(model.predict(frame), expected)
    np.testing.assert_array_equal(
        client_portable.load(json.dumps(doc)).predict(test_rows), expected
    )

    with pytest.raises(client_portable.InvalidModelInput, match="row 0 has 2 values"):
        model.predict([[True, 1.0]])
