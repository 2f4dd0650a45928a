"""The ONNX export predicts, under onnxruntime, what the service predicts (1e-12 relative),
missing values, unseen categories, infrequent columns and boolean features included."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from support import fit_documents, wait_for_job

from service.ml.portable import CompiledModel, compile_model
from service.ml.spec import JobSpec
from service.models import onnx_export

N = 300
CITIES = np.array(["Paris", "Rome", "Oslo", "Lima", "Kyiv", None], dtype=object)


def training_columns(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=N) * 2 + 1
    x1 = rng.normal(size=N)
    city = CITIES[rng.choice(len(CITIES), size=N, p=[0.4, 0.3, 0.15, 0.07, 0.04, 0.04])]
    effect = np.array([{"Paris": 1.0, "Rome": -2.0, "Lima": 3.0}.get(c, 0.5) for c in city])
    y = 1.5 * x0 - 0.7 * x1 + effect + rng.normal(scale=0.1, size=N)
    x0[rng.choice(N, size=10, replace=False)] = np.nan
    return {"x0": x0, "city": city, "x1": x1, "y": y}


def held_out(seed: int, n: int = 200) -> tuple[np.ndarray, list[str | None]]:
    """Rows never seen in training: NaNs, unseen cities ("Tokyo") and missing ones."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) * 3
    X[rng.random((n, 2)) < 0.1] = np.nan
    pool = np.array([*CITIES, "Tokyo", "paris"], dtype=object)
    return X, list(pool[rng.integers(0, len(pool), size=n)])


def run_onnx(doc: dict[str, Any], X_num: np.ndarray, city: list[str | None]) -> np.ndarray:
    session = ort.InferenceSession(onnx_export.to_bytes(doc), providers=["CPUExecutionProvider"])
    feeds = {name: X_num[:, [j]] for j, name in enumerate(("x0", "x1"))}
    feeds["city"] = np.array([[c if c is not None else ""] for c in city], dtype=object)
    (out,) = session.run([onnx_export.OUTPUT], feeds)
    return np.asarray(out)


PREPS: list[dict[str, Any]] = [
    {},
    {"min_frequency": 20},
    {"max_categories": 3},
    {"scaling": "none"},
    {"impute": "median", "scaling": "none", "min_frequency": 0.05},
]


@pytest.mark.parametrize("prep", PREPS, ids=lambda p: json.dumps(p))
def test_onnxruntime_equals_the_portable_predictor(prep: dict[str, Any]) -> None:
    columns = training_columns()
    spec = JobSpec.model_validate(
        {
            "dataset_id": "d",
            "target": "y",
            "penalty": {"type": "elasticnet", "alpha": 0.01, "l1_ratio": 0.5},
            "preprocessing": prep,
        }
    )
    doc = json.loads(json.dumps(fit_documents(columns, spec, training_sha256="f" * 64).portable))
    model: CompiledModel = compile_model(doc)
    X, city = held_out(seed=1)
    assert model.numeric_names == ("x0", "x1")
    expected = model.predict_matrix(X, [city])
    got = run_onnx(doc, X, city)
    assert got.dtype == np.float64 and got.shape == (len(city),)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    if "min_frequency" in prep or "max_categories" in prep:
        assert doc["categorical"]["infrequent"] == [True]


@pytest.mark.backends("sqlite")
def test_export_onnx_over_the_api_equals_predict(client: TestClient) -> None:
    rng = np.random.default_rng(5)
    n = 120
    flag = rng.random(n) < 0.5
    size = rng.normal(10, 3, n)
    city = CITIES[rng.integers(0, len(CITIES), size=n)]
    y = 2.0 * flag + 0.5 * size + np.array([c == "Rome" for c in city]) + rng.normal(0, 0.1, n)
    rows = [
        [bool(f), float(s), c, float(t)] for f, s, c, t in zip(flag, size, city, y, strict=True)
    ]
    rows[0][1] = None
    dataset = client.post(
        "/v1/datasets",
        json={"name": "onnx", "columns": ["flag", "size", "city", "y"], "rows": rows},
    ).json()
    spec = {"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2", "alpha": 0.5}}
    job = wait_for_job(client, client.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "succeeded", job
    model_id = job["model_id"]

    response = client.get(f"/v1/models/{model_id}/export", params={"format": "onnx"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    session = ort.InferenceSession(response.content, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["flag", "size", "city"]

    test_rows: list[list[Any]] = [
        [True, 11.5, "Rome"],
        [False, None, "Paris"],
        [True, 3.0, None],
        [False, 9.0, "Atlantis"],
    ]
    served = client.post(f"/v1/models/{model_id}/predict", json={"rows": test_rows}).json()
    feeds = {
        "flag": np.array([[float(r[0])] for r in test_rows]),
        "size": np.array([[np.nan if r[1] is None else r[1]] for r in test_rows]),
        "city": np.array([[r[2] or ""] for r in test_rows], dtype=object),
    }
    (got,) = session.run(["predict"], feeds)
    np.testing.assert_allclose(got, served["predictions"], rtol=1e-12, atol=0)

    assert client.get(f"/v1/models/{model_id}/export").json()["format"] == "regfit.linear.v1"
    bad = client.get(f"/v1/models/{model_id}/export", params={"format": "pmml"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["errors"][0]["loc"].endswith("format")
