"""Models: stored as the portable JSON document plus the summary the API shows."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service import errors
from service.db import utcnow
from service.ml.spec import JobSpec
from service.models.documents import ModelDocuments
from service.tables import Job, Model

# Summary parts with a route of their own, left out of the model body.
SEPARATE_SUMMARY_KEYS = frozenset({"path"})
# What a predictor key sees of a model (see predictor_body).
PREDICTOR_SUMMARY_KEYS = ("features", "penalty", "preprocessing", "metrics")


def new_id() -> str:
    return "mdl_" + uuid.uuid4().hex


def create_for_job(
    *, session: Session, job_id: str, attempt: int, spec: JobSpec, outcome: ModelDocuments
) -> Model | None:
    """Stores the model of a finished attempt and marks the job succeeded, atomically.

    Returns None (and writes nothing) when the job is no longer running at ``attempt``.
    """
    model_id = new_id()
    now = utcnow()
    done, total, message = outcome.progress
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.attempts == attempt)
        .values(
            status="succeeded",
            model_id=model_id,
            finished_at=now,
            progress_done=done,
            progress_total=total,
            progress_message=message[:255],
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    model = Model(
        id=model_id,
        job_id=job_id,
        dataset_id=spec.dataset_id,
        name=spec.name,
        target=spec.target,
        summary=outcome.summary,
        portable=orjson.dumps(outcome.portable).decode(),
        fit_seconds=float(outcome.summary.get("fit_seconds", 0.0)),
        created_at=now,
    )
    session.add(model)
    session.flush()
    return model


def get(*, session: Session, model_id: str) -> Model:
    """Gets a model by its id."""
    model = session.get(Model, model_id)
    if model is None:
        raise errors.NotFound(f"model {model_id!r} does not exist")
    return model


def get_portable(*, session: Session, model_id: str) -> dict[str, Any]:
    """Gets a model's portable document."""
    portable = session.scalar(select(Model.portable).where(Model.id == model_id))
    if portable is None:
        raise errors.NotFound(f"model {model_id!r} does not exist")
    doc: dict[str, Any] = orjson.loads(portable)
    return doc


def list_page(*, session: Session, limit: int, offset: int) -> tuple[list[Model], int]:
    """Lists models, newest first."""
    rows = session.scalars(
        select(Model).order_by(Model.created_at.desc(), Model.id.desc()).limit(limit).offset(offset)
    ).all()
    total = session.scalar(select(func.count()).select_from(Model))
    return list(rows), int(total or 0)


def delete(*, session: Session, model_id: str) -> None:
    """Deletes a model."""
    result = session.execute(sql_delete(Model).where(Model.id == model_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise errors.NotFound(f"model {model_id!r} does not exist")


def model_body(model: Model) -> dict[str, Any]:
    """The JSON body of a model: its identity and the fit summary."""
    body: dict[str, Any] = {
        "id": model.id,
        "name": model.name,
        "job_id": model.job_id,
        "dataset_id": model.dataset_id,
        "target": model.target,
        "created_at": model.created_at,
        "fit_seconds": model.fit_seconds,
    }
    for key, value in model.summary.items():
        # The path (alphas × features) is large; GET /v1/models/{id}/path serves it.
        if key not in SEPARATE_SUMMARY_KEYS:
            body.setdefault(key, value)
    return body


def predictor_body(model: Model, *, with_dtypes: bool = True) -> dict[str, Any]:
    """What a predictor key reads of a model: what prediction needs, nothing of the data.

    The feature names in prediction order and their dtypes, the penalty, the preprocessing
    options (whether a null is imputed) and the metrics. Left out: coefficients, intercept
    and ``feature_names_out`` (one-hot names such as ``city=Paris`` spell out the training
    data's categories), tuning, split, warnings, and the job and dataset ids. ``dtypes``
    comes from the portable document, so lists leave it to the single-model route.
    """
    body: dict[str, Any] = {
        "id": model.id,
        "name": model.name,
        "target": model.target,
        "task": "regression",
        "created_at": model.created_at,
    }
    for key in PREDICTOR_SUMMARY_KEYS:
        body[key] = model.summary.get(key)
    if with_dtypes:
        features = orjson.loads(model.portable)["features"]
        body["dtypes"] = {f["name"]: f.get("dtype") for f in features}
    return body
