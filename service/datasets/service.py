"""Datasets: create (upload, inline JSON, synthetic), get, list, page rows, delete.

Creating and deleting a dataset pairs a database change with a file; the functions only
flush, and the session's owner commits. Creation renames the Parquet file into place first,
then adds the row, and the file is removed if the transaction rolls back; deletion removes
the row, and the file goes once that has committed. Either way no row ever references a
missing or half-written file. Every other function only reads.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from sklearn.datasets import make_regression
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from service.config import Settings
from service.datasets import files, reader, storage
from service.datasets.schemas import SyntheticSpec
from service.db import after_commit, after_rollback
from service.errors import InvalidInput, MalformedJSON, NotFound, field_error
from service.tables import Dataset

MAX_NAME_LENGTH = 255
MAX_SYNTHETIC_CELLS = 50_000_000
INLINE_KEYS = frozenset({"name", "columns", "rows", "records"})


def new_id() -> str:
    """A fresh dataset id."""
    return "ds_" + uuid.uuid4().hex


def _clean_name(name: Any, *, default: str, loc: str = "/name") -> str:
    if name is None:
        return default
    if not isinstance(name, str):
        raise InvalidInput(
            "'name' must be a string", errors=[field_error(loc, "expected a string")]
        )
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"'name' is longer than {MAX_NAME_LENGTH} characters",
            errors=[field_error(loc, f"at most {MAX_NAME_LENGTH} characters")],
        )
    return name or default


def _add_new(
    *,
    session: Session,
    settings: Settings,
    dataset_id: str,
    name: str,
    source_format: str,
    stored: storage.StoredDataset,
) -> Dataset:
    """Adds the row for a file already in place; the file goes if the transaction fails."""
    row = Dataset(
        id=dataset_id,
        name=name,
        filename=stored.filename,
        source_format=source_format,
        n_rows=stored.n_rows,
        n_columns=stored.n_columns,
        columns=stored.columns,
        sha256=stored.sha256,
        size_bytes=stored.size_bytes,
    )
    path = settings.data_dir / stored.filename
    after_rollback(session, lambda: files.remove_file(path))
    session.add(row)
    session.flush()
    return row


def create_from_upload(
    *, session: Session, settings: Settings, upload: storage.ReceivedUpload, name: str | None = None
) -> Dataset:
    """Creates a dataset from a received upload; the upload's temp file is always removed."""
    dataset_id = new_id()
    try:
        clean = _clean_name(
            name if name is not None else upload.name, default=upload.filename or dataset_id
        )
        try:
            stored = storage.ingest_file(
                upload.path,
                upload.source_format,
                data_dir=settings.data_dir,
                dataset_id=dataset_id,
                limits=storage.IngestLimits.from_settings(settings),
            )
        except InvalidInput as exc:
            if exc.errors:
                raise
            # The file's problem, located at the upload's part: a new error, not a patched one.
            raise InvalidInput(
                exc.detail,
                errors=[field_error("/file", exc.detail)],
                status=exc.status,
                title=exc.title,
                slug=exc.slug,
                **exc.extra,
            ) from exc
    finally:
        files.remove_file(upload.path)
    return _add_new(
        session=session,
        settings=settings,
        dataset_id=dataset_id,
        name=clean,
        source_format=upload.source_format,
        stored=stored,
    )


def create_from_table(
    *, session: Session, settings: Settings, table: pa.Table, name: str | None, source_format: str
) -> Dataset:
    """Creates a dataset from an in-memory Arrow table."""
    dataset_id = new_id()
    stored = storage.ingest_table(
        table,
        data_dir=settings.data_dir,
        dataset_id=dataset_id,
        limits=storage.IngestLimits.from_settings(settings),
    )
    return _add_new(
        session=session,
        settings=settings,
        dataset_id=dataset_id,
        name=_clean_name(name, default=dataset_id),
        source_format=source_format,
        stored=stored,
    )


def create_from_rows(
    *, session: Session, settings: Settings, name: str | None, columns: Any, rows: Any
) -> Dataset:
    """Creates a dataset from a header and rows (422s point at ``/rows/{i}[/{j}]``)."""
    table = storage.table_from_rows(columns, rows, storage.IngestLimits.from_settings(settings))
    return create_from_table(
        session=session, settings=settings, table=table, name=name, source_format="json"
    )


def create_from_records(
    *, session: Session, settings: Settings, name: str | None, records: Any
) -> Dataset:
    """Creates a dataset from records; keys missing from a record are null."""
    table = storage.table_from_records(records, storage.IngestLimits.from_settings(settings))
    return create_from_table(
        session=session, settings=settings, table=table, name=name, source_format="json"
    )


