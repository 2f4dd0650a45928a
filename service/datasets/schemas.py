"""Request and response bodies of the datasets routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JsonScalar = int | float | str | bool | None


class NumericColumn(BaseModel):
    """A numeric column (``int64``, ``float64`` or ``bool``) and its summary.

    ``std`` is the sample standard deviation (``ddof=1``, as pandas ``describe``); null
    with fewer than two values. Statistics skip missing values; bools count as 0/1.
    """

    name: str
    dtype: Literal["int64", "float64", "bool"]
    kind: Literal["numeric"] = "numeric"
    n_missing: int
    min: int | float | None
    max: int | float | None
    mean: float | None
    std: float | None


class TopValue(BaseModel):
    value: str
    count: int


class TextColumn(BaseModel):
    """A text column and its summary.

    ``n_unique`` is exact up to 10 000 distinct values; beyond that it is null and
    ``n_unique_capped`` is true (``top`` then ranks the first 10 000 distinct values seen).
    ``top`` holds the five most frequent values, each cut to 200 characters (ending in "…"
    when cut), so that summaries stay small whatever the data holds.
    """

    name: str
    dtype: Literal["string"]
    kind: Literal["text"] = "text"
    n_missing: int
    n_unique: int | None
    n_unique_capped: bool
    top: list[TopValue]


ColumnSummary = Annotated[NumericColumn | TextColumn, Field(discriminator="kind")]


class DatasetItem(BaseModel):
    """A dataset in a list: its identity and counts (``GET /v1/datasets/{id}`` adds the
    column summaries). ``sha256`` and ``size_bytes`` describe the stored Parquet file."""

    id: str
    name: str
    source_format: Literal["csv", "parquet", "jsonl", "json", "synthetic"]
    n_rows: int
    n_columns: int
    sha256: str
    size_bytes: int
    created_at: datetime


class DatasetOut(DatasetItem):
    """A stored dataset with a summary per column."""

    columns: list[ColumnSummary]


class DatasetPage(BaseModel):
    items: list[DatasetItem]
    total: int
    limit: int
    offset: int


class RowsPage(BaseModel):
    """A page of rows in upload order; ``null`` marks a missing value."""

    columns: list[str]
    rows: list[list[JsonScalar]]
    total: int
    limit: int
    offset: int


class InlineRows(BaseModel):
    """``application/json`` upload as a header and rows (every row as wide as ``columns``)."""

    model_config = ConfigDict(extra="forbid", title="InlineRows")

    name: str | None = Field(default=None, max_length=255)
    columns: list[str]
    rows: list[list[JsonScalar]]


class InlineRecords(BaseModel):
    """``application/json`` upload as records; a key missing from a record is null."""

    model_config = ConfigDict(extra="forbid", title="InlineRecords")

    name: str | None = Field(default=None, max_length=255)
    records: list[dict[str, JsonScalar]]


class SyntheticSpec(BaseModel):
    """Parameters of ``sklearn.datasets.make_regression`` (same names, same defaults)."""

    model_config = ConfigDict(extra="forbid")

    n_samples: int = Field(default=100, ge=1)
    n_features: int = Field(default=100, ge=1)
    n_informative: int = Field(default=10, ge=0)
    bias: float = 0.0
    effective_rank: int | None = Field(default=None, ge=1)
    tail_strength: float = Field(default=0.5, ge=0.0, le=1.0)
    noise: float = Field(default=0.0, ge=0.0)
    shuffle: bool = True
    random_state: int | None = Field(default=None, ge=0, le=2**32 - 1)
    name: str | None = Field(default=None, max_length=255)

    def make_regression_params(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name"})


# Referenced by UPLOAD_REQUEST_BODY; service.main adds them to the document's components.
UPLOAD_REQUEST_MODELS = (InlineRows, InlineRecords)
UPLOAD_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "CSV, Parquet or JSON Lines (by the part's content type "
                        "or the file name's extension)",
                    },
                    "name": {"type": "string", "maxLength": 255},
                },
            }
        },
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": f"#/components/schemas/{model.__name__}"}
                    for model in UPLOAD_REQUEST_MODELS
                ]
            }
        },
        # A raw file body; the dataset's name comes from the `name` query parameter.
        "text/csv": {"schema": {"type": "string", "format": "binary"}},
        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
    },
}
