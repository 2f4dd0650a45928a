"""The training job specification: what to fit, on which columns, and how to split and tune.

These pydantic models are the request body of ``POST /v1/jobs``; a validation error's
``loc`` becomes the JSON pointer of the offending field, so every rule lives on the
model that owns the field it talks about.

All models forbid unknown keys, so a typo (``"alhpa"``) is rejected instead of ignored.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

PenaltyKind = Literal["l1", "l2", "elasticnet"]
Task = Literal["regression", "classification"]
RegressionScoring = Literal[
    "r2", "neg_mean_squared_error", "neg_root_mean_squared_error", "neg_mean_absolute_error"
]
# scikit-learn's scorer names for a classifier (service.ml.classification_search scores them).
ClassificationScoring = Literal[
    "accuracy",
    "balanced_accuracy",
    "neg_log_loss",
    "roc_auc",
    "roc_auc_ovr",
    "f1",
    "f1_macro",
    "precision",
    "recall",
]
Scoring = Literal[RegressionScoring, ClassificationScoring]  # one flat Literal: one error
REGRESSION_SCORERS: tuple[str, ...] = get_args(RegressionScoring)
CLASSIFICATION_SCORERS: tuple[str, ...] = get_args(ClassificationScoring)
DEFAULT_SCORING: dict[str, str] = {"regression": "r2", "classification": "neg_log_loss"}

PENALTY_ALIASES: dict[str, PenaltyKind] = {
    "l1": "l1",
    "lasso": "l1",
    "l2": "l2",
    "ridge": "l2",
    "elasticnet": "elasticnet",
}
SEARCHABLE = ("alpha", "C", "l1_ratio", "penalty")
# The strength each task searches: alpha (regression), C (classification, LogisticRegression).
STRENGTH = {"regression": "alpha", "classification": "C"}

# Solver bounds a fit can finish within: coordinate descent sweeps (scikit-learn's default
# is 1000), and the tolerance, whose duality gap (relative to ‖y‖²) float64 sums cannot
# bring much below 1e-14; 1e-300 would only run until max_iter.
MAX_ITER = 1_000_000
MIN_TOL = 1e-14

# A finite, non-negative float; JSON integers are accepted, booleans and strings are not.
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, strict=True)]


def _spec_error(kind: str, message: str, at: tuple[str | int, ...] = ()) -> PydanticCustomError:
    """A validation error of ``kind``; ``at``: the offending field, relative to the model.

    A custom error keeps the message free of pydantic's "Value error, " prefix. A model
    validator's error sits at the model itself; ``at`` (in the error's context, appended to
    its ``loc`` by the API's problem rendering) names the field it is about.
    """
    return PydanticCustomError(kind, message, {"at": at} if at else None)


def _without_unset(dumped: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``dumped`` without those of ``keys`` that are None (fields a task leaves unset)."""
    for key in keys:
        if dumped.get(key) is None:
            dumped.pop(key, None)
    return dumped


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PenaltySpec(_Spec):
    """The regularization penalty, in scikit-learn's form or in the seed's lambda form.

    scikit-learn form: ``type`` with ``alpha`` (default 1.0) and, for ``elasticnet``,
    ``l1_ratio`` (default 0.5), meaning exactly what they mean for ``Lasso``, ``Ridge``
    and ``ElasticNet``.

    Lambda form: ``lambda1`` and ``lambda2`` in ``J(θ) = MSE(θ) + λ1·Σ|θi| + λ2·Σθi²``;
    ``type`` may be omitted and is inferred from which lambdas are positive. The exact
    conversion is documented in :mod:`service.ml.estimators.linear`.

    After validation ``type`` is canonical (``l1``, ``l2``, ``elasticnet``; the aliases
    ``lasso`` and ``ridge`` are normalised). It is ``None`` only in the scikit-learn form
    when no type was given, which a job accepts only when tuning searches ``penalty``.
    ``max_iter=None`` means the estimator's own default (1000 for Lasso/ElasticNet,
    the solver's default for Ridge).
    """

    type: Literal["l1", "l2", "elasticnet", "lasso", "ridge"] | None = None
    alpha: NonNegative | None = None
    l1_ratio: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)] | None = None
    lambda1: NonNegative | None = None
    lambda2: NonNegative | None = None
    fit_intercept: bool = True
    max_iter: Annotated[int, Field(ge=1, le=MAX_ITER, strict=True)] | None = None
    tol: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)] = 1e-4
    positive: bool = False
    # LogisticRegression's (task "classification" only; see service.ml.estimators.logistic).
    C: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)] | None = None
    class_weight: Literal["balanced"] | None = None

    @field_validator("tol")
    @classmethod
    def _check_tol(cls, value: float) -> float:
        if value < MIN_TOL:
            raise _spec_error(
                "tol_too_small",
                f"tol must be at least {MIN_TOL}: a smaller tolerance cannot be reached in "
                "float64 and would only keep the solver running until max_iter",
            )
        return value

    @model_serializer(mode="wrap")
    def _echo(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A regressor's penalty echoes as it always has: unset classifier fields are left out.
        return _without_unset(handler(self), ("C", "class_weight"))

    @property
    def uses_lambda_form(self) -> bool:
        """Whether the penalty was given as ``lambda1``/``lambda2``."""
        return self.lambda1 is not None or self.lambda2 is not None

    @model_validator(mode="after")
    def _check_penalty_form(self) -> Self:
        kind = PENALTY_ALIASES[self.type] if self.type is not None else None
        if self.C is not None and self.alpha is not None:
            raise _spec_error(
                "penalty_alpha_C",
                "give alpha (regression) or C (classification), not both",
                at=("C",),
            )
        if self.uses_lambda_form:
            sklearn_keys = [k for k in ("alpha", "l1_ratio", "C") if getattr(self, k) is not None]
            if sklearn_keys:
                raise _spec_error(
                    "penalty_form",
                    f"give either the scikit-learn form (alpha, l1_ratio) or the lambda form "
                    f"(lambda1, lambda2), not both: got {', '.join(sklearn_keys)} "
                    f"together with lambda1/lambda2",
                    at=(sklearn_keys[0],),
                )
            lambda1, lambda2 = self.lambda1 or 0.0, self.lambda2 or 0.0
            if lambda1 == 0 and lambda2 == 0:
                raise _spec_error(
                    "penalty_lambda",
                    "lambda1 and lambda2 are both 0: at least one must be positive "
                    "(for an unpenalized fit use type 'l2' with alpha 0)",
                    at=("lambda1" if self.lambda1 is not None else "lambda2",),
                )
            inferred: PenaltyKind = (
                "elasticnet" if lambda1 > 0 and lambda2 > 0 else "l1" if lambda1 > 0 else "l2"
            )
            if kind is not None and kind != inferred:
                raise _spec_error(
                    "penalty_type_mismatch",
                    f"type '{self.type}' does not match lambda1={lambda1}, lambda2={lambda2}, "
                    f"which describe an '{inferred}' penalty (lambda1 > 0 only: l1; "
                    f"lambda2 > 0 only: l2; both > 0: elasticnet)",
                    at=("type",),
                )
            self.type = inferred
            return self
        if kind is not None and kind != "elasticnet" and self.l1_ratio is not None:
            raise _spec_error(
                "penalty_l1_ratio",
                f"l1_ratio applies only to type 'elasticnet', not '{self.type}'",
                at=("l1_ratio",),
            )
        self.type = kind
        if self.alpha is None and self.C is None:
            self.alpha = 1.0
        if kind == "elasticnet" and self.l1_ratio is None:
            self.l1_ratio = 0.5
        return self


class PreprocessingSpec(_Spec):
    """How input columns become the design matrix (see :mod:`service.ml.preprocessing`).

    ``max_categories`` and ``min_frequency`` bound the one-hot columns of each text feature
    exactly as scikit-learn's ``OneHotEncoder`` arguments of those names do: values rarer
    than ``min_frequency`` (a count, or a fraction of the rows), and beyond the
    ``max_categories - 1`` most frequent ones, share one "infrequent" column, which also
    takes values never seen in training. Both null: every value has its own column and an
    unseen one has none. The service fills ``max_categories`` from its
    ``REGFIT_MAX_CATEGORIES`` when a job leaves it null, and refuses a larger one.
    """

    scaling: Literal["standard", "none"] = "standard"
    impute: Literal["mean", "median", "none"] = "mean"
    categorical: Literal["onehot", "drop"] = "onehot"
    max_categories: Annotated[int, Field(ge=2, strict=True)] | None = None
    min_frequency: (
        Annotated[int, Field(ge=1, strict=True)]
        | Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False, strict=True)]
        | None
    ) = None

    @model_serializer(mode="wrap")
    def _echo(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Unset bounds are left out, so an unbounded spec echoes as it always has.
        dumped: dict[str, Any] = handler(self)
        for key in ("max_categories", "min_frequency"):
            if dumped.get(key) is None:
                dumped.pop(key, None)
        return dumped


class SplitSpec(_Spec):
    """``sklearn.model_selection.train_test_split`` arguments; ``test_size`` 0 means no test set.

    ``test_size`` is a fraction in [0, 1) or a number of rows (an integer >= 0).
    """

    test_size: StrictInt | StrictFloat = 0.2
    shuffle: bool = True
    random_state: Seed | None = 0
    # ``train_test_split(stratify=y)``; None: true for classification, false for regression.
    stratify: bool | None = None

    @model_serializer(mode="wrap")
    def _echo(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_unset(handler(self), ("stratify",))

    @field_validator("test_size")
    @classmethod
    def _check_test_size(cls, value: int | float) -> int | float:
        if isinstance(value, int):
            if value < 0:
                raise _spec_error("test_size", "an integer test_size is a row count: must be >= 0")
        elif not (math.isfinite(value) and 0 <= value < 1):
            raise _spec_error(
                "test_size",
                "a fractional test_size must be in [0, 1); give an integer for a row count",
            )
        return value


class CVSpec(_Spec):
    """``sklearn.model_selection.KFold`` arguments for tuning."""

    # KFold needs at least two folds; beyond 100 a fold is too small to score sensibly.
    folds: Annotated[int, Field(ge=2, le=100, strict=True)] = 5
    shuffle: bool = False
    random_state: Seed | None = None

    @model_validator(mode="after")
    def _check_seed_needs_shuffle(self) -> Self:
        # KFold itself rejects this combination; say so before the job is queued.
        if self.random_state is not None and not self.shuffle:
            raise _spec_error(
                "cv_random_state",
                "random_state has no effect when shuffle is false: set shuffle to true "
                "or leave random_state null",
                at=("random_state",),
            )
        return self


class RangeSpec(_Spec):
    """A continuous search dimension for random/Bayesian search: ``[low, high]``, optionally log."""

    low: Annotated[float, Field(allow_inf_nan=False, strict=True)]
    high: Annotated[float, Field(allow_inf_nan=False, strict=True)]
    log: bool = False

    @model_validator(mode="after")
    def _check_bounds(self) -> Self:
        if not self.low < self.high:
            raise _spec_error("range_bounds", f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise _spec_error("range_log", "a log range needs low > 0", at=("low",))
        return self


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_dimension(key: str, values: Any) -> list[float] | list[str] | RangeSpec:
    """Validate and normalise one search dimension of ``TuningSpec.space``."""
    if isinstance(values, RangeSpec | dict):
        if key == "penalty":
            raise _spec_error(
                "space_penalty", "space.penalty must be a list of penalty types", at=(key,)
            )
        if isinstance(values, RangeSpec):
            spec = values
        else:
            try:
                spec = RangeSpec.model_validate(values)
            except ValidationError as exc:
                first = exc.errors()[0]
                at = (key, *first["loc"], *first.get("ctx", {}).get("at", ()))
                raise _spec_error(first["type"], f"space.{key}: {first['msg']}", at=at) from None
        if key == "alpha" and spec.low < 0:
            raise _spec_error("space_range", "space.alpha: low must be >= 0", at=(key, "low"))
        if key == "C" and spec.low <= 0:
            raise _spec_error("space_range", "space.C: low must be > 0", at=(key, "low"))
        if key == "l1_ratio" and not (spec.low >= 0 and spec.high <= 1):
            raise _spec_error(
                "space_range", "space.l1_ratio: the range must lie within [0, 1]", at=(key,)
            )
        return spec
    if not isinstance(values, list) or not values:
        raise _spec_error(
            "space_values", f"space.{key} must be a non-empty list (or a range object)", at=(key,)
        )
    if key == "penalty":
        kinds: list[str] = []
        for i, value in enumerate(values):
            if not isinstance(value, str) or value not in PENALTY_ALIASES:
                raise _spec_error(
                    "space_penalty",
                    f"space.penalty[{i}]: {value!r} is not one of {', '.join(PENALTY_ALIASES)}",
                    at=(key, i),
                )
            if PENALTY_ALIASES[value] not in kinds:
                kinds.append(PENALTY_ALIASES[value])
        return kinds
    numbers: list[float] = []
    for i, value in enumerate(values):
        if not _number(value) or not math.isfinite(value):
            raise _spec_error(
                "space_values", f"space.{key}[{i}]: {value!r} is not a finite number", at=(key, i)
            )
        if value < 0 or (key == "l1_ratio" and value > 1) or (key == "C" and value == 0):
            bound = {"l1_ratio": "in [0, 1]", "C": "> 0"}.get(key, ">= 0")
            raise _spec_error(
                "space_values", f"space.{key}[{i}]: {value!r} must be {bound}", at=(key, i)
            )
        numbers.append(float(value))
    return numbers


class TuningSpec(_Spec):
    """A cross-validated hyper-parameter search over ``alpha``, ``l1_ratio`` and ``penalty``.

    ``space`` maps each searched dimension to a list of values, or (for ``random`` and
    ``bayesian`` only) to a :class:`RangeSpec`. Dimensions not searched take their values
    from the job's ``penalty``. After validation ``penalty`` values are canonical and
    de-duplicated and numeric values are floats.
    """

    strategy: Literal["grid", "random", "bayesian"] = "grid"
    space: dict[str, list[float] | list[str] | RangeSpec]
    n_trials: Annotated[int, Field(ge=1, le=1_000_000, strict=True)] = 50
    cv: CVSpec = Field(default_factory=CVSpec)
    # None: the task's default (r2 for regression, neg_log_loss for classification), filled
    # in by JobSpec so the echo shows the scorer used.
    scoring: Scoring | None = None
    timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)] | None = None
    select: Literal["best", "1se"] = "best"
    random_state: Seed | None = 0

    @property
    def scorer(self) -> str:
        """The scorer's name (the job fills in the task's default; r2 for a bare spec)."""
        return self.scoring or DEFAULT_SCORING["regression"]

    @field_validator("space", mode="before")
    @classmethod
    def _check_space(cls, space: Any) -> Any:
        if not isinstance(space, dict):
            return space  # pydantic reports the type error
        unknown = sorted(set(space) - set(SEARCHABLE))
        if unknown:
            raise _spec_error(
                "space_keys",
                f"unknown search dimension(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(SEARCHABLE)}",
                at=(unknown[0],),
            )
        if not space:
            raise _spec_error(
                "space_empty", f"space must search at least one of {', '.join(SEARCHABLE)}"
            )
        return {key: _check_dimension(key, values) for key, values in space.items()}

    @model_validator(mode="after")
    def _check_ranges_need_sampling(self) -> Self:
        ranged = [key for key, values in self.space.items() if isinstance(values, RangeSpec)]
        if ranged and self.strategy == "grid":
            raise _spec_error(
                "space_grid_range",
                f"a grid search needs lists of values; space.{ranged[0]} is a range "
                f"(ranges are for strategy 'random' or 'bayesian')",
                at=("space", ranged[0]),
            )
        return self


# Registry names and aliases (service/registry): a letter or digit, then up to 99 letters,
# digits, ``_``, ``.`` or ``-`` — safe in a URL path segment without encoding. An alias may not
# be all digits (it would read as a version number) nor ``latest`` (which names the highest
# version).
REGISTRY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
RESERVED_ALIASES = frozenset({"latest"})
RegistryName = Annotated[str, Field(pattern=REGISTRY_NAME_PATTERN)]


def check_alias(alias: str) -> str:
    """Return ``alias`` when it may name an alias, else raise a validation error."""
    if alias.isdigit():
        raise _spec_error("alias_digits", f"an alias cannot be all digits ({alias!r})")
    if alias in RESERVED_ALIASES:
        raise _spec_error("alias_reserved", f"{alias!r} is reserved (it names the latest version)")
    return alias


AliasName = Annotated[RegistryName, AfterValidator(check_alias)]


class RegisterSpec(_Spec):
    """Register the job's model under ``name`` (created if new) on success, optionally
    moving ``alias`` to the new version."""

    name: RegistryName
    alias: AliasName | None = None
    description: Annotated[str, Field(max_length=5000)] | None = None


class JobSpec(_Spec):
    """A training job: dataset, target, features, penalty, preprocessing, split and tuning.

    ``features: null`` means every column except the target.
    """

    dataset_id: Annotated[str, Field(min_length=1)]
    target: Annotated[str, Field(min_length=1)]
    task: Task = "regression"
    features: list[str] | None = None
    penalty: PenaltySpec
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    tuning: TuningSpec | None = None
    # pydantic models inherit ``register`` (ABCMeta's), so the field is named
    # ``register_model`` in Python and ``register`` in JSON, both ways.
    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)

    name: Annotated[str, Field(max_length=200)] | None = None
    register_model: RegisterSpec | None = Field(default=None, alias="register")

    @model_serializer(mode="wrap")
    def _echo(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A regression job echoes as it always has (the task is its default).
        dumped: dict[str, Any] = handler(self)
        if dumped.get("task") == "regression":
            dumped.pop("task")
        return dumped

    @field_validator("features")
    @classmethod
    def _check_features(cls, features: list[str] | None) -> list[str] | None:
        if features is None:
            return None
        if not features:
            raise _spec_error(
                "features_empty", "features must name at least one column (or be null)"
            )
        duplicates = [name for name, count in Counter(features).items() if count > 1]
        if duplicates:
            raise _spec_error(
                "features_duplicate",
                f"duplicate feature(s): {', '.join(map(repr, duplicates))}",
                at=(features.index(duplicates[0], features.index(duplicates[0]) + 1),),
            )
        return features

    @model_validator(mode="before")
    @classmethod
    def _check_classifier_alpha(cls, data: Any) -> Any:
        # Before validation: the penalty fills a default alpha that a classifier then drops.
        if isinstance(data, dict) and data.get("task") == "classification":
            penalty = data.get("penalty")
            if isinstance(penalty, dict) and penalty.get("alpha") is not None:
                raise _spec_error(
                    "task_regression_only",
                    "penalty.alpha applies to regression; a classifier's regularization is C "
                    "(LogisticRegression's inverse regularization strength)",
                    at=("penalty", "alpha"),
                )
        return data

    @model_validator(mode="after")
    def _check_job(self) -> Self:
        if self.features is not None and self.target in self.features:
            raise _spec_error(
                "target_in_features",
                f"the target {self.target!r} cannot also be a feature",
                at=("features", self.features.index(self.target)),
            )
        self._check_task()
        space = self.tuning.space if self.tuning is not None else {}
        searched_kinds = space.get("penalty")
        if self.penalty.uses_lambda_form and searched_kinds is not None:
            raise _spec_error(
                "space_penalty_lambda",
                f"the lambda form fixes the penalty type (lambda1={self.penalty.lambda1}, "
                f"lambda2={self.penalty.lambda2} describe '{self.penalty.type}'), so "
                f"tuning.space cannot also compare penalty types; give the penalty in "
                f"scikit-learn form (alpha, l1_ratio: each compared estimator's own) instead",
                at=("tuning", "space", "penalty"),
            )
        if self.penalty.type is None and searched_kinds is None:
            raise _spec_error(
                "penalty_type_required",
                "penalty.type is required (l1, l2 or elasticnet; or give lambda1/lambda2) "
                "unless tuning.space searches 'penalty'",
                at=("penalty", "type"),
            )
        if "l1_ratio" in space:
            kinds = searched_kinds if isinstance(searched_kinds, list) else [self.penalty.type]
            if "elasticnet" not in kinds:
                raise _spec_error(
                    "space_l1_ratio",
                    "tuning.space.l1_ratio applies only to 'elasticnet', which this job "
                    "neither uses nor searches",
                    at=("tuning", "space", "l1_ratio"),
                )
        return self

    def _check_task(self) -> None:
        """The penalty's, split's and tuning's fields must belong to the job's task."""
        self._check_tuning_task()
        penalty = self.penalty
        if self.task == "regression":
            for key in ("C", "class_weight"):
                if getattr(penalty, key) is not None:
                    raise _spec_error(
                        "task_classification_only",
                        f"penalty.{key} applies to task 'classification' (LogisticRegression); "
                        f"this job's task is 'regression' (use alpha)",
                        at=("penalty", key),
                    )
            if self.split.stratify:
                raise _spec_error(
                    "task_classification_only",
                    "split.stratify applies to task 'classification' only",
                    at=("split", "stratify"),
                )
            return
        if penalty.positive:
            raise _spec_error(
                "task_regression_only",
                "penalty.positive applies to regression only",
                at=("penalty", "positive"),
            )
        if not penalty.uses_lambda_form:
            penalty.alpha = None
            if penalty.C is None:
                penalty.C = 1.0
        if self.split.stratify is None:
            self.split.stratify = True

    def _check_tuning_task(self) -> None:
        """The searched strength and the scorer are the task's; the default scorer is filled in."""
        tuning = self.tuning
        if tuning is None:
            return
        other = STRENGTH["classification" if self.task == "regression" else "regression"]
        if other in tuning.space:
            raise _spec_error(
                "space_task",
                f"tuning.space.{other} does not apply to task {self.task!r}; search "
                f"{STRENGTH[self.task]!r} instead",
                at=("tuning", "space", other),
            )
        if tuning.scoring is None:
            tuning.scoring = DEFAULT_SCORING[self.task]  # type: ignore[assignment]
        allowed = REGRESSION_SCORERS if self.task == "regression" else CLASSIFICATION_SCORERS
        if tuning.scoring not in allowed:
            raise _spec_error(
                "scoring_task",
                f"tuning.scoring {tuning.scoring!r} does not score task {self.task!r}; "
                f"use one of {', '.join(allowed)}",
                at=("tuning", "scoring"),
            )

    @property
    def stratified(self) -> bool:
        """Whether the train/test split is stratified by the target."""
        return bool(self.split.stratify)
