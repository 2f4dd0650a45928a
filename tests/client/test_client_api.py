"""The Python client (``regfit.Client``) against a real ``regfit serve``; scikit-learn is the
reference for every number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from regfit import Client, Job, JobFailed, Model, RegfitError, ServiceUnreachable
from sklearn.linear_model import Lasso
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from test_e2e import Server

pytestmark = pytest.mark.e2e

ALPHAS = [0.01, 0.1, 1.0, 3.0]


def reference_search(frame: pd.DataFrame) -> tuple[GridSearchCV, pd.DataFrame, pd.DataFrame]:
    X, y = frame.drop(columns="target"), frame["target"]
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("est", Lasso())])
    search = GridSearchCV(pipeline, {"est__alpha": ALPHAS}, cv=KFold(5), scoring="r2")
    return search.fit(X_train, y_train), X_train, X_test


def test_upload_train_tuned_wait_predict_path_export(
    live_server: Server, diabetes_csv_path: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(diabetes_csv_path)
    search, _, X_test = reference_search(frame)
    with Client(live_server.url) as client:
        dataset = client.upload(diabetes_csv_path, name="diabetes-file")
        assert (dataset.n_rows, dataset.n_columns, dataset.name) == (442, 11, "diabetes-file")
        assert [c.name for c in dataset.columns] == list(frame.columns)

        seen: list[tuple[str, int, int]] = []
        job = client.train(
            dataset,
            target="target",
            penalty="l1",
            tuning={"strategy": "grid", "space": {"alpha": ALPHAS}, "cv": {"folds": 5}},
        )
        assert isinstance(job, Job) and job.status in ("queued", "running")
        returned = job.wait(
            timeout=120,
            on_update=lambda j: seen.append((j.status, j.progress.done, j.progress.total)),
        )
        assert returned is job and job.status == "succeeded"
        assert seen[-1][0] == "succeeded" and seen[-1][1] == seen[-1][2] == job.progress.total
        assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)

        model = job.model()
        assert isinstance(model, Model) and model.id == job.model_id
        assert model.tuning is not None
        assert model.tuning.best_params["alpha"] == search.best_params_["est__alpha"]
        # Lasso CV scores agree to about tol (1e-4) on the r2 scale (README, "Agreement").
        assert model.tuning.best_score == pytest.approx(search.best_score_, abs=1e-4)
        best = search.best_estimator_
        table = model.coefficients
        assert isinstance(table, pd.DataFrame)
        assert list(table["feature"]) == list(frame.columns[:-1])
        np.testing.assert_allclose(table["scaled"], best[-1].coef_, rtol=1e-6, atol=1e-9)
        assert model.n_nonzero == int(np.count_nonzero(best[-1].coef_))

        expected = best.predict(X_test)
        np.testing.assert_allclose(model.predict(X_test), expected, rtol=1e-9)
        np.testing.assert_allclose(model.predict(X_test.to_numpy()), expected, rtol=1e-9)
        records = X_test.assign(extra="ignored").to_dict("records")
        np.testing.assert_allclose(model.predict(records), expected, rtol=1e-9)

        path = model.path()
        assert sorted(path.alphas) == sorted(ALPHAS)
        assert path.cv is not None and len(path.cv.mean) == len(path.alphas)
        assert [row["alpha"] for row in path.rows()] == path.alphas

        exported = model.export(tmp_path / "model.json")
        assert json.loads((tmp_path / "model.json").read_text()) == exported
        np.testing.assert_allclose(exported["coef"], best[-1].coef_, rtol=1e-6, atol=1e-9)

        assert model.id in [m.id for m in client.models()]
        assert job.id in [j.id for j in client.jobs(status="succeeded")]
        assert client.dataset(dataset.id).sha256 == dataset.sha256


def test_dataframe_upload_and_plain_fit_equal_scikit_learn(
    live_server: Server, diabetes_csv_path: Path
) -> None:
    frame = pd.read_csv(diabetes_csv_path)
    X, y = frame.drop(columns="target"), frame["target"]
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=0)
    reference = Pipeline([("scale", StandardScaler()), ("est", Lasso(alpha=0.1))])
    reference.fit(X_train, y_train)
    with Client(live_server.url) as client:
        dataset = client.upload(frame, name="from-pandas")
        assert (dataset.n_rows, dataset.n_columns) == frame.shape
        model = client.train(dataset.id, target="target", penalty="l1", alpha=0.1).wait().model()
        assert model.penalty.alpha == 0.1 and model.tuning is None
        rows = model.coefficient_rows()
        np.testing.assert_allclose(
            [r["scaled"] for r in rows], reference[-1].coef_, rtol=1e-6, atol=1e-9
        )
        np.testing.assert_allclose(
            model.predict(X_test.values.tolist()), reference.predict(X_test), rtol=1e-9
        )
        model.delete()
        with pytest.raises(RegfitError) as missing:
            client.model(model.id)
        assert missing.value.status == 404


def test_errors_carry_the_problem_document(live_server: Server, tmp_path: Path) -> None:
    with Client(live_server.url) as client:
        dataset = client.upload(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 2.0, 3, 4]}))
        with pytest.raises(RegfitError) as bad:
            client.train(dataset, target="y", penalty="l1", alpha=-1.0)
        assert bad.value.status == 422
        assert bad.value.problem["status"] == 422 and bad.value.request_id
        assert any(item["loc"] == "/penalty/alpha" for item in bad.value.errors)

        # A missing target fails the job (not the submission): wait() raises with its error.
        gappy = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "y": [1.0, None, 3.0, 4.0, 5.0]})
        job = client.train(client.upload(gappy), target="y", penalty="l2", alpha=1.0)
        with pytest.raises(JobFailed) as failed:
            job.wait(timeout=60)
        assert failed.value.job.status == "failed"
        assert "y" in failed.value.detail
        assert job.wait(raise_on_failure=False).status == "failed"

    with Client("http://127.0.0.1:9", timeout=2) as nowhere:
        with pytest.raises(ServiceUnreachable) as unreachable:
            nowhere.datasets()
        assert unreachable.value.status is None


def test_api_key_is_sent_as_a_bearer_token(tmp_path: Path) -> None:
    key = "rfk_" + "k" * 40
    srv = Server(tmp_path, env={"REGFIT_API_KEYS": f"trainer:{key}"})
    srv.start()
    try:
        with pytest.raises(RegfitError) as refused, Client(srv.url) as anonymous:
            anonymous.datasets()
        assert refused.value.status == 401
        with Client(srv.url, api_key=key) as client:
            assert client.datasets() == []
    finally:
        srv.stop()
