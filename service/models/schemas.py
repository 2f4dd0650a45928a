"""Response bodies of the model routes: the model, its compact list item, its path, its
portable document and predictions, and the predict request bodies.

These describe the bodies the fit writes (``service.models.documents`` from the fit's results) and
the stored portable document exactly; ``tests/test_contract.py`` validates every response
of the API test suite against them. Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from service.ml.spec import CVSpec, PenaltyKind, PreprocessingSpec, Scoring, SplitSpec
from service.models.classifier_schemas import (
    ClassifierMetrics,
    ClassifierModelItem,
    ClassifierModelOut,
    ClassifierPath,
    ClassifierPenaltyEcho,
    Label,
    Probabilities,
)

Number = float | None  # null where a value is not finite (or undefined, as r2 on one row)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PenaltyEcho(_Body):
    """The fitted penalty in scikit-learn's notation and the seed's λ notation."""

    type: PenaltyKind
    estimator: Literal["Lasso", "Ridge", "ElasticNet"]
    alpha: float
    l1_ratio: float | None
    lambda1: float
    lambda2: float
    fit_intercept: bool
    max_iter: int | None
    tol: float
    positive: bool
    given_as: Literal["sklearn", "lambda"]
    conversion: str = Field(description="The conversion between the two notations, in words")


class Metrics(_Body):
    """scikit-learn's regression metrics (``r2`` null on fewer than two rows)."""

    r2: Number
    mse: Number
    rmse: Number
    mae: Number


class ModelMetrics(_Body):
    train: Metrics
    test: Metrics | None = Field(description="null when split.test_size is 0")
    cv: Metrics | None = Field(description="The selected candidate's mean over the CV folds")


class Coefficients(_Body):
    """Coefficient per output feature (``feature_names_out``), in both units."""

    original: dict[str, Number]
    scaled: dict[str, Number]


class Intercept(_Body):
    original: Number
    scaled: Number


class CandidateParams(_Body):
    """The searched parameters of a candidate (keys as ``GridSearchCV`` shows them)."""

    alpha: float | None = None
    l1_ratio: float | None = None
    penalty: PenaltyKind | None = None


class Candidate(_Body):
    params: CandidateParams
    mean_score: Number
    std_score: Number
    fold_scores: list[Number]
    fit_seconds: float = Field(
        description="The candidate's own solve and validation-scoring seconds, summed over "
        "the folds: where one warm-started path solves many alphas in one call, the call's "
        "measured time is split across its alphas in proportion to the coordinate-descent "
        "sweeps each took (Ridge's alphas share one decomposition equally); building the "
        "folds is not included"
    )
    rank: int
    n_nonzero: float = Field(description="Mean nonzero coefficients over the folds")


class OneSE(_Body):
    threshold: Number
    max_score_index: int
    max_score: Number
    rule: str


class ComparedParams(_Body):
    alpha: float
    l1_ratio: float | None


class Compared(_Body):
    """The best candidate of one penalty when ``penalty`` is searched."""

    best_score: Number
    best_params: ComparedParams
    best_index: int
    n_nonzero: int | None


class Tuning(_Body):
    """The cross-validated search and its candidates (in evaluation order)."""

    strategy: Literal["grid", "random", "bayesian"]
    scoring: Scoring
    cv: CVSpec
    select: Literal["best", "1se"]
    best_params: CandidateParams
    best_score: Number
    best_index: int
    candidates: list[Candidate]
    timed_out: bool
    n_candidates: int
    n_candidates_finished: int
    seconds: float
    random_state: int | None = Field(default=None, description="random and bayesian only")
    one_se: OneSE | None = Field(default=None, description='select "1se" only')
    comparison: dict[str, Compared] | None = Field(
        default=None, description="When penalty is searched: per penalty kind"
    )


class ImportanceItem(_Body):
    feature: str = Field(description="A model column (``feature_names_out``)")
    coef_norm: Number = Field(description="Its coefficient on the standardized design")


class ModelOut(_Body):
    """A model: its identity and what the fit found (the path has a route of its own)."""

    id: str
    name: str | None
    job_id: str | None
    dataset_id: str
    target: str
    created_at: datetime
    fit_seconds: float
    features: list[str]
    dropped_features: list[str]
    feature_names_out: list[str]
    penalty: PenaltyEcho
    preprocessing: PreprocessingSpec
    coefficients: Coefficients
    intercept: Intercept
    n_nonzero: int
    metrics: ModelMetrics
    tuning: Tuning | None
    n_train: int
    n_test: int
    split: SplitSpec
    warnings: list[str]
    importance: list[ImportanceItem] = Field(
        description="The model's columns by decreasing |standardized coefficient| (H2O's coef_norm)"
    )


class TuningItem(_Body):
    strategy: Literal["grid", "random", "bayesian"]
    scoring: Scoring
    best_params: CandidateParams
    best_score: Number
    n_candidates: int


class ModelItem(_Body):
    """A model in a list: identity, metrics and counts. ``GET /v1/models/{id}`` has the rest."""

    id: str
    name: str | None
    job_id: str | None
    dataset_id: str
    target: str
    created_at: datetime
    fit_seconds: float
    penalty: PenaltyEcho
    n_nonzero: int
    n_train: int
    n_test: int
    metrics: ModelMetrics
    tuning: TuningItem | None


class ModelPage(_Body):
    items: list[ModelItem | ClassifierModelItem]
    total: int
    limit: int
    offset: int


class PredictorModelOut(_Body):
    """What a predictor key reads of a model: what prediction needs, nothing of the data
    (no coefficients, one-hot names, categories, training summaries, job or dataset ids)."""

    id: str
    name: str | None
    target: str
    task: Literal["regression", "classification"]
    created_at: datetime
    features: list[str]
    penalty: PenaltyEcho | ClassifierPenaltyEcho
    preprocessing: PreprocessingSpec
    metrics: ModelMetrics | ClassifierMetrics
    classes: list[Label] | None = Field(default=None, description="Classifiers only")
    dtypes: dict[str, str] | None = Field(
        default=None, description="Per feature; on the single-model route only"
    )


