"""A classifier against a real ``regfit serve``: the Python client, the CLI and tritonclient
(Open Inference Protocol v2) on the breast-cancer data, checked against scikit-learn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from regfit import Client
from regfit import portable as client_portable
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from test_e2e import Server

pytestmark = pytest.mark.e2e

REGFIT = str(Path(sys.executable).parent / "regfit")
FEATURES = 8
Cs = [0.01, 0.1, 1.0, 10.0]


@pytest.fixture(scope="module")
def cancer_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names[:FEATURES]]
    frame = pd.DataFrame(data.data[:, :FEATURES], columns=names)
    frame["diagnosis"] = np.array(["malignant", "benign"])[data.target]
    path = tmp_path_factory.mktemp("cancer") / "cancer.csv"
    frame.to_csv(path, index=False, float_format="%.17g")
    return path


def reference(frame: pd.DataFrame) -> tuple[GridSearchCV, pd.DataFrame]:
    X, y = frame.drop(columns="diagnosis"), frame["diagnosis"]
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    pipeline = Pipeline([("scale", StandardScaler()), ("est", LogisticRegression(l1_ratio=0.0))])
    search = GridSearchCV(
        pipeline, {"est__C": Cs}, cv=StratifiedKFold(5), scoring="neg_log_loss"
    ).fit(X_train, y_train)
    return search, X_test


def regfit_cli(server: Server, *args: str) -> Any:
    env = {**os.environ, "REGFIT_URL": server.url, "COLUMNS": "120"}
    env.pop("REGFIT_API_KEY", None)
    result = subprocess.run([REGFIT, *args], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_client_cli_and_tritonclient_serve_a_tuned_classifier(
    live_server: Server, cancer_csv: Path
) -> None:
    frame = pd.read_csv(cancer_csv)
    search, X_test = reference(frame)
    with Client(live_server.url) as client:
        dataset = client.upload(cancer_csv, name="cancer")
        job = client.train(
            dataset,
            target="diagnosis",
            task="classification",
            penalty="l2",
            tuning={"space": {"C": Cs}},
        )
        model = job.wait(timeout=120).model()
        assert model.task == "classification" and model.classes == ["benign", "malignant"]
        assert model.tuning is not None
        assert model.tuning.best_params["C"] == search.best_params_["est__C"]
        labels = model.predict(X_test)
        assert labels == search.predict(X_test).tolist()
        proba = model.predict(X_test, output="proba")
        np.testing.assert_allclose(proba, search.predict_proba(X_test), rtol=1e-9)
        offline = client_portable.load(model.export())
        assert isinstance(offline, client_portable.PortableClassifier)
        np.testing.assert_array_equal(offline.predict_proba(X_test), proba)
        assert offline.predict(X_test) == labels
        assert {r["class"] for r in model.coefficient_rows()} == {"malignant"}

    trained = regfit_cli(
        live_server,
        "train",
        dataset.id,
        "-t",
        "diagnosis",
        "--task",
        "classification",
        "-p",
        "l1",
        "--C",
        "0.5",
        "--wait",
        "--json",
    )
    assert trained["model"]["penalty"]["C"] == 0.5
    assert trained["model"]["penalty"]["type"] == "l1"
    predicted = regfit_cli(
        live_server, "predict", trained["model"]["id"], str(cancer_csv), "--proba", "--json"
    )
    assert predicted["classes"] == ["benign", "malignant"]
    assert len(predicted["probabilities"]) == len(frame)
    assert np.allclose(np.sum(predicted["probabilities"], axis=1), 1.0)

    with httpx.Client(base_url=live_server.url, timeout=30) as web:
        assert web.post("/v1/registry", json={"name": "cancer"}).status_code == 201
        response = web.post("/v1/registry/cancer/versions", json={"model_id": model.id})
        assert response.status_code == 201, response.text
    http = triton.InferenceServerClient(url=live_server.url.removeprefix("http://"))
    try:
        meta = http.get_model_metadata("cancer")
        assert [o["name"] for o in meta["outputs"]] == ["predict", "probabilities"]
        assert meta["outputs"][0]["datatype"] == "BYTES"
        tensor = triton.InferInput("input-0", [len(X_test), FEATURES], "FP64")
        tensor.set_data_from_numpy(X_test.to_numpy(dtype=np.float64), binary_data=True)
        result = http.infer(
            "cancer",
            [tensor],
            outputs=[
                triton.InferRequestedOutput("predict", binary_data=False),
                triton.InferRequestedOutput("probabilities", binary_data=False),
            ],
        )
        assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")] == (
            labels
        )
        np.testing.assert_allclose(
            result.as_numpy("probabilities").reshape(-1, 2), proba, rtol=1e-12
        )
    finally:
        http.close()
