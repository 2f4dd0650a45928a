"""What the plots read, stored with the model at fit time: the unregularized least-squares
coefficients on the same preprocessing, and the test split's predictions."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
from sklearn.datasets import make_regression
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from service.ml.fitting import fit_job
from service.ml.spec import JobSpec
from service.models import plots
from service.models.documents import model_documents


def test_plot_data_equals_scikit_learn() -> None:
    X, y = make_regression(n_samples=150, n_features=6, noise=2.0, random_state=7)
    columns = {f"x{j}": X[:, j] for j in range(6)} | {"y": y}
    spec = JobSpec.model_validate(
        {"dataset_id": "d", "target": "y", "penalty": {"type": "l2", "alpha": 3.0}}
    )
    summary = model_documents(fit_job(columns, spec, training_sha256="x"), spec).summary

    train, test = train_test_split(np.arange(150), test_size=0.2, shuffle=True, random_state=0)
    scaled = StandardScaler().fit(X[train])
    ols = LinearRegression().fit(scaled.transform(X[train]), y[train])
    got = [summary["plots"]["unregularized"][f"x{j}"] for j in range(6)]
    np.testing.assert_allclose(got, ols.coef_, rtol=1e-7, atol=1e-8)

    ridge = make_pipeline(StandardScaler(), Ridge(alpha=3.0)).fit(X[train], y[train])
    np.testing.assert_allclose(summary["plots"]["test"]["actual"], y[test], rtol=0, atol=0)
    np.testing.assert_allclose(
        summary["plots"]["test"]["predicted"], ridge.predict(X[test]), rtol=1e-9, atol=1e-9
    )


def test_an_unpenalized_models_path_plot_has_its_30_alphas_down_to_zero() -> None:
    X, y = make_regression(n_samples=80, n_features=4, noise=2.0, random_state=1)
    columns = {f"x{j}": X[:, j] for j in range(4)} | {"y": y}
    spec = JobSpec.model_validate(
        {"dataset_id": "d", "target": "y", "penalty": {"type": "l2", "alpha": 0.0}}
    )
    summary = model_documents(fit_job(columns, spec, training_sha256="x"), spec).summary
    path = summary["path"]
    assert len(path["alphas"]) == 30 and path["alphas"][-1] == 0.0
    svg = plots.render("mdl_unpenalized", "path", summary)
    ids = [el.attrib["id"] for el in ET.fromstring(svg).iter() if "id" in el.attrib]
    assert sum(i.startswith("path-") for i in ids) == 4 and "chosen-alpha" in ids
