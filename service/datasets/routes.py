"""HTTP routes of the datasets domain (``/v1/datasets``)."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from service.datasets import service as datasets
from service.datasets import storage
from service.datasets.schemas import (
    UPLOAD_REQUEST_BODY,
    DatasetItem,
    DatasetOut,
    DatasetPage,
    RowsPage,
    SyntheticSpec,
)
from service.errors import UnsupportedMediaType, problem_responses
from service.http.dependencies import AppSettings, ReadSession, WriteSession
from service.http.paging import PageParams
from service.http.responses import FastJSONResponse
from service.tables import Dataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

DatasetId = Annotated[str, Path(description="The dataset's id (``ds_…``)", max_length=40)]


def _item_fields(row: Dataset) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "source_format": row.source_format,
        "n_rows": row.n_rows,
        "n_columns": row.n_columns,
        "sha256": row.sha256,
        "size_bytes": row.size_bytes,
        "created_at": row.created_at,
    }


def dataset_out(row: Dataset) -> DatasetOut:
    """The body of a dataset: its list item and its column summaries."""
    return DatasetOut.model_validate({**_item_fields(row), "columns": row.columns})


def _created(row: Dataset) -> Response:
    body = dataset_out(row).model_dump(mode="json")
    return FastJSONResponse(body, status_code=201, headers={"Location": f"/v1/datasets/{row.id}"})


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    openapi_extra={"requestBody": UPLOAD_REQUEST_BODY},
    responses=problem_responses(400, 413, 415, 422),
)
async def create_dataset(
    request: Request, session: WriteSession, settings: AppSettings
) -> Response:
    """Uploads a dataset: a multipart ``file`` (CSV, Parquet, JSON Lines) or inline JSON.

    The multipart body is streamed to disk (bounded memory); parsing and conversion to
    Parquet run in a worker thread, never on the event loop.
    """
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/form-data":
        received = await storage.receive_multipart(
            request.stream(),
            content_type=content_type,
            content_length=_content_length(request),
            data_dir=settings.data_dir,
            max_bytes=settings.max_upload_bytes,
        )
        create = functools.partial(
            datasets.create_from_upload, session=session, settings=settings, upload=received
        )
    elif media == "application/json" or media.endswith("+json"):
        body = await storage.receive_body(
            request.stream(),
            content_length=_content_length(request),
            max_bytes=settings.max_upload_bytes,
        )
        create = functools.partial(
            datasets.create_from_json, session=session, settings=settings, body=body
        )
    elif media in storage.FORMAT_BY_CONTENT_TYPE:
        # A raw file body (curl --data-binary @x.csv -H 'content-type: text/csv'); the
        # dataset's name comes from the `name` query parameter.
        received = await storage.receive_file_body(
            request.stream(),
            source_format=storage.FORMAT_BY_CONTENT_TYPE[media],
            content_type=media,
            content_length=_content_length(request),
            data_dir=settings.data_dir,
            max_bytes=settings.max_upload_bytes,
            name=request.query_params.get("name"),
        )
        create = functools.partial(
            datasets.create_from_upload, session=session, settings=settings, upload=received
        )
    else:
        raise UnsupportedMediaType(
            f"content type {media or 'none'!r} is not supported; send multipart/form-data "
            "with a 'file' part, a raw text/csv, application/vnd.apache.parquet or "
            "application/x-ndjson body, or application/json with columns + rows or records"
        )
    row = await run_in_threadpool(create)
    return _created(row)


@router.post(
    "/synthetic", status_code=201, response_model=DatasetOut, responses=problem_responses(422)
)
def create_synthetic(spec: SyntheticSpec, session: WriteSession, settings: AppSettings) -> Response:
    """Creates a dataset from ``sklearn.datasets.make_regression`` (columns ``x0…``, ``y``)."""
    return _created(datasets.create_synthetic(session=session, settings=settings, spec=spec))


@router.get("", response_model=DatasetPage, responses=problem_responses(422))
def list_datasets(session: ReadSession, page: PageParams) -> DatasetPage:
    """Lists datasets newest first, as compact items (``GET /v1/datasets/{id}`` adds the
    column summaries)."""
    rows, total = datasets.list_page(session=session, limit=page.limit, offset=page.offset)
    return DatasetPage(
        items=[DatasetItem.model_validate(_item_fields(row)) for row in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{dataset_id}", response_model=DatasetOut, responses=problem_responses(404, 422))
def get_dataset(dataset_id: DatasetId, session: ReadSession) -> DatasetOut:
    """Gets a dataset with its column summaries."""
    return dataset_out(datasets.get(session=session, dataset_id=dataset_id))


@router.get("/{dataset_id}/rows", response_model=RowsPage, responses=problem_responses(404, 422))
def get_dataset_rows(
    dataset_id: DatasetId, session: ReadSession, settings: AppSettings, page: PageParams
) -> Response:
    """Gets a page of rows in upload order (``null`` for missing values)."""
    body = datasets.rows_page(
        session=session,
        settings=settings,
        dataset_id=dataset_id,
        limit=page.limit,
        offset=page.offset,
    )
    return FastJSONResponse(body)


@router.delete(
    "/{dataset_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404, 422),
)
def delete_dataset(dataset_id: DatasetId, session: WriteSession, settings: AppSettings) -> Response:
    """Deletes a dataset and its file; models trained on it keep working."""
    datasets.delete(session=session, settings=settings, dataset_id=dataset_id)
    return Response(status_code=204)
