"""Tuning gives GridSearchCV's answers, at path speed, and is controllable.

Every comparison runs the same rows through scikit-learn: ``train_test_split`` as the job
splits, then ``GridSearchCV(pipeline, grid, cv=KFold(...), scoring=...)`` on the training rows.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from scipy.stats import loguniform, uniform
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from support import fit_documents

from service.ml.errors import FitCancelled
from service.ml.estimators import Penalty
from service.ml.paths.moments import TrainingMoments
from service.ml.paths.problem import PenalizedLeastSquares
from service.ml.paths.ridge import ridge_path
from service.ml.preprocessing import DesignTransformer, select_features
from service.ml.search.candidates import count_candidates
from service.ml.search.strategies import run_search
from service.ml.spec import JobSpec, PenaltySpec, PreprocessingSpec, TuningSpec
from service.ml.split import split_rows

SCORERS = [
    "r2",
    "neg_mean_squared_error",
    "neg_root_mean_squared_error",
    "neg_mean_absolute_error",
]
SEED_ALPHAS = [0.001, 0.01, 0.1, 1, 10, 100]


def regression(n: int = 100, p: int = 20, noise: float = 0.1, seed: int = 0) -> dict[str, Any]:
    X, y = make_regression(n_samples=n, n_features=p, noise=noise, random_state=seed)
    columns: dict[str, Any] = {f"x{j}": X[:, j] for j in range(p)}
    columns["y"] = y
    return columns


def mixed(n: int = 160, seed: int = 3, missing: bool = True) -> dict[str, Any]:
    """Numeric columns on different scales (some missing) and a text column."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1.0, 5.0, 0.2, 2.0] + [0.0, 10.0, -1.0, 3.0]
    if missing:
        X[rng.choice(n, size=9, replace=False), 1] = np.nan
    city = np.array(["Paris", "Rome", "Oslo", None, "Lima"], dtype=object)[
        rng.choice(5, size=n, p=[0.35, 0.3, 0.2, 0.1, 0.05])
    ]
    effect = {"Paris": 1.0, "Rome": -2.0, "Oslo": 0.5, None: 0.0, "Lima": 3.0}
    y = (
        np.nan_to_num(X, nan=10.0) @ [2.0, -0.3, 0.0, 0.8]
        + np.array([effect[c] for c in city])
        + rng.normal(scale=1.5, size=n)
    )
    return {"x0": X[:, 0], "x1": X[:, 1], "city": city, "x2": X[:, 2], "x3": X[:, 3], "y": y}


def job(columns: dict[str, Any], penalty: dict[str, Any], tuning: dict[str, Any]) -> JobSpec:
    features = [name for name in columns if name != "y"]
    return JobSpec.model_validate(
        {
            "dataset_id": "d",
            "target": "y",
            "features": features,
            "penalty": penalty,
            "tuning": tuning,
        }
    )


def reference_inputs(columns: dict[str, Any], spec: JobSpec) -> tuple[np.ndarray, np.ndarray]:
    """The training rows as scikit-learn sees them (object array when there is text)."""
    features = [name for name in columns if name != "y"]
    text = any(np.asarray(columns[f]).dtype == object for f in features)
    X = np.column_stack([np.asarray(columns[f], dtype=object if text else float) for f in features])
    rows = np.arange(len(columns["y"]))
    if spec.split.test_size == 0:
        return X, np.asarray(columns["y"])
    train, _ = train_test_split(
        rows,
        test_size=spec.split.test_size,
        shuffle=spec.split.shuffle,
        random_state=spec.split.random_state,
    )
    return X[train], np.asarray(columns["y"])[train]


def reference_pipeline(columns: dict[str, Any], estimator: Any) -> Pipeline:
    features = [name for name in columns if name != "y"]
    numeric = [i for i, f in enumerate(features) if np.asarray(columns[f]).dtype != object]
    text = [i for i, f in enumerate(features) if np.asarray(columns[f]).dtype == object]
    if not text:
        return Pipeline([("scale", StandardScaler()), ("est", estimator)])
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), text),
        ]
    )
    return Pipeline([("prep", prep), ("est", estimator)])


def grid_search(
    columns: dict[str, Any],
    spec: JobSpec,
    estimator: Any,
    grid: dict[str, list[Any]] | list[dict[str, list[Any]]],
    scoring: str = "r2",
) -> GridSearchCV:
    X, y = reference_inputs(columns, spec)
    assert spec.tuning is not None
    cv = spec.tuning.cv
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GridSearchCV(
            reference_pipeline(columns, estimator),
            grid,
            cv=KFold(cv.folds, shuffle=cv.shuffle, random_state=cv.random_state),
            scoring=scoring,
        ).fit(X, y)


def candidates_of(summary: dict[str, Any], key: str) -> np.ndarray:
    return np.array([c[key] for c in summary["tuning"]["candidates"]], dtype=float)


