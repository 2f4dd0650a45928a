"""The service's response bodies as pydantic models (README, ``/openapi.json``).

Lenient: unknown fields are kept (``extra="allow"``), so a newer server does not break an
older client; only the fields the client reads are declared.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


class Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ColumnSummary(Body):
    """A dataset column: numeric columns have min/max/mean/std, text columns n_unique/top."""

    name: str
    dtype: str
    kind: str
    n_missing: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    n_unique: int | None = None
    top: list[dict[str, Any]] | None = None


class DatasetBody(Body):
    id: str
    name: str
    source_format: str
    n_rows: int
    n_columns: int
    columns: list[ColumnSummary] = []
    sha256: str | None = None
    size_bytes: int | None = None
    created_at: datetime


class Progress(Body):
    done: int
    total: int
    message: str | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class JobBody(Body):
    id: str
    name: str | None = None
    status: JobStatus
    dataset_id: str
    progress: Progress
    attempts: int = 0
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: dict[str, Any] | None = None
    model_id: str | None = None
    spec: dict[str, Any] = {}

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATES


class PenaltyEcho(Body):
    """The model's penalty in both notations (scikit-learn's alpha/l1_ratio and the λ form)."""

    type: str
    estimator: str | None = None
    alpha: float | None = None
    l1_ratio: float | None = None
    lambda1: float | None = None
    lambda2: float | None = None
    C: float | None = None  # a classifier's (LogisticRegression); alpha is then null
    class_weight: str | None = None


class Coefficients(Body):
    original: dict[str, float | None]
    scaled: dict[str, float | None]


class CoefficientTable(Body):
    """A classifier's coefficients: one row per logit (``rows``: a class label), one column
    per model column."""

    rows: list[Any]
    columns: list[str]
    scaled: list[list[float | None]]
    original: list[list[float | None]]


class Intercept(Body):
    original: float | None
    scaled: float | None


class Metrics(Body):
    """Per split: a regressor's r2/mse/…; a classifier's accuracy, log_loss, confusion
    matrix and per-class precision/recall."""

    train: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    cv: dict[str, Any] | None = None


class Candidate(Body):
    params: dict[str, Any]
    mean_score: float | None = None
    std_score: float | None = None
    fold_scores: list[float | None] = []
    fit_seconds: float | None = None  # its own solve + scoring seconds, summed over folds
    rank: int | None = None
    n_nonzero: float | None = None


class Tuning(Body):
    strategy: str
    scoring: str
    select: str = "best"
    best_params: dict[str, Any] = {}
    best_score: float | None = None
    best_index: int | None = None
    candidates: list[Candidate] = []
    timed_out: bool = False
    n_candidates: int | None = None
    n_candidates_finished: int | None = None
    seconds: float | None = None
    comparison: dict[str, dict[str, Any]] | None = None


class ModelBody(Body):
    id: str
    name: str | None = None
    job_id: str | None = None
    dataset_id: str | None = None
    target: str
    created_at: datetime
    features: list[str]
    feature_names_out: list[str] = []
    penalty: PenaltyEcho
    preprocessing: dict[str, Any] = {}
    task: str = "regression"
    classes: list[Any] | None = None  # a classifier's labels, as uploaded
    # "coefficients" on the wire; the Model resource's ``coefficients`` is the table.
    coefficient_values: Coefficients | CoefficientTable = Field(alias="coefficients")
    intercept: Intercept | None = None  # a regressor's
    intercepts: dict[str, Any] | None = None  # a classifier's, one per coefficient row
    n_nonzero: int
    metrics: Metrics = Metrics()
    tuning: Tuning | None = None
    n_train: int | None = None
    n_test: int | None = None
    warnings: list[Any] = []


class ModelSummary(Body):
    """A model as ``GET /v1/models`` lists it: identity, penalty, counts and metrics
    (``Client.model(id)`` has the coefficients and the tuning's candidates)."""

    id: str
    name: str | None = None
    job_id: str | None = None
    dataset_id: str | None = None
    target: str
    task: str = "regression"
    created_at: datetime
    fit_seconds: float | None = None
    penalty: PenaltyEcho
    n_nonzero: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    metrics: Metrics = Metrics()
    tuning: dict[str, Any] | None = None


class CVPoint(Body):
    """A candidate of a random or Bayesian search: where it was evaluated, its CV score."""

    penalty: str
    alpha: float
    l1_ratio: float | None = None
    mean: float | None = None
    std: float | None = None


class PathCV(Body):
    mean: list[float | None]  # per alpha of the path; None where it was not searched
    std: list[float | None]
    scoring: str
    points: list[CVPoint] | None = None  # random/Bayesian searches: every candidate


class PenaltyPath(Body):
    """One penalty's coefficients (scaled units) and n_nonzero per alpha, descending
    (a classifier's: per ``C`` in ``Cs``, ``coefficients`` per class row, then per column)."""

    penalty: str
    alpha: float | None = None
    l1_ratio: float | None = None
    alphas: list[float] = []
    C: float | None = None
    Cs: list[float] | None = None
    units: str = "scaled"
    coefficients: dict[str, Any]
    n_nonzero: list[int]
    cv: PathCV | None = None

    def rows(self) -> list[dict[str, Any]]:
        """One row per alpha: ``alpha``, ``n_nonzero``, each feature's coefficient, CV mean/std."""
        out = []
        for i, alpha in enumerate(self.alphas):
            row: dict[str, Any] = {"alpha": alpha, "n_nonzero": self.n_nonzero[i]}
            if self.cv is not None:
                row["cv_mean"], row["cv_std"] = self.cv.mean[i], self.cv.std[i]
            row.update({name: values[i] for name, values in self.coefficients.items()})
            out.append(row)
        return out


class RegularizationPath(PenaltyPath):
    """``GET /v1/models/{ref}/path``: the model's penalty along its alphas, and for a
    penalty comparison every compared penalty's (``compared``, by kind)."""

    compared: dict[str, PenaltyPath] | None = None


T = TypeVar("T")


class Page(Body, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
