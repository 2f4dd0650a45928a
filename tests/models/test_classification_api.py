"""Classification jobs through HTTP: trained, tuned, stored, served, exported, registered.

Every number is scikit-learn's: the coefficients of ``LogisticRegression`` in the equivalent
pipeline (tight tolerance, 1e-6 relative), its ``predict_proba`` (1e-9), ``GridSearchCV`` with
``StratifiedKFold`` for a tuned job.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from support import wait_for_job

from service.config import Settings

TIGHT = {"tol": 1e-10, "max_iter": 100_000}


def upload(client: TestClient, X: np.ndarray, y: list[Any]) -> str:
    columns = [f"x{j}" for j in range(X.shape[1])] + ["label"]
    rows = [[*map(float, x), label] for x, label in zip(X, y, strict=True)]
    response = client.post("/v1/datasets", json={"name": "cls", "columns": columns, "rows": rows})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def train(client: TestClient, dataset_id: str, **spec: Any) -> dict[str, Any]:
    body = {"dataset_id": dataset_id, "target": "label", "task": "classification", **spec}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def reference(X: np.ndarray, y: np.ndarray, estimator: LogisticRegression) -> tuple[Pipeline, Any]:
    train_rows, test_rows = train_test_split(
        np.arange(len(y)), test_size=0.2, random_state=0, stratify=y
    )
    pipeline = make_pipeline(StandardScaler(), estimator).fit(X[train_rows], y[train_rows])
    return pipeline, test_rows


def breast_cancer(n_features: int = 6) -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    labels = np.array(["malignant", "benign"], dtype=object)[y]
    return X[:, :n_features], labels


@pytest.mark.parametrize(
    ("penalty", "estimator"),
    [
        ({"type": "l2", "C": 0.5}, LogisticRegression(C=0.5, l1_ratio=0.0)),
        ({"type": "l1", "C": 0.3}, LogisticRegression(C=0.3, l1_ratio=1.0, solver="saga")),
        (
            {"type": "l2", "C": 1.0, "class_weight": "balanced"},
            LogisticRegression(C=1.0, l1_ratio=0.0, class_weight="balanced"),
        ),
    ],
)
def test_breast_cancer_text_labels_equal_logistic_regression(
    client: TestClient, penalty: dict[str, Any], estimator: LogisticRegression
) -> None:
    X, y = breast_cancer()
    dataset_id = upload(client, X, list(y))
    job = train(client, dataset_id, penalty={**penalty, **TIGHT})
    reference_pipeline, test_rows = reference(X, y, estimator.set_params(**TIGHT))
    fitted = reference_pipeline[-1]

    model = client.get(f"/v1/models/{job['model_id']}").json()
    assert model["task"] == "classification"
    assert model["classes"] == ["benign", "malignant"]
    assert model["coefficients"]["rows"] == ["malignant"]
    np.testing.assert_allclose(model["coefficients"]["scaled"], fitted.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model["intercepts"]["scaled"], fitted.intercept_, rtol=1e-6)
    assert model["penalty"]["C"] == penalty["C"]
    assert model["penalty"]["estimator"] == "LogisticRegression"
    n_train = model["n_train"]
    ratio = 1.0 if penalty["type"] == "l1" else 0.0
    assert model["penalty"]["lambda1"] == pytest.approx(ratio / (penalty["C"] * n_train))
    test = model["metrics"]["test"]
    assert test["accuracy"] == pytest.approx(reference_pipeline.score(X[test_rows], y[test_rows]))
    assert sum(map(sum, test["confusion_matrix"])) == len(test_rows)

    rows = X[test_rows[:7]].tolist()
    labels = client.post(f"/v1/models/{job['model_id']}/predict", json={"rows": rows}).json()
    assert labels["predictions"] == reference_pipeline.predict(X[test_rows[:7]]).tolist()
    proba = client.post(
        f"/v1/models/{job['model_id']}/predict", json={"rows": rows, "output": "proba"}
    ).json()
    assert proba["classes"] == ["benign", "malignant"]
    np.testing.assert_allclose(
        proba["probabilities"], reference_pipeline.predict_proba(X[test_rows[:7]]), rtol=1e-9
    )
    by_query = client.post(
        f"/v1/models/{job['model_id']}/predict?output=proba", json={"rows": rows}
    ).json()
    assert by_query["probabilities"] == proba["probabilities"]


def test_iris_multiclass_integer_labels_csv_records_export_and_path(client: TestClient) -> None:
    X, y = load_iris(return_X_y=True)
    dataset_id = upload(client, X, [int(v) for v in y])
    job = train(
        client, dataset_id, penalty={"type": "elasticnet", "C": 2.0, "l1_ratio": 0.3, **TIGHT}
    )
    pipeline, test_rows = reference(
        X, y, LogisticRegression(C=2.0, l1_ratio=0.3, solver="saga", **TIGHT)
    )
    model_id = job["model_id"]
    model = client.get(f"/v1/models/{model_id}").json()
    assert model["classes"] == [0, 1, 2]
    assert model["coefficients"]["rows"] == [0, 1, 2]
    np.testing.assert_allclose(
        model["coefficients"]["scaled"], pipeline[-1].coef_, rtol=1e-6, atol=1e-8
    )
    assert len(model["metrics"]["train"]["confusion_matrix"]) == 3

    rows = X[test_rows].tolist()
    records = [{f"x{j}": v for j, v in enumerate(row)} for row in rows]
    answer = client.post(f"/v1/models/{model_id}/predict", json={"records": records}).json()
    assert answer["predictions"] == pipeline.predict(X[test_rows]).tolist()
    csv = "x0,x1,x2,x3\n" + "\n".join(",".join(map(str, row)) for row in rows) + "\n"
    via_csv = client.post(
        f"/v1/models/{model_id}/predict?output=proba",
        content=csv,
        headers={"content-type": "text/csv"},
    ).json()
    np.testing.assert_allclose(
        via_csv["probabilities"], pipeline.predict_proba(X[test_rows]), rtol=1e-9
    )

    exported = client.get(f"/v1/models/{model_id}/export").json()
    assert exported["format"] == "regfit.logistic.v1"
    assert exported["classes"] == [0, 1, 2]
    z = (X[test_rows] - exported["numeric"]["means"]) / exported["numeric"]["scales"]
    z = z @ np.array(exported["coef"]).T + exported["intercept"]
    manual = np.exp(z - z.max(axis=1, keepdims=True))
    manual /= manual.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(manual, pipeline.predict_proba(X[test_rows]), rtol=1e-9)

    path = client.get(f"/v1/models/{model_id}/path").json()
    assert path["task"] == "classification"
    assert len(path["Cs"]) == 9 and path["C"] == 2.0
    assert set(path["coefficients"]) == {"0", "1", "2"}
    at_c = path["Cs"].index(2.0)
    np.testing.assert_allclose(
        [path["coefficients"]["1"][f"x{j}"][at_c] for j in range(4)],
        pipeline[-1].coef_[1],
        rtol=1e-4,
        atol=1e-6,
    )
    listed = client.get("/v1/models").json()["items"]
    assert listed[0]["task"] == "classification"
    for kind in ("coefficients", "path"):
        plot = client.get(f"/v1/models/{model_id}/plots/{kind}")
        assert plot.status_code == 200, plot.text
        assert plot.text.startswith("<svg") or "<svg" in plot.text[:200]


def test_boolean_labels_come_back_as_booleans(client: TestClient) -> None:
    X, y = breast_cancer(4)
    flags = [bool(label == "malignant") for label in y]
    dataset_id = upload(client, X, flags)
    job = train(client, dataset_id, penalty={"type": "l2", "C": 1.0})
    model = client.get(f"/v1/models/{job['model_id']}").json()
    assert model["classes"] == [False, True]
    assert all(isinstance(v, bool) for v in model["classes"])
    answer = client.post(
        f"/v1/models/{job['model_id']}/predict", json={"rows": X[:5].tolist()}
    ).json()
    assert all(isinstance(v, bool) for v in answer["predictions"])


def test_tuned_grid_equals_grid_search_cv_with_stratified_folds(client: TestClient) -> None:
    X, y = breast_cancer()
    dataset_id = upload(client, X, list(y))
    Cs = [0.01, 0.1, 1.0, 10.0]
    job = train(
        client,
        dataset_id,
        penalty={"type": "l2"},
        tuning={"space": {"C": Cs}, "cv": {"folds": 4}},
    )
    model = client.get(f"/v1/models/{job['model_id']}").json()
    train_rows, _ = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=y)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(l1_ratio=0.0)),
        {"logisticregression__C": Cs},
        cv=StratifiedKFold(4),
        scoring="neg_log_loss",
    ).fit(X[train_rows], y[train_rows])
    tuning = model["tuning"]
    assert tuning["scoring"] == "neg_log_loss"
    assert tuning["best_params"]["C"] == search.best_params_["logisticregression__C"]
    np.testing.assert_allclose(
        [c["mean_score"] for c in tuning["candidates"]],
        search.cv_results_["mean_test_score"],
        rtol=1e-4,
    )
    assert model["metrics"]["cv"]["scoring"] == "neg_log_loss"
    path = client.get(f"/v1/models/{job['model_id']}/path").json()
    assert path["Cs"] == Cs
    assert path["cv"]["mean"] == [c["mean_score"] for c in tuning["candidates"]]
    assert job["progress"]["done"] == job["progress"]["total"] == len(Cs) * 4 + 1
    cv_plot = client.get(f"/v1/models/{job['model_id']}/plots/cv")
    assert cv_plot.status_code == 200, cv_plot.text


def test_errors_unknown_output_proba_of_a_regressor_explain_and_onnx(client: TestClient) -> None:
    X, y = breast_cancer(4)
    dataset_id = upload(client, X, list(y))
    job = train(client, dataset_id, penalty={"type": "l2", "C": 1.0})
    rows = X[:2].tolist()
    bad = client.post(f"/v1/models/{job['model_id']}/predict", json={"rows": rows, "output": "x"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "/output"
    bad = client.post(f"/v1/models/{job['model_id']}/predict?output=probs", json={"rows": rows})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "/query/output"
    explain = client.post(f"/v1/models/{job['model_id']}/predict?explain=true", json={"rows": rows})
    assert explain.status_code == 422

    regression = client.post(
        "/v1/datasets/synthetic", json={"n_samples": 50, "n_features": 3, "random_state": 0}
    ).json()
    response = client.post(
        "/v1/jobs",
        json={"dataset_id": regression["id"], "target": "y", "penalty": {"type": "l2"}},
    )
    regressor = wait_for_job(client, response.json()["id"])
    proba = client.post(
        f"/v1/models/{regressor['model_id']}/predict",
        json={"rows": [[0.0, 0.0, 0.0]], "output": "proba"},
    )
    assert proba.status_code == 422, proba.text
    assert "regressor" in proba.json()["detail"]
    proba = client.post(
        f"/v1/models/{regressor['model_id']}/predict?output=proba", json={"rows": [[0, 0, 0]]}
    )
    assert proba.status_code == 422 and proba.json()["errors"][0]["loc"] == "/query/output"


def test_registry_refuses_a_task_mismatch_and_invocations_serve_labels(client: TestClient) -> None:
    X, y = breast_cancer(3)
    dataset_id = upload(client, X, list(y))
    job = train(client, dataset_id, penalty={"type": "l2", "C": 1.0}, register={"name": "tumour"})
    answer = client.post(
        "/v1/models/tumour@latest/invocations",
        json={"dataframe_split": {"columns": ["x0", "x1", "x2"], "data": X[:3].tolist()}},
    )
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["predictions"]) <= {"benign", "malignant"}

    numeric = [1.0 if label == "malignant" else 0.0 for label in y]
    response = client.post(
        "/v1/datasets",
        json={
            "columns": ["x0", "x1", "x2", "label"],
            "rows": [[*map(float, x), t] for x, t in zip(X, numeric, strict=True)],
        },
    )
    regression = client.post(
        "/v1/jobs",
        json={"dataset_id": response.json()["id"], "target": "label", "penalty": {"type": "l2"}},
    )
    regressor = wait_for_job(client, regression.json()["id"])
    mismatch = client.post("/v1/registry/tumour/versions", json={"model_id": regressor["model_id"]})
    assert mismatch.status_code == 422, mismatch.text
    assert "task" in mismatch.json()["detail"]
    assert job["model_id"]


@pytest.mark.parametrize("labels", ["text", "int", "bool"])
def test_onnx_export_of_a_classifier_equals_the_service(client: TestClient, labels: str) -> None:
    import onnxruntime as ort

    if labels == "bool":
        X, y = breast_cancer(4)
        targets: list[Any] = [bool(v == "malignant") for v in y]
    else:
        X, iris = load_iris(return_X_y=True)
        targets = [int(v) for v in iris] if labels == "int" else [f"k{v}" for v in iris]
    dataset_id = upload(client, X, targets)
    job = train(client, dataset_id, penalty={"type": "l2", "C": 0.7})
    model_id = job["model_id"]
    rows = X[::7].tolist()
    service = client.post(
        f"/v1/models/{model_id}/predict", json={"rows": rows, "output": "proba"}
    ).json()
    served_labels = client.post(f"/v1/models/{model_id}/predict", json={"rows": rows}).json()
    onnx_bytes = client.get(f"/v1/models/{model_id}/export?format=onnx").content
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {f"x{j}": np.asarray(rows)[:, [j]] for j in range(X.shape[1])}
    predicted, proba = session.run(["predict", "probabilities"], feeds)
    np.testing.assert_allclose(proba, service["probabilities"], rtol=1e-12)
    assert predicted.tolist() == served_labels["predictions"]


def test_lambda_form_of_the_mean_log_loss_is_converted_and_echoed(client: TestClient) -> None:
    X, y = breast_cancer(5)
    dataset_id = upload(client, X, list(y))
    job = train(client, dataset_id, penalty={"lambda2": 0.01, **TIGHT})
    model = client.get(f"/v1/models/{job['model_id']}").json()
    n_train = model["n_train"]
    assert model["penalty"]["given_as"] == "lambda"
    assert model["penalty"]["type"] == "l2"
    assert model["penalty"]["C"] == pytest.approx(1 / (n_train * 2 * 0.01))
    pipeline, _ = reference(
        X, y, LogisticRegression(C=1 / (n_train * 2 * 0.01), l1_ratio=0.0, **TIGHT)
    )
    np.testing.assert_allclose(model["coefficients"]["scaled"], pipeline[-1].coef_, rtol=1e-6)


def test_a_running_classification_job_is_cancelled(client: TestClient) -> None:
    X, y = breast_cancer(10)
    dataset_id = upload(client, X, list(y))
    slow = {"type": "l1", "tol": 1e-14, "max_iter": 1_000_000}  # saga runs until stopped
    response = client.post(
        "/v1/jobs",
        json={
            "dataset_id": dataset_id,
            "target": "label",
            "task": "classification",
            "penalty": slow,
            "tuning": {"space": {"C": [0.1, 1.0, 10.0, 100.0]}, "cv": {"folds": 5}},
        },
    )
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"], until=("running",))
    assert job["progress"]["total"] == 4 * 5 + 1
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    final = wait_for_job(client, job["id"])
    assert final["status"] == "cancelled" and final["model_id"] is None


def test_a_predictor_key_sees_a_classifiers_classes_not_its_coefficients(
    settings: Settings,
) -> None:
    from pydantic import SecretStr

    from service.main import create_app

    keys = {"trainer": "rfk_" + "t" * 40, "predictor": "rfk_" + "p" * 40}
    keyed = settings.model_copy(
        update={"api_keys": SecretStr(",".join(f"{r}:{k}" for r, k in keys.items()))}
    )
    trainer = {"authorization": f"Bearer {keys['trainer']}"}
    predictor = {"authorization": f"Bearer {keys['predictor']}"}
    X, y = breast_cancer(3)
    with TestClient(create_app(keyed)) as client:
        client.headers.update(trainer)
        job = train(client, upload(client, X, list(y)), penalty={"type": "l2", "C": 1.0})
        view = client.get(f"/v1/models/{job['model_id']}", headers=predictor).json()
        assert view["task"] == "classification"
        assert view["classes"] == ["benign", "malignant"]
        assert "coefficients" not in view and view["penalty"]["C"] == 1.0
        listed = client.get("/v1/models", headers=predictor).json()["items"]
        assert listed[0]["classes"] == ["benign", "malignant"]
        answer = client.post(
            f"/v1/models/{job['model_id']}/predict?output=proba",
            json={"rows": X[:2].tolist()},
            headers=predictor,
        )
        assert answer.status_code == 200 and len(answer.json()["probabilities"]) == 2
