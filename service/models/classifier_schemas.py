"""Response bodies of a classifier (``task: "classification"``): the model, its list item, its
path along ``C``, its portable document and its probabilities.

They describe what :mod:`service.models.classifier_documents` stores; the unions of
:mod:`service.models.schemas` (``ModelView``, ``ModelListPage``, …) include them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.ml.spec import ClassificationScoring, CVSpec, PenaltyKind, PreprocessingSpec, SplitSpec

Number = float | None
# A class label as it was uploaded: text, an integer or a boolean.
Label = str | int | bool


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassifierPenaltyEcho(_Body):
    """The fitted ``LogisticRegression`` penalty in scikit-learn's notation (``C``,
    ``l1_ratio``) and the seed's λ notation of the *mean* log-loss."""

    type: PenaltyKind
    estimator: Literal["LogisticRegression"]
    C: float
    l1_ratio: float | None
    class_weight: Literal["balanced"] | None
    solver: Literal["lbfgs", "saga"]
    alpha: None = Field(description="Always null: a classifier's strength is C")
    lambda1: float
    lambda2: float
    fit_intercept: bool
    max_iter: int | None
    tol: float
    positive: Literal[False]
    given_as: Literal["sklearn", "lambda"]
    conversion: str = Field(description="The conversion between the two notations, in words")


class ClassificationMetrics(_Body):
    """scikit-learn's classification metrics of the predicted probabilities."""

    accuracy: Number
    balanced_accuracy: Number
    log_loss: Number
    roc_auc: Number = Field(
        description="Binary ROC AUC, or one-vs-rest macro for 3+ classes (null when a class "
        "is absent from the rows)"
    )
    f1: Number = Field(description="Binary F1 of the second class, or macro F1 for 3+ classes")
    precision: dict[str, float] = Field(description="Per class (label as text)")
    recall: dict[str, float] = Field(description="Per class (label as text)")
    confusion_matrix: list[list[int]] = Field(
        description="Rows: true class, columns: predicted class, both in ``classes`` order"
    )
    class_counts: dict[str, int] = Field(description="Rows per true class")


class ClassifierCV(_Body):
    """The selected candidate's mean and standard deviation over the CV folds."""

    scoring: ClassificationScoring
    mean_score: Number
    std_score: Number


class ClassifierMetrics(_Body):
    train: ClassificationMetrics
    test: ClassificationMetrics | None = Field(description="null when split.test_size is 0")
    cv: ClassifierCV | None = Field(description="Tuned models only")


class CoefficientTable(_Body):
    """One row per logit (``rows``: the positive class for a binary target, else each class),
    one column per model column (``columns`` = ``feature_names_out``)."""

    rows: list[Label]
    columns: list[str]
    scaled: list[list[Number]]
    original: list[list[Number]] = Field(description="Numeric features in their own units")


class Intercepts(_Body):
    rows: list[Label]
    scaled: list[Number]
    original: list[Number]


class ClassifierParams(_Body):
    """A candidate's searched parameters (keys as ``GridSearchCV`` shows them)."""

    C: float | None = None
    l1_ratio: float | None = None
    penalty: PenaltyKind | None = None


class ClassifierCandidate(_Body):
    params: ClassifierParams
    mean_score: Number
    std_score: Number
    fold_scores: list[Number]
    rank: int


class ClassifierOneSE(_Body):
    threshold: Number
    rule: str


class ClassifierCompared(_Body):
    """The best candidate of one penalty when ``penalty`` is searched."""

    best_score: Number
    best_params: ClassifierParams
    best_index: int


class ClassifierTuning(_Body):
    """The stratified cross-validated search (``GridSearchCV`` with ``StratifiedKFold``)."""

    strategy: Literal["grid", "random", "bayesian"]
    scoring: ClassificationScoring
    cv: CVSpec
    select: Literal["best", "1se"]
    best_params: ClassifierParams
    best_score: Number
    best_index: int
    selected_index: int = Field(description="The refit candidate (the best, or the 1se pick)")
    selected_params: ClassifierParams
    candidates: list[ClassifierCandidate]
    n_candidates: int
    one_se: ClassifierOneSE | None = Field(description='select "1se" only')
    comparison: dict[str, ClassifierCompared] | None = Field(
        description="When penalty is searched: per penalty type"
    )


class ClassifierImportance(_Body):
    feature: str = Field(description="A model column (``feature_names_out``)")
    coef_norm: Number = Field(description="Its largest |coefficient| over the logits (scaled)")


class ClassifierModelOut(_Body):
    """A classifier: its identity, classes, coefficient table, metrics and tuning."""

    id: str
    name: str | None
    job_id: str | None
    dataset_id: str
    target: str
    task: Literal["classification"]
    classes: list[Label] = Field(description="The labels as uploaded, in probability order")
    created_at: datetime
    fit_seconds: float
    features: list[str]
    dropped_features: list[str]
    feature_names_out: list[str]
    penalty: ClassifierPenaltyEcho
    preprocessing: PreprocessingSpec
    coefficients: CoefficientTable
    intercepts: Intercepts
    n_nonzero: int = Field(description="Model columns with a nonzero coefficient in some row")
    metrics: ClassifierMetrics
    tuning: ClassifierTuning | None
    n_train: int
    n_test: int
    split: SplitSpec
    warnings: list[str]
    importance: list[ClassifierImportance]


class ClassifierTuningItem(_Body):
    strategy: Literal["grid", "random", "bayesian"]
    scoring: ClassificationScoring
    best_params: ClassifierParams
    best_score: Number
    n_candidates: int


class ClassifierModelItem(_Body):
    """A classifier in a list (``GET /v1/models/{id}`` has the rest)."""

    id: str
    name: str | None
    job_id: str | None
    dataset_id: str
    target: str
    task: Literal["classification"]
    created_at: datetime
    fit_seconds: float
    penalty: ClassifierPenaltyEcho
    n_nonzero: int
    n_train: int
    n_test: int
    metrics: ClassifierMetrics
    tuning: ClassifierTuningItem | None


class ClassifierPathCV(_Body):
    mean: list[Number]
    std: list[Number]
    scoring: ClassificationScoring


class ClassifierPath(_Body):
    """Coefficients (scaled units) of each logit along ``C`` (ascending: most regularized
    first), the intercepts, nonzero columns per ``C``, and the CV curve of a tuned model."""

    task: Literal["classification"]
    penalty: PenaltyKind
    l1_ratio: float | None
    C: float = Field(description="The fitted model's C")
    Cs: list[float]
    units: Literal["scaled"]
    rows: list[Label]
    coefficients: dict[str, dict[str, list[Number]]] = Field(
        description="Per row (label as text), per model column: one value per C"
    )
    intercepts: dict[str, list[Number]]
    n_nonzero: list[int]
    cv: ClassifierPathCV | None


class Probabilities(_Body):
    """``output=proba``: one probability per class (``classes`` order) per input row."""

    classes: list[Label]
    probabilities: list[list[float]]
    model_id: str = Field(description="The model that answered")
    name: str | None = Field(description="The registered name the request named, if any")
    version: int | None = Field(description="The registered version that answered, if any")
