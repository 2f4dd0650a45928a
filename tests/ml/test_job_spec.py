"""Validation of the job spec: the request body of POST /v1/jobs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from service.ml.spec import JobSpec, PenaltySpec, RangeSpec, SplitSpec, TuningSpec


def job(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"dataset_id": "ds1", "target": "y", "penalty": {"type": "l1"}}
    body.update(overrides)
    return body


def error_of(exc: pytest.ExceptionInfo[ValidationError]) -> tuple[tuple[Any, ...], str]:
    errors = exc.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["loc"], errors[0]["msg"]


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("l1", "l1"), ("lasso", "l1"), ("l2", "l2"), ("ridge", "l2"), ("elasticnet", "elasticnet")],
)
def test_type_aliases_are_normalised(given: str, canonical: str) -> None:
    assert PenaltySpec.model_validate({"type": given}).type == canonical


def test_sklearn_form_defaults_match_sklearn() -> None:
    lasso = PenaltySpec(type="l1")
    assert (lasso.alpha, lasso.l1_ratio, lasso.tol, lasso.max_iter) == (1.0, None, 1e-4, None)
    enet = PenaltySpec(type="elasticnet", alpha=0.3)
    assert (enet.alpha, enet.l1_ratio) == (0.3, 0.5)


@pytest.mark.parametrize(
    ("lambdas", "kind"),
    [
        ({"lambda1": 0.2}, "l1"),
        ({"lambda1": 0.2, "lambda2": 0}, "l1"),
        ({"lambda2": 0.1}, "l2"),
        ({"lambda1": 0, "lambda2": 0.1}, "l2"),
        ({"lambda1": 0.2, "lambda2": 0.1}, "elasticnet"),
    ],
)
def test_lambda_form_infers_the_type(lambdas: dict[str, float], kind: str) -> None:
    spec = PenaltySpec.model_validate(lambdas)
    assert spec.type == kind
    assert spec.alpha is None and spec.l1_ratio is None
    assert PenaltySpec.model_validate({**lambdas, "type": kind}).type == kind


@pytest.mark.parametrize(
    ("body", "loc", "fragment"),
    [
        ({"type": "l1", "alpha": -0.1}, ("alpha",), "greater than or equal to 0"),
        ({"type": "l1", "alpha": float("inf")}, ("alpha",), "finite"),
        ({"type": "l1", "alpha": True}, ("alpha",), "valid number"),
        ({"type": "l1", "alpha": "0.1"}, ("alpha",), "valid number"),
        ({"type": "elasticnet", "l1_ratio": 1.5}, ("l1_ratio",), "less than or equal to 1"),
        ({"type": "l3"}, ("type",), "'l1'"),
        ({"type": "l1", "alhpa": 0.1}, ("alhpa",), "Extra inputs"),
        ({"type": "l1", "alpha": 0.1, "lambda1": 0.2}, (), "not both"),
        ({"lambda1": 0.2, "l1_ratio": 0.5}, (), "not both"),
        ({"lambda1": 0, "lambda2": 0}, (), "both 0"),
        ({"type": "l2", "lambda1": 0.2}, (), "does not match"),
        ({"type": "elasticnet", "lambda1": 0.2}, (), "does not match"),
        ({"type": "l1", "l1_ratio": 0.5}, (), "only to type 'elasticnet'"),
        ({"type": "l1", "max_iter": 0}, ("max_iter",), "greater than or equal to 1"),
        ({"type": "l1", "tol": 0}, ("tol",), "greater than 0"),
    ],
)
def test_penalty_errors(body: dict[str, Any], loc: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate(job(penalty=body))
    got_loc, msg = error_of(exc)
    assert got_loc == ("penalty", *loc)
    assert fragment in msg
    assert not msg.startswith("Value error")


def test_a_type_is_required_unless_tuning_searches_penalty() -> None:
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate(job(penalty={"alpha": 0.1}))
    assert "penalty.type is required" in error_of(exc)[1]
    spec = JobSpec.model_validate(
        job(penalty={"alpha": 0.1}, tuning={"space": {"penalty": ["lasso", "l1", "ridge"]}})
    )
    assert spec.penalty.type is None
    assert spec.tuning is not None and spec.tuning.space["penalty"] == ["l1", "l2"]


def test_job_defaults_and_echo() -> None:
    spec = JobSpec.model_validate(job())
    dumped = spec.model_dump()
    assert dumped["preprocessing"] == {
        "scaling": "standard",
        "impute": "mean",
        "categorical": "onehot",
    }
    assert dumped["split"] == {"test_size": 0.2, "shuffle": True, "random_state": 0}
    assert dumped["tuning"] is None and dumped["features"] is None
    assert JobSpec.model_validate(dumped) == spec


@pytest.mark.parametrize(
    ("body", "loc", "fragment"),
    [
        ({"features": ["a", "a"]}, ("features",), "duplicate"),
        ({"features": []}, ("features",), "at least one"),
        ({"features": ["a", "y"]}, (), "cannot also be a feature"),
        ({"split": {"test_size": 1.0}}, ("split", "test_size"), "[0, 1)"),
        ({"split": {"test_size": -1}}, ("split", "test_size"), ">= 0"),
        # split.stratify is a field since issue 12 (classification); a misspelling is not.
        ({"split": {"test_size": 0.2, "stratified": True}}, ("split", "stratified"), "Extra"),
        ({"preprocessing": {"scaling": "minmax"}}, ("preprocessing", "scaling"), "'standard'"),
        ({"extra": 1}, ("extra",), "Extra inputs"),
    ],
)
def test_job_errors(body: dict[str, Any], loc: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate(job(**body))
    got_loc, msg = error_of(exc)
    assert got_loc == loc
    assert fragment in msg


@pytest.mark.parametrize("test_size", [0, 0.0, 0.25, 7])
def test_test_size_accepts_fractions_and_row_counts(test_size: float) -> None:
    assert SplitSpec(test_size=test_size).test_size == test_size


def test_tuning_space_is_validated_and_normalised() -> None:
    tuning = TuningSpec.model_validate(
        {
            "strategy": "random",
            "space": {"alpha": {"low": 1e-4, "high": 10, "log": True}, "l1_ratio": [0, 1, 0.5]},
        }
    )
    assert tuning.space["alpha"] == RangeSpec(low=1e-4, high=10, log=True)
    assert tuning.space["l1_ratio"] == [0.0, 1.0, 0.5]
    assert tuning.cv.folds == 5 and tuning.scorer == "r2" and tuning.n_trials == 50


@pytest.mark.parametrize(
    ("tuning", "loc", "fragment"),
    [
        ({"space": {"gamma": [1]}}, ("space",), "unknown search dimension"),
        ({"space": {}}, ("space",), "at least one"),
        ({"space": {"alpha": []}}, ("space",), "non-empty"),
        ({"space": {"alpha": [0.1, -1]}}, ("space",), "space.alpha[1]"),
        ({"space": {"alpha": [True]}}, ("space",), "not a finite number"),
        ({"space": {"l1_ratio": [1.5]}}, ("space",), "in [0, 1]"),
        ({"space": {"penalty": ["l1", "l0"]}}, ("space",), "space.penalty[1]"),
        ({"space": {"alpha": {"low": 1, "high": 10}}}, (), "grid search needs lists"),
        (
            {"strategy": "bayesian", "space": {"alpha": {"low": 0, "high": 1, "log": True}}},
            ("space",),
            "log range needs low > 0",
        ),
        ({"strategy": "random", "space": {"alpha": {"low": 2, "high": 1}}}, ("space",), "low"),
        ({"space": {"alpha": [1]}, "cv": {"folds": 1}}, ("cv", "folds"), "greater than"),
        ({"space": {"alpha": [1]}, "cv": {"random_state": 3}}, ("cv",), "shuffle"),
        ({"space": {"alpha": [1]}, "scoring": "f2"}, ("scoring",), "'r2'"),
        ({"space": {"alpha": [1]}, "n_trials": 0}, ("n_trials",), "greater than"),
        ({"space": {"alpha": [1]}, "timeout_seconds": 0}, ("timeout_seconds",), "greater"),
    ],
)
def test_tuning_errors(tuning: dict[str, Any], loc: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate(job(tuning=tuning))
    got_loc, msg = error_of(exc)
    assert got_loc == ("tuning", *loc)
    assert fragment in msg


def test_l1_ratio_search_needs_elasticnet() -> None:
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate(job(tuning={"space": {"l1_ratio": [0.2, 0.8]}}))
    assert "elasticnet" in error_of(exc)[1]
    JobSpec.model_validate(
        job(penalty={"type": "elasticnet"}, tuning={"space": {"l1_ratio": [0.2, 0.8]}})
    )
    JobSpec.model_validate(
        job(tuning={"space": {"l1_ratio": [0.2], "penalty": ["l1", "elasticnet"]}})
    )


def test_a_penalty_type_with_an_alpha_search_is_valid() -> None:
    spec = JobSpec.model_validate(job(tuning={"space": {"alpha": [0.01, 0.1, 1]}}))
    assert spec.penalty.type == "l1" and spec.penalty.alpha == 1.0
