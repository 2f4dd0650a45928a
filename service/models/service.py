"""Models: stored as the portable JSON document plus the summary the API shows."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import JSON, func, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import Session

from service import errors
from service.db import utcnow
from service.ml.spec import JobSpec
from service.models import explain
from service.models.documents import ModelDocuments
from service.tables import Model

# Summary parts with a route of their own, left out of the model body.
SEPARATE_SUMMARY_KEYS = frozenset({"path", "plots"})
# What a predictor key sees of a model (see predictor_body).
PREDICTOR_SUMMARY_KEYS = ("features", "penalty", "preprocessing", "metrics")


def new_id() -> str:
    return "mdl_" + uuid.uuid4().hex


def build_for_job(*, model_id: str, job_id: str, spec: JobSpec, outcome: ModelDocuments) -> Model:
    """The model row of a finished job attempt (``jobs.service.succeed`` stores it)."""
    return Model(
        id=model_id,
        job_id=job_id,
        dataset_id=spec.dataset_id,
        name=spec.name,
        target=spec.target,
        summary=outcome.summary,
        portable=orjson.dumps(outcome.portable).decode(),
        fit_seconds=float(outcome.summary.get("fit_seconds", 0.0)),
        created_at=utcnow(),
    )


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


# The parts of a model's summary a list item shows, read by the database from the JSON
# column: a model of a large search holds megabytes of candidates and coefficients, and a
# page of them must not be loaded to show a few numbers each.
_ITEM_SUMMARY_PATHS: dict[str, tuple[str, ...]] = {
    "task": ("task",),
    "penalty": ("penalty",),
    "n_nonzero": ("n_nonzero",),
    "n_train": ("n_train",),
    "n_test": ("n_test",),
    "metrics": ("metrics",),
    "tuning_strategy": ("tuning", "strategy"),
    "tuning_scoring": ("tuning", "scoring"),
    "tuning_best_params": ("tuning", "best_params"),
    "tuning_best_score": ("tuning", "best_score"),
    "tuning_n_candidates": ("tuning", "n_candidates"),
}


def _summary_parts(session: Session, paths: dict[str, tuple[str, ...]]) -> Any:
    """One JSON array of the summary parts at ``paths`` (two or more), in their order."""
    parts = list(paths.values())
    if session.get_bind().dialect.name == "sqlite":
        # json_extract with several paths parses the document once and answers an array; a
        # call per part parsed a 6 MB summary ten times (5 s for a page of 31 such models).
        return func.json_extract(Model.summary, *("$." + ".".join(p) for p in parts), type_=JSON)
    return func.json_build_array(
        *(Model.summary[p if len(p) > 1 else p[0]] for p in parts), type_=JSON
    )


def _with_parts(rows: Any, paths: dict[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    """Each row as a dict, its ``parts`` array spread into the keys of ``paths``."""
    items = []
    for row in rows:
        fields = row._asdict()
        fields.update(zip(paths, fields.pop("parts"), strict=True))
        items.append(fields)
    return items


def list_page(*, session: Session, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Lists models newest first, as compact items (see :func:`model_item`)."""
    rows = session.execute(
        select(
            Model.id,
            Model.name,
            Model.job_id,
            Model.dataset_id,
            Model.target,
            Model.created_at,
            Model.fit_seconds,
            _summary_parts(session, _ITEM_SUMMARY_PATHS).label("parts"),
        )
        .order_by(Model.created_at.desc(), Model.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    items = [model_item(fields) for fields in _with_parts(rows, _ITEM_SUMMARY_PATHS)]
    return items, count(session=session)


_PREDICTOR_SUMMARY_PATHS: dict[str, tuple[str, ...]] = {
    key: (key,) for key in (*PREDICTOR_SUMMARY_KEYS, "task", "classes")
}


def list_predictor_page(
    *, session: Session, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Lists models newest first as a predictor key sees them (see :func:`predictor_body`)."""
    rows = session.execute(
        select(
            Model.id,
            Model.name,
            Model.target,
            Model.created_at,
            _summary_parts(session, _PREDICTOR_SUMMARY_PATHS).label("parts"),
        )
        .order_by(Model.created_at.desc(), Model.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    items = [_predictor_task(item) for item in _with_parts(rows, _PREDICTOR_SUMMARY_PATHS)]
    return items, count(session=session)


def _predictor_task(view: dict[str, Any]) -> dict[str, Any]:
    """A predictor view's ``task`` (a regressor's summary has none) and a classifier's classes."""
    classes = view.pop("classes", None)
    view["task"] = view.get("task") or "regression"
    if view["task"] == "classification":
        view["classes"] = classes
    return view


def count(*, session: Session) -> int:
    """Counts the models."""
    return int(session.scalar(select(func.count()).select_from(Model)) or 0)


def model_item(row: dict[str, Any]) -> dict[str, Any]:
    """The list item of a model from its columns and the summary parts of ``list_page``."""
    tuning = None
    if row["tuning_strategy"] is not None:
        tuning = {
            "strategy": row["tuning_strategy"],
            "scoring": row["tuning_scoring"],
            "best_params": row["tuning_best_params"],
            "best_score": row["tuning_best_score"],
            "n_candidates": row["tuning_n_candidates"],
        }
    task = {"task": row["task"]} if row.get("task") else {}
    return {
        "id": row["id"],
        "name": row["name"],
        "job_id": row["job_id"],
        "dataset_id": row["dataset_id"],
        "target": row["target"],
        **task,
        "created_at": row["created_at"],
        "fit_seconds": row["fit_seconds"],
        "penalty": row["penalty"],
        "n_nonzero": row["n_nonzero"],
        "n_train": row["n_train"],
        "n_test": row["n_test"],
        "metrics": row["metrics"],
        "tuning": tuning,
    }


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
    body["importance"] = explain.importance(model.summary)
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
        "task": model.summary.get("task"),
        "created_at": model.created_at,
    }
    for key in PREDICTOR_SUMMARY_KEYS:
        body[key] = model.summary.get(key)
    body["classes"] = model.summary.get("classes")
    body = _predictor_task(body)
    if with_dtypes:
        features = orjson.loads(model.portable)["features"]
        body["dtypes"] = {f["name"]: f.get("dtype") for f in features}
    return body