def create_from_json(*, session: Session, settings: Settings, body: bytes) -> Dataset:
    """Creates a dataset from an ``application/json`` body: columns and rows, or records."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(
            f"the body is not valid JSON: {exc}", errors=[field_error("/", str(exc))]
        ) from exc
    if not isinstance(payload, dict):
        raise InvalidInput(
            "the body must be a JSON object with 'columns' and 'rows', or 'records'",
            errors=[field_error("/", "expected an object")],
        )
    extra = sorted(set(payload) - INLINE_KEYS)
    if extra:
        raise InvalidInput(
            f"unknown field(s) {extra}; expected 'name' and 'columns' + 'rows', or 'records'",
            errors=[field_error(f"/{key}", "extra fields are not permitted") for key in extra],
        )
    name = _clean_name(payload.get("name"), default="")  # validated before the data
    if "records" in payload:
        if "rows" in payload or "columns" in payload:
            raise InvalidInput(
                "send either 'records' or 'columns' + 'rows', not both",
                errors=[field_error("/records", "not allowed together with rows/columns")],
            )
        return create_from_records(
            session=session, settings=settings, name=name or None, records=payload["records"]
        )
    missing = [key for key in ("columns", "rows") if key not in payload]
    if missing:
        raise InvalidInput(
            "the body needs 'columns' and 'rows', or 'records'",
            errors=[field_error(f"/{key}", "field required") for key in missing],
        )
    return create_from_rows(
        session=session,
        settings=settings,
        name=name or None,
        columns=payload["columns"],
        rows=payload["rows"],
    )


def create_synthetic(*, session: Session, settings: Settings, spec: SyntheticSpec) -> Dataset:
    """Creates a dataset holding exactly ``make_regression(**spec)``'s rows (columns x0…, y)."""
    problems = []
    if spec.n_samples > settings.max_rows:
        problems.append(field_error("/n_samples", f"at most {settings.max_rows} (the row limit)"))
    if spec.n_features + 1 > settings.max_columns:
        problems.append(
            field_error(
                "/n_features", f"at most {settings.max_columns - 1} (the column limit, less y)"
            )
        )
    if spec.n_samples * (spec.n_features + 1) > MAX_SYNTHETIC_CELLS:
        problems.append(
            field_error(
                "/n_samples", f"n_samples * (n_features + 1) must be at most {MAX_SYNTHETIC_CELLS}"
            )
        )
    if problems:
        raise InvalidInput(problems[0]["msg"], errors=problems)
    try:
        X, y = make_regression(**spec.make_regression_params())
    except ValueError as exc:  # sklearn's own parameter checks
        raise InvalidInput(str(exc), errors=[field_error("/", str(exc))]) from exc
    # make_regression squeezes y, so one sample gives a 0-d target: back to one row.
    y = np.atleast_1d(y)
    columns_first = np.ascontiguousarray(X.T)
    arrays = [pa.array(column) for column in columns_first] + [pa.array(y)]
    names = [f"x{j}" for j in range(X.shape[1])] + ["y"]
    table = pa.Table.from_arrays(arrays, names=names)
    return create_from_table(
        session=session, settings=settings, table=table, name=spec.name, source_format="synthetic"
    )


def get(*, session: Session, dataset_id: str) -> Dataset:
    """Gets a dataset by its id (404 naming the id)."""
    row = session.get(Dataset, dataset_id)
    if row is None:
        raise NotFound(f"dataset {dataset_id!r} does not exist", dataset_id=dataset_id)
    return row


def list_page(*, session: Session, limit: int, offset: int) -> tuple[list[Dataset], int]:
    """Lists datasets newest first, with the total count, without loading the column
    summaries (a list item leaves them out)."""
    total = session.scalar(select(func.count()).select_from(Dataset)) or 0
    rows = session.scalars(
        select(Dataset)
        .options(defer(Dataset.columns))
        .order_by(Dataset.created_at.desc(), Dataset.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def rows_page(
    *, session: Session, settings: Settings, dataset_id: str, limit: int, offset: int
) -> dict[str, Any]:
    """Gets a page of a dataset's rows in upload order."""
    dataset = get(session=session, dataset_id=dataset_id)
    if offset >= dataset.n_rows:
        names = [column["name"] for column in dataset.columns]
        rows: list[list[Any]] = []
    else:
        names, rows = reader.read_rows(
            files.dataset_path(settings, dataset), offset=offset, limit=limit
        )
    return {
        "columns": names,
        "rows": rows,
        "total": dataset.n_rows,
        "limit": limit,
        "offset": offset,
    }


def delete(*, session: Session, settings: Settings, dataset_id: str) -> None:
    """Deletes a dataset's row; its file is removed once that has committed."""
    dataset = get(session=session, dataset_id=dataset_id)
    path = files.dataset_path(settings, dataset)
    session.delete(dataset)
    session.flush()
    after_commit(session, lambda: files.remove_file(path))