def assert_same_as(
    summary: dict[str, Any], search: GridSearchCV, *, rtol: float, atol: float
) -> None:
    results = search.cv_results_
    n_folds = search.n_splits_
    folds = np.array([c["fold_scores"] for c in summary["tuning"]["candidates"]], dtype=float)
    reference_folds = np.column_stack([results[f"split{k}_test_score"] for k in range(n_folds)])
    np.testing.assert_allclose(folds, reference_folds, rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        candidates_of(summary, "mean_score"), results["mean_test_score"], rtol=rtol, atol=atol
    )
    np.testing.assert_allclose(
        candidates_of(summary, "std_score"), results["std_test_score"], rtol=rtol, atol=atol
    )
    assert [c["rank"] for c in summary["tuning"]["candidates"]] == list(results["rank_test_score"])
    assert summary["tuning"]["best_index"] == search.best_index_


@pytest.mark.parametrize("scoring", SCORERS)
def test_seed_example_ridge_equals_grid_search_cv(scoring: str) -> None:
    columns = regression()
    spec = job(columns, {"type": "l2"}, {"space": {"alpha": SEED_ALPHAS}, "scoring": scoring})
    summary = fit_documents(columns, spec, training_sha256="x").summary
    search = grid_search(columns, spec, Ridge(), {"est__alpha": SEED_ALPHAS}, scoring)
    assert_same_as(summary, search, rtol=1e-8, atol=1e-8)
    assert summary["tuning"]["best_params"] == {"alpha": search.best_params_["est__alpha"]}
    assert summary["penalty"]["alpha"] == search.best_params_["est__alpha"]
    best = search.best_estimator_[-1]
    names = summary["feature_names_out"]
    scaled = [summary["coefficients"]["scaled"][name] for name in names]
    np.testing.assert_allclose(scaled, best.coef_, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("scoring", SCORERS)
@pytest.mark.parametrize(
    ("kind", "estimator", "extra"),
    [
        ("l1", Lasso(), {}),
        ("elasticnet", ElasticNet(l1_ratio=0.3), {"l1_ratio": 0.3}),
    ],
)
def test_lasso_and_elasticnet_equal_grid_search_cv(
    scoring: str, kind: str, estimator: Any, extra: dict[str, Any]
) -> None:
    columns = regression(n=150, p=12, noise=15.0, seed=4)
    alphas = [0.01, 0.1, 0.5, 1.0, 3.0, 10.0]
    spec = job(
        columns,
        {"type": kind, **extra},
        {"space": {"alpha": alphas}, "scoring": scoring, "cv": {"folds": 4}},
    )
    summary = fit_documents(columns, spec, training_sha256="x").summary
    # At scikit-learn's default tol its cold fits are themselves ~1e-5 from the optimum;
    # errors are in the target's units, hence the relative tolerance.
    search = grid_search(columns, spec, estimator, {"est__alpha": alphas}, scoring)
    assert_same_as(summary, search, rtol=1e-4, atol=1e-4)
    assert summary["tuning"]["best_params"] == {"alpha": search.best_params_["est__alpha"]}
    # Against cold fits run to a tight tolerance the path (at tol/100) is ten times closer.
    tight = estimator.set_params(tol=1e-10, max_iter=100_000)
    search = grid_search(columns, spec, tight, {"est__alpha": alphas}, scoring)
    assert_same_as(summary, search, rtol=1e-5, atol=1e-5)


def test_shuffled_folds_one_hot_and_imputation() -> None:
    columns = mixed()
    alphas = [0.001, 0.03, 0.1, 0.3, 1.0]
    cv = {"folds": 5, "shuffle": True, "random_state": 7}
    for kind, estimator, tol in [("l2", Ridge(), 1e-8), ("l1", Lasso(), 1e-4)]:
        a = alphas if kind == "l1" else [100 * x for x in alphas]
        spec = job(columns, {"type": kind}, {"space": {"alpha": a}, "cv": cv})
        summary = fit_documents(columns, spec, training_sha256="x").summary
        search = grid_search(columns, spec, estimator, {"est__alpha": a})
        assert_same_as(summary, search, rtol=tol, atol=tol)
        assert summary["tuning"]["best_params"] == {"alpha": search.best_params_["est__alpha"]}
        assert summary["tuning"]["cv"] == cv


@pytest.mark.parametrize(
    ("kind", "estimator", "tol"), [("l2", Ridge(), 1e-8), ("l1", Lasso(), 1e-4)]
)
def test_a_column_missing_from_a_folds_training_rows_is_left_out_there(
    kind: str, estimator: Any, tol: float
) -> None:
    # x2 is observed in the first five rows only: the first fold trains without any of them.
    # The pipeline's SimpleImputer then drops x2 in that fold; the job gives it no weight.
    rng = np.random.default_rng(21)
    X = rng.normal(size=(100, 3))
    y = X @ [1.5, -2.0, 0.5] + rng.normal(scale=0.5, size=100)
    X[5:, 2] = np.nan
    columns: dict[str, Any] = {"x0": X[:, 0], "x1": X[:, 1], "x2": X[:, 2], "y": y}
    alphas = [0.01, 0.1, 1.0] if kind == "l1" else [0.1, 1.0, 10.0]
    spec = JobSpec.model_validate(
        {
            "dataset_id": "d",
            "target": "y",
            "penalty": {"type": kind},
            "split": {"test_size": 0},
            "tuning": {"space": {"alpha": alphas}},
        }
    )
    summary = fit_documents(columns, spec, training_sha256="x").summary
    pipeline = Pipeline(
        [("prep", make_pipeline(SimpleImputer(), StandardScaler())), ("est", estimator)]
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipping features without any observed values")
        search = GridSearchCV(pipeline, {"est__alpha": alphas}, cv=KFold(5)).fit(X, y)
    assert_same_as(summary, search, rtol=tol, atol=tol)
    assert summary["tuning"]["best_params"] == {"alpha": search.best_params_["est__alpha"]}


def test_one_hot_without_missing_values_uses_the_moments_exactly() -> None:
    columns = mixed(n=400, missing=False)
    alphas = [0.01, 0.1, 1.0, 10.0, 100.0]
    spec = job(columns, {"type": "l2"}, {"space": {"alpha": alphas}})
    summary = fit_documents(columns, spec, training_sha256="x").summary
    search = grid_search(columns, spec, Ridge(), {"est__alpha": alphas})
    assert_same_as(summary, search, rtol=1e-8, atol=1e-8)


def test_a_column_constant_within_a_fold_gets_no_weight_there() -> None:
    columns = regression(n=200, p=6, noise=5.0, seed=12)
    flag = np.full(200, 0.3)
    flag[:3] = 0.7  # only in the first block: constant on fold 0's training rows
    columns = {"flag": flag, **columns}
    for kind, estimator, alphas, tol in [
        ("l2", Ridge(), [0.1, 10.0, 1000.0], 1e-8),
        ("l1", Lasso(), [0.01, 0.3, 3.0], 1e-4),
    ]:
        spec = JobSpec.model_validate(
            {
                "dataset_id": "d",
                "target": "y",
                "features": [name for name in columns if name != "y"],
                "penalty": {"type": kind},
                "split": {"test_size": 0},
                "tuning": {"space": {"alpha": alphas}},
            }
        )
        summary = fit_documents(columns, spec, training_sha256="x").summary
        search = grid_search(columns, spec, estimator, {"est__alpha": alphas})
        assert_same_as(summary, search, rtol=tol, atol=tol)


def test_moment_folds_equal_the_folds_own_preprocessing() -> None:
    columns = mixed(n=60, missing=False, seed=11)
    # A rare category: some folds never see "Lima" in their training rows.
    columns["city"][np.flatnonzero(columns["city"] == "Lima")[1:]] = "Oslo"
    prep = PreprocessingSpec()
    layout = select_features(columns, target="y", features=None, prep=prep)
    y = columns["y"]
    train = np.arange(48)
    positions = list(KFold(4, shuffle=True, random_state=2).split(train))
    moments = TrainingMoments(columns, layout, prep, y, train, [b for _, b in positions])
    for k, (fit, val) in enumerate(positions):
        fold = moments.fold(k)
        design = DesignTransformer(layout, prep)
        X_fit = design.fit_transform(columns, train[fit])
        reference = PenalizedLeastSquares.from_design(X_fit, y[train[fit]], fit_intercept=True)
        X_val = design.transform(columns, train[val])
        for alpha in [0.01, 1.0, 30.0]:
            ours = ridge_path(fold.problem, [alpha])
            theirs = ridge_path(reference, [alpha])
            # Columns of categories the fold never saw carry no weight either way.
            pred = fold.X_val @ ours + fold.problem.intercepts(ours)
            ref_pred = X_val @ theirs + reference.intercepts(theirs)
            np.testing.assert_allclose(pred, ref_pred, rtol=1e-10, atol=1e-10)


def test_penalty_comparison_side_by_side() -> None:
    columns = regression(n=120, p=15, noise=10.0, seed=5)
    alphas = [0.01, 0.1, 1.0, 10.0]
    ratios = [0.2, 0.8]
    spec = job(
        columns,
        {},
        {"space": {"penalty": ["l1", "l2", "elasticnet"], "alpha": alphas, "l1_ratio": ratios}},
    )
    outcome = fit_documents(columns, spec, training_sha256="x")
    summary = outcome.summary
    grid = [
        {"est": [Lasso()], "est__alpha": alphas},
        {"est": [Ridge()], "est__alpha": alphas},
        {"est": [ElasticNet()], "est__alpha": alphas, "est__l1_ratio": ratios},
    ]
    search = grid_search(columns, spec, Lasso(), grid)
    assert_same_as(summary, search, rtol=1e-4, atol=1e-4)
    tuning = summary["tuning"]
    assert len(tuning["candidates"]) == 4 + 4 + 8 == tuning["n_candidates"]
    assert tuning["candidates"][0]["params"] == {"alpha": 0.01, "penalty": "l1"}
    assert tuning["candidates"][-1]["params"] == {
        "alpha": 10.0,
        "l1_ratio": 0.8,
        "penalty": "elasticnet",
    }
    best = search.best_params_
    kind = {"Lasso": "l1", "Ridge": "l2", "ElasticNet": "elasticnet"}[type(best["est"]).__name__]
    assert tuning["best_params"]["penalty"] == kind
    assert tuning["best_params"]["alpha"] == best["est__alpha"]
    assert summary["penalty"]["type"] == kind
    assert summary["penalty"]["alpha"] == best["est__alpha"]
    comparison = tuning["comparison"]
    assert set(comparison) == {"l1", "l2", "elasticnet"}
    X, y = reference_inputs(columns, spec)
    means = candidates_of(summary, "mean_score")
    for name, estimator, rows in [
        ("l1", Lasso(), slice(0, 4)),
        ("l2", Ridge(), slice(4, 8)),
        ("elasticnet", ElasticNet(), slice(8, 16)),
    ]:
        entry = comparison[name]
        assert entry["best_score"] == pytest.approx(means[rows].max(), abs=1e-12)
        params = entry["best_params"]
        estimator.set_params(alpha=params["alpha"])
        if name == "elasticnet":
            estimator.set_params(l1_ratio=params["l1_ratio"])
        else:
            assert params["l1_ratio"] is None
        refit = reference_pipeline(columns, estimator).fit(X, y)
        assert entry["n_nonzero"] == int(np.count_nonzero(refit[-1].coef_))


def test_one_standard_error_rule_picks_a_sparser_model() -> None:
    columns = regression(n=200, p=30, noise=20.0, seed=8)
    alphas = list(np.geomspace(5.0, 0.01, 25))
    tuning = {"space": {"alpha": alphas}, "select": "1se"}
    summary = fit_documents(
        columns, job(columns, {"type": "l1"}, tuning), training_sha256="x"
    ).summary
    best = fit_documents(
        columns, job(columns, {"type": "l1"}, {"space": {"alpha": alphas}}), training_sha256="x"
    ).summary
    t = summary["tuning"]
    top = t["candidates"][t["one_se"]["max_score_index"]]
    assert top["params"] == best["tuning"]["best_params"]
    chosen = t["candidates"][t["best_index"]]
    # glmnet's cvsd: the sample standard deviation of the fold scores over √folds.
    threshold = top["mean_score"] - np.std(top["fold_scores"], ddof=1) / np.sqrt(5)
    assert t["one_se"]["threshold"] == pytest.approx(threshold)
    assert chosen["mean_score"] >= threshold
    assert chosen["params"]["alpha"] > top["params"]["alpha"]
    # The largest alpha within one standard error: the next larger one is outside.
    larger = [c for c in t["candidates"] if c["params"]["alpha"] > chosen["params"]["alpha"]]
    assert all(c["mean_score"] < threshold for c in larger)
    assert summary["n_nonzero"] < best["n_nonzero"]
    assert summary["penalty"]["alpha"] == chosen["params"]["alpha"]
    assert t["best_params"] == chosen["params"]


def test_random_search_is_deterministic_and_seeded() -> None:
    columns = regression(n=80, p=8, noise=5.0, seed=2)
    tuning = {
        "strategy": "random",
        "space": {
            "penalty": ["l1", "elasticnet"],
            "alpha": {"low": 1e-3, "high": 10.0, "log": True},
            "l1_ratio": {"low": 0.1, "high": 0.9},
        },
        "n_trials": 12,
        "random_state": 1,
    }

    def run(seed: int) -> list[dict[str, Any]]:
        spec = job(columns, {}, {**tuning, "random_state": seed})
        return [
            {k: c[k] for k in ("params", "mean_score", "fold_scores")}
            for c in fit_documents(columns, spec, training_sha256="x").summary["tuning"][
                "candidates"
            ]
        ]

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert [c["params"] for c in first] != [c["params"] for c in other]
    assert len(first) == 12
    for c in first:
        assert 1e-3 <= c["params"]["alpha"] <= 10.0
        assert ("l1_ratio" in c["params"]) == (c["params"]["penalty"] == "elasticnet")
    # Each drawn candidate scores as cross_val_score scores it.
    spec = job(columns, {}, tuning)
    X, y = reference_inputs(columns, spec)
    for c in first[:3]:
        p = c["params"]
        estimator = (
            Lasso(alpha=p["alpha"])
            if p["penalty"] == "l1"
            else ElasticNet(alpha=p["alpha"], l1_ratio=p["l1_ratio"])
        )
        reference = cross_val_score(reference_pipeline(columns, estimator), X, y, cv=KFold(5))
        np.testing.assert_allclose(c["fold_scores"], reference, atol=1e-4)


RANDOM_SPACES = [
    pytest.param(
        {"type": "l1"},
        {"alpha": {"low": 1e-3, "high": 10.0, "log": True}},
        Lasso(),
        {"est__alpha": loguniform(1e-3, 10.0)},
        id="lasso-log-range",
    ),
    pytest.param(
        {"type": "elasticnet"},
        {"alpha": [0.01, 0.1, 1.0], "l1_ratio": {"low": 0.1, "high": 0.9}},
        ElasticNet(),
        # A range is uniform(low, high − low), with high − low as floats compute it.
        {"est__alpha": [0.01, 0.1, 1.0], "est__l1_ratio": uniform(0.1, 0.9 - 0.1)},
        id="elasticnet-list-and-range",
    ),
    pytest.param(
        {"type": "l2"},
        {"alpha": [0.001, 0.01, 0.1, 1, 10, 100, 1000]},
        Ridge(),
        {"est__alpha": [0.001, 0.01, 0.1, 1, 10, 100, 1000]},
        id="ridge-list-without-replacement",
    ),
    pytest.param(
        {},
        {
            "penalty": ["l1", "elasticnet", "l2"],
            "alpha": {"low": 1e-3, "high": 30.0, "log": True},
            "l1_ratio": {"low": 0.2, "high": 0.8},
        },
        None,
        [
            {"est": [Lasso()], "est__alpha": loguniform(1e-3, 30.0)},
            {
                "est": [ElasticNet()],
                "est__alpha": loguniform(1e-3, 30.0),
                "est__l1_ratio": uniform(0.2, 0.8 - 0.2),
            },
            {"est": [Ridge()], "est__alpha": loguniform(1e-3, 30.0)},
        ],
        id="penalty-comparison",
    ),
]


@pytest.mark.parametrize(("penalty", "space", "estimator", "distributions"), RANDOM_SPACES)
def test_random_search_equals_randomized_search_cv(
    penalty: dict[str, Any], space: dict[str, Any], estimator: Any, distributions: Any
) -> None:
    # The same seed draws the same candidates, in the same order, with the same scores.
    columns = regression(n=150, p=8, noise=5.0, seed=5)
    tuning = {"strategy": "random", "space": space, "n_trials": 5, "random_state": 11}
    spec = job(columns, penalty, tuning)
    summary = fit_documents(columns, spec, training_sha256="x").summary
    X, y = reference_inputs(columns, spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = RandomizedSearchCV(
            reference_pipeline(columns, estimator or Lasso()),
            distributions,
            n_iter=5,
            random_state=11,
            cv=KFold(5),
        ).fit(X, y)
    drawn = []
    for params in search.cv_results_["params"]:
        est = params.get("est", estimator)
        drawn.append(
            {
                "alpha": params.get("est__alpha", 1.0),
                "l1_ratio": params.get("est__l1_ratio") if isinstance(est, ElasticNet) else None,
                "kind": {Lasso: "l1", ElasticNet: "elasticnet", Ridge: "l2"}[type(est)],
            }
        )
    ours = [
        {
            "alpha": c["params"].get("alpha", 1.0),
            "l1_ratio": c["params"].get("l1_ratio"),
            "kind": c["params"].get("penalty", penalty.get("type")),
        }
        for c in summary["tuning"]["candidates"]
    ]
    assert ours == drawn
    assert_same_as(summary, search, rtol=1e-4, atol=1e-4)


def test_random_search_on_a_small_grid_draws_without_replacement() -> None:
    columns = regression(n=60, p=5, noise=1.0)
    tuning = {"strategy": "random", "space": {"alpha": [0.1, 1.0, 10.0]}, "n_trials": 5}
    calls: list[tuple[int, int, str]] = []
    summary = fit_documents(
        columns,
        job(columns, {"type": "l2"}, tuning),
        training_sha256="x",
        progress=lambda done, total, msg: calls.append((done, total, msg)),
    ).summary
    params = [c["params"]["alpha"] for c in summary["tuning"]["candidates"]]
    assert sorted(params) == [0.1, 1.0, 10.0]
    assert summary["tuning"]["n_candidates"] == 3
    assert calls[-1][:2] == (3 * 5 + 1, 3 * 5 + 1)


def test_bayesian_search_repeats_exactly() -> None:
    columns = regression(n=80, p=10, noise=8.0, seed=6)
    tuning = {
        "strategy": "bayesian",
        "space": {"penalty": ["l1", "l2"], "alpha": {"low": 1e-3, "high": 30.0, "log": True}},
        "n_trials": 14,
        "random_state": 3,
    }
    spec = job(columns, {}, tuning)
    first = fit_documents(columns, spec, training_sha256="x").summary["tuning"]
    again = fit_documents(columns, spec, training_sha256="x").summary["tuning"]
    strip = ("fit_seconds",)

    def comparable(t: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k not in strip} for c in t["candidates"]]

    assert comparable(first) == comparable(again)
    assert first["best_params"] == again["best_params"]
    assert len(first["candidates"]) == 14
    other = fit_documents(
        columns, job(columns, {}, {**tuning, "random_state": 4}), training_sha256="x"
    ).summary["tuning"]
    assert comparable(other) != comparable(first)
    # The best candidate is the best of those tried, scored like cross_val_score.
    means = [c["mean_score"] for c in first["candidates"]]
    assert first["best_score"] == max(means)
    p = first["best_params"]
    estimator = Lasso(alpha=p["alpha"]) if p["penalty"] == "l1" else Ridge(alpha=p["alpha"])
    X, y = reference_inputs(columns, spec)
    reference = cross_val_score(reference_pipeline(columns, estimator), X, y, cv=KFold(5))
    assert first["best_score"] == pytest.approx(reference.mean(), abs=1e-4)


def test_bayesian_search_over_a_small_list_stops_at_its_size() -> None:
    columns = regression(n=60, p=5, noise=1.0)
    tuning = {"strategy": "bayesian", "space": {"alpha": [0.1, 1.0]}, "n_trials": 10}
    spec = job(columns, {"type": "l1"}, tuning)
    summary = fit_documents(columns, spec, training_sha256="x").summary
    assert sorted(c["params"]["alpha"] for c in summary["tuning"]["candidates"]) == [0.1, 1.0]


def test_timeout_keeps_the_best_finished_candidates() -> None:
    # Enough trials that 2 s cannot finish them on a fast machine; the first candidates
    # finish after ~1/50 of the work, so a loaded machine still finishes some.
    TRIALS = 20000
    columns = regression(n=600, p=40, noise=10.0, seed=9)
    tuning = {
        "strategy": "random",
        "space": {
            "alpha": {"low": 1e-4, "high": 1.0, "log": True},
            "l1_ratio": {"low": 0.05, "high": 0.95},
        },
        "n_trials": TRIALS,
        "timeout_seconds": 2.0,
    }
    spec = job(columns, {"type": "elasticnet"}, tuning)
    outcome = fit_documents(columns, spec, training_sha256="x")
    summary = outcome.summary
    t = summary["tuning"]
    assert t["timed_out"] is True
    # The job says so too: its final progress counts the fits that ran, not the plan.
    done, total, message = outcome.progress
    assert total == TRIALS * 5 + 1
    assert t["n_candidates_finished"] * 5 + 1 <= done < total
    assert "timeout_seconds=2.0" in message
    assert f"{t['n_candidates_finished']} of {TRIALS} candidates" in message
    assert 0 < t["n_candidates_finished"] < TRIALS
    assert len(t["candidates"]) == t["n_candidates_finished"]
    assert t["n_candidates"] == TRIALS
    means = [c["mean_score"] for c in t["candidates"]]
    assert t["best_score"] == max(means)
    assert any("timeout_seconds=2.0" in w for w in summary["warnings"])
    assert summary["penalty"]["alpha"] == t["best_params"]["alpha"]


def test_should_stop_cancels_the_search_promptly() -> None:
    columns = regression(n=600, p=40, noise=10.0, seed=9)
    tuning = {
        "strategy": "random",
        "space": {"alpha": {"low": 1e-4, "high": 1.0, "log": True}},
        "n_trials": 5000,
    }
    spec = job(columns, {"type": "elasticnet"}, tuning)
    calls = 0

    def stop_after_a_few_checks() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    progress: list[int] = []
    with pytest.raises(FitCancelled):
        fit_documents(
            columns,
            spec,
            training_sha256="x",
            progress=lambda done, total, msg: progress.append(done),
            should_stop=stop_after_a_few_checks,
        )
    assert progress and progress[-1] < 5000 * 5


def test_count_candidates() -> None:
    def count(tuning: dict[str, Any], penalty: dict[str, Any]) -> int:
        return count_candidates(
            TuningSpec.model_validate(tuning), PenaltySpec.model_validate(penalty)
        )

    space = {"alpha": SEED_ALPHAS, "l1_ratio": [0.2, 0.5, 0.8]}
    assert count({"space": {"alpha": SEED_ALPHAS}}, {"type": "l2"}) == 6
    assert count({"space": space}, {"type": "elasticnet"}) == 18
    assert count({"space": {**space, "penalty": ["l1", "l2", "elasticnet"]}}, {}) == 6 + 6 + 18
    assert count({"space": {"penalty": ["lasso", "ridge"]}}, {}) == 2
    random = {"strategy": "random", "n_trials": 50}
    assert count({**random, "space": {"alpha": SEED_ALPHAS}}, {"type": "l1"}) == 6
    assert count({**random, "space": {"alpha": {"low": 0.1, "high": 1.0}}}, {"type": "l1"}) == 50
    assert count({**random, "strategy": "bayesian", "space": space}, {"type": "elasticnet"}) == 18


def test_progress_counts_candidate_fold_fits() -> None:
    columns = regression()
    calls: list[tuple[int, int, str]] = []
    spec = job(columns, {"type": "l1"}, {"space": {"alpha": SEED_ALPHAS}, "cv": {"folds": 3}})
    fit_documents(
        columns,
        spec,
        training_sha256="x",
        progress=lambda done, total, msg: calls.append((done, total, msg)),
    )
    assert {total for _, total, _ in calls} == {6 * 3 + 1}
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)
    assert calls[-1] == (19, 19, "done")


def test_tuned_path_is_the_cv_curve_of_the_chosen_penalty() -> None:
    columns = regression(n=150, p=12, noise=15.0, seed=4)
    alphas = [0.01, 0.1, 0.5, 1.0, 3.0, 10.0]
    spec = job(columns, {"type": "l1"}, {"space": {"alpha": alphas}})
    summary = fit_documents(columns, spec, training_sha256="x").summary
    path = summary["path"]
    assert path["alphas"] == sorted(alphas, reverse=True)
    by_alpha = {c["params"]["alpha"]: c for c in summary["tuning"]["candidates"]}
    assert path["cv"]["mean"] == [by_alpha[a]["mean_score"] for a in path["alphas"]]
    assert path["cv"]["std"] == [by_alpha[a]["std_score"] for a in path["alphas"]]
    X, y = reference_inputs(columns, spec)
    names = summary["feature_names_out"]
    for j, alpha in enumerate(path["alphas"]):
        cold = reference_pipeline(columns, Lasso(alpha=alpha, tol=1e-10, max_iter=100_000))
        fitted = cold.fit(X, y)[-1]
        coefs = [path["coefficients"][name][j] for name in names]
        np.testing.assert_allclose(coefs, fitted.coef_, atol=1e-5 * np.abs(fitted.coef_).max())
        assert path["n_nonzero"][j] == int(np.count_nonzero(fitted.coef_))
    chosen = path["alphas"].index(summary["penalty"]["alpha"])
    assert path["n_nonzero"][chosen] == summary["n_nonzero"]


@pytest.mark.parametrize("kind", ["l1", "elasticnet", "l2"])
def test_a_single_chain_search_solves_the_models_path_as_the_refit_would(kind: str) -> None:
    # With one chain, a thread the folds leave idle solves the model's regularization path
    # during the search; it must be the path the refit would compute afterwards, to the bit.
    columns = regression(n=150, p=12, noise=15.0, seed=4)
    alphas = [0.01, 0.1, 0.5, 1.0, 3.0, 10.0]
    spaces = [{"alpha": alphas}, {"alpha": alphas, "penalty": ["l1", "l2"]}]
    for space in spaces:
        spec = job(columns, {"type": kind}, {"space": space})
        assert spec.tuning is not None
        layout = select_features(
            columns, target="y", features=spec.features, prep=PreprocessingSpec()
        )
        y = np.asarray(columns["y"])
        train, _ = split_rows(len(y), spec.split)
        outcome = run_search(
            columns,
            layout,
            spec.preprocessing,
            y,
            train,
            spec.tuning,
            spec.penalty,
            progress=lambda *_: None,
            should_stop=lambda: False,
        )
        assert outcome.path_problem is not None
        if "penalty" in space:
            assert outcome.path_coefficients is None  # several chains: after the search
            continue
        assert outcome.path_coefficients is not None
        coefs, converged = outcome.path_coefficients
        again, converged_again = outcome.penalty.family.coefficient_path(
            np.empty((0, 0)), y, outcome.penalty, outcome.path_alphas, problem=outcome.path_problem
        )
        np.testing.assert_array_equal(coefs, again)
        assert converged == converged_again


@pytest.mark.parametrize(
    "penalty",
    [{"type": "l1", "alpha": 0.5}, {"type": "l2", "alpha": 3.0}, {"type": "elasticnet"}],
)
def test_untuned_path_surrounds_the_fitted_alpha(penalty: dict[str, Any]) -> None:
    columns = regression(n=150, p=12, noise=15.0, seed=4)
    spec = JobSpec.model_validate({"dataset_id": "d", "target": "y", "penalty": penalty})
    summary = fit_documents(columns, spec, training_sha256="x").summary
    path = summary["path"]
    alpha = summary["penalty"]["alpha"]
    assert path["cv"] is None
    assert alpha in path["alphas"]
    assert path["alphas"] == sorted(path["alphas"], reverse=True)
    assert len(path["alphas"]) == 30  # as the README says
    j = path["alphas"].index(alpha)
    names = summary["feature_names_out"]
    at_fit = np.array([path["coefficients"][name][j] for name in names])
    fitted = np.array([summary["coefficients"]["scaled"][name] for name in names])
    np.testing.assert_allclose(at_fit, fitted, atol=1e-3 * np.abs(fitted).max())
    if penalty["type"] != "l2":
        assert path["n_nonzero"][0] == 0  # the largest alpha zeroes every coefficient


def test_a_dense_lasso_grid_scores_as_converged_fits() -> None:
    # With alphas close together a warm start is within a loose tolerance at once and the
    # path lags behind (at tol/100: r2 off by 3e-4 at 1000 alphas, another best alpha).
    X, y = make_regression(n_samples=200, n_features=10, n_informative=4, noise=5.0, random_state=5)
    columns: dict[str, Any] = {f"x{j}": X[:, j] for j in range(10)} | {"y": y}
    alphas = [float(a) for a in np.geomspace(10.0, 1e-3, 1000)]
    spec = job(columns, {"type": "l1"}, {"space": {"alpha": alphas}})
    summary = fit_documents(columns, spec, training_sha256="x").summary
    means = candidates_of(summary, "mean_score")
    X_train, y_train = reference_inputs(columns, spec)
    best = int(np.argmax(means))
    for i in sorted({*range(0, 1000, 50), best}):
        converged = cross_val_score(
            reference_pipeline(columns, Lasso(alpha=alphas[i], tol=1e-12, max_iter=100_000)),
            X_train,
            y_train,
            cv=KFold(5),
        ).mean()
        assert means[i] == pytest.approx(converged, abs=1e-7), alphas[i]


def test_warm_started_path_meets_the_cold_fits() -> None:
    X, y = make_regression(n_samples=300, n_features=60, noise=5.0, random_state=1)
    X = StandardScaler().fit_transform(X)
    alphas = list(np.geomspace(10, 0.001, 20))
    for kind, ratio in [("l1", None), ("elasticnet", 0.4)]:
        penalty = Penalty(kind, 1.0, ratio, True, 1000, 1e-4, False)  # type: ignore[arg-type]
        coefs, converged = penalty.family.coefficient_path(X, y, penalty, alphas)
        assert converged
        for j, alpha in enumerate(alphas):
            cold = replace_alpha(penalty, alpha).estimator().set_params(tol=1e-12, max_iter=10**5)
            cold.fit(X, y)
            scale = max(np.abs(cold.coef_).max(), 1.0)
            np.testing.assert_allclose(coefs[:, j], cold.coef_, atol=1e-5 * scale)


def replace_alpha(penalty: Penalty, alpha: float) -> Penalty:
    from dataclasses import replace

    return replace(penalty, alpha=alpha)


def test_tuning_summary_is_json_safe_and_cv_metrics_match_the_chosen_candidate() -> None:
    import json

    columns = regression()
    spec = job(
        columns,
        {"type": "l2"},
        {"space": {"alpha": SEED_ALPHAS}, "scoring": "neg_mean_absolute_error"},
    )
    summary = json.loads(json.dumps(fit_documents(columns, spec, training_sha256="x").summary))
    t = summary["tuning"]
    assert set(t) >= {
        "strategy",
        "scoring",
        "cv",
        "select",
        "best_params",
        "best_score",
        "best_index",
        "candidates",
        "timed_out",
        "n_candidates",
    }
    chosen = t["candidates"][t["best_index"]]
    assert summary["metrics"]["cv"]["mae"] == pytest.approx(-chosen["mean_score"], rel=1e-12)
    X, y = reference_inputs(columns, spec)
    pipe = reference_pipeline(columns, Ridge(alpha=t["best_params"]["alpha"]))
    for name, scorer in [("r2", "r2"), ("mse", "neg_mean_squared_error")]:
        reference = cross_val_score(pipe, X, y, cv=KFold(5), scoring=scorer).mean()
        assert abs(summary["metrics"]["cv"][name]) == pytest.approx(abs(reference), rel=1e-9)


def test_each_compared_estimator_gets_its_own_default_max_iter() -> None:
    columns = regression(n=80, p=6, noise=5.0, seed=1)
    spec = job(columns, {}, {"space": {"penalty": ["ridge", "lasso"], "alpha": [0.01, 1.0, 100.0]}})
    summary = fit_documents(columns, spec, training_sha256="x").summary
    comparison = summary["tuning"]["comparison"]
    assert list(comparison) == ["l2", "l1"]
    assert all(isinstance(entry["n_nonzero"], int) for entry in comparison.values())
    expected = {"l1": 1000, "l2": None}[summary["penalty"]["type"]]
    assert summary["penalty"]["max_iter"] == expected


def test_lambda_form_penalty_is_searched_in_sklearn_alpha() -> None:
    columns = regression(n=100, p=8, noise=5.0, seed=2)
    spec = job(columns, {"lambda2": 0.5}, {"space": {"alpha": [0.1, 10.0, 1000.0]}})
    summary = fit_documents(columns, spec, training_sha256="x").summary
    alpha = summary["tuning"]["best_params"]["alpha"]
    echo = summary["penalty"]
    assert echo["type"] == "l2" and echo["alpha"] == alpha
    assert echo["given_as"] == "sklearn"
    assert echo["lambda2"] == pytest.approx(alpha / summary["n_train"])


def test_undefined_cv_scores_are_reported() -> None:
    # Ten folds of ten training rows: r2 is undefined on one validation row (GridSearchCV
    # scores NaN too), while the MSE is defined.
    columns = regression(n=10, p=3, noise=1.0, seed=3)
    base = {"space": {"alpha": [0.1, 1.0]}, "cv": {"folds": 10}}
    for scoring, undefined in [("r2", True), ("neg_mean_squared_error", False)]:
        spec = job(columns, {"type": "l2"}, {**base, "scoring": scoring})
        spec = spec.model_copy(update={"split": spec.split.model_copy(update={"test_size": 0})})
        summary = fit_documents(columns, spec, training_sha256="x").summary
        means = [c["mean_score"] for c in summary["tuning"]["candidates"]]
        notes = [w for w in summary["warnings"] if "no finite mean CV score" in w]
        if undefined:
            assert means == [None, None]
            assert notes and "every candidate is affected" in notes[0]
        else:
            assert None not in means and not notes