class PredictorModelPage(_Body):
    items: list[PredictorModelOut]
    total: int
    limit: int
    offset: int


class CVPoint(_Body):
    """A candidate of a random or Bayesian search: where it was evaluated and its CV score."""

    penalty: PenaltyKind
    alpha: float
    l1_ratio: float | None = Field(description="Searched or fixed; null for Lasso and Ridge")
    mean: Number
    std: Number


class PathCV(_Body):
    mean: list[Number] = Field(description="Per alpha of the path; null where not searched")
    std: list[Number]
    scoring: Scoring
    points: list[CVPoint] | None = Field(
        default=None,
        description="Random and Bayesian searches, on the model's own curve: every finished "
        "candidate as a point (a continuous l1_ratio gives each candidate its own chain); "
        "null for a grid, whose candidates lie on the curves",
    )


class PenaltyPath(_Body):
    """One penalty's coefficients (scaled units) and nonzero counts per alpha, descending."""

    penalty: PenaltyKind
    l1_ratio: float | None
    alpha: float = Field(
        description="The fitted model's alpha (in compared: that penalty's best alpha, the "
        "model's own penalty's the model's)"
    )
    alphas: list[float]
    units: Literal["scaled"]
    coefficients: dict[str, list[Number]]
    n_nonzero: list[int]
    converged: bool
    cv: PathCV | None = Field(description="The CV curve along the path (tuned models)")


class RegularizationPath(PenaltyPath):
    """The model's penalty along its alphas and, for a comparison, every compared one's."""

    compared: dict[str, PenaltyPath] | None = Field(
        default=None,
        description="When penalty is searched: per compared penalty kind, its path along "
        "its own searched alphas (at its best l1_ratio) with its CV curve",
    )


class PortableFeature(_Body):
    name: str
    kind: Literal["numeric", "categorical"]
    dtype: str


class PortableNumeric(_Body):
    names: list[str]
    impute: Literal["mean", "median", "none"]
    impute_values: list[float] | None
    scaling: Literal["standard", "none"]
    means: list[float] | None
    scales: list[float] | None


class PortableCategorical(_Body):
    names: list[str]
    categories: list[list[str | None]]
    infrequent: list[bool] | None = Field(
        default=None,
        description="Per feature: whether its rare values share a last one-hot column "
        "(present when some feature has one)",
    )


class PortableModel(_Body):
    """The portable model (``regfit.linear.v1``): predicts with numpy alone."""

    format: Literal["regfit.linear.v1"]
    target: str
    features: list[PortableFeature]
    numeric: PortableNumeric
    categorical: PortableCategorical
    coef: list[float]
    intercept: float
    feature_names_out: list[str]
    penalty: PenaltyEcho
    training_data_sha256: str


class PortableClassifier(_Body):
    """The portable classifier (``regfit.logistic.v1``): probabilities with numpy alone
    (docs/portable-model.md)."""

    format: Literal["regfit.logistic.v1"]
    task: Literal["classification"]
    target: str
    classes: list[Label] = Field(description="Labels as uploaded; probability columns' order")
    features: list[PortableFeature]
    numeric: PortableNumeric
    categorical: PortableCategorical
    coef: list[list[float]] = Field(
        description="One row per logit: one for two classes (the second class's), else one "
        "per class"
    )
    intercept: list[float]
    feature_names_out: list[str]
    penalty: ClassifierPenaltyEcho
    training_data_sha256: str


class PortableDocument(RootModel[PortableModel | PortableClassifier]):
    """A portable model: a regressor's or a classifier's."""


Cell = float | int | str | bool | None


class PredictRows(_Body):
    """Rows in the model's ``features`` order."""

    rows: list[list[Cell]] = Field(min_length=1)
    output: Literal["predict", "proba"] | None = Field(
        default=None, description="proba: a classifier's probabilities per class"
    )


class PredictRecords(_Body):
    """Records by feature name; keys that are not features are ignored."""

    records: list[dict[str, Cell]] = Field(min_length=1)
    output: Literal["predict", "proba"] | None = Field(
        default=None, description="proba: a classifier's probabilities per class"
    )


class Predictions(_Body):
    predictions: list[Number] | list[Label] = Field(
        description="One per input row, in order: a regressor's values, or a classifier's "
        "labels as they were uploaded"
    )
    model_id: str = Field(description="The model that answered")
    name: str | None = Field(description="The registered name the request named, if any")
    version: int | None = Field(description="The registered version that answered, if any")
    intercept: Number | None = Field(
        default=None, description="With ?explain=true: the intercept of every prediction"
    )
    contributions: list[dict[str, Number]] | None = Field(
        default=None,
        description="With ?explain=true: per row, each input feature's contribution (its "
        "coefficient times its standardized, imputed value; one-hot columns summed back to "
        "their feature); the contributions plus the intercept are the prediction",
    )


class PredictAnswer(RootModel[Predictions | Probabilities]):
    """Predictions (values or labels), or a classifier's probabilities (``output=proba``)."""


class ModelView(RootModel[ModelOut | ClassifierModelOut | PredictorModelOut]):
    """A model (a regressor or a classifier): the full body, or the predictor view a
    predictor key gets."""


class PathView(RootModel[RegularizationPath | ClassifierPath]):
    """A regressor's path along alpha, or a classifier's along C."""


class ModelListPage(RootModel[ModelPage | PredictorModelPage]):
    """A page of models: compact items, or the predictor views a predictor key gets."""
