"""Request and response bodies of the datasets routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.tables import Dataset

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


class DatasetOut(BaseModel):
    """A stored dataset. ``sha256`` and ``size_bytes`` describe the stored Parquet file."""

    id: str
    name: str
    source_format: Literal["csv", "parquet", "jsonl", "json", "synthetic"]
    n_rows: int
    n_columns: int
    columns: list[ColumnSummary]
    sha256: str
    size_bytes: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: Dataset) -> DatasetOut:
        return cls.model_validate(
            {
                "id": row.id,
                "name": row.name,
                "source_format": row.source_format,
                "n_rows": row.n_rows,
                "n_columns": row.n_columns,
                "columns": row.columns,
                "sha256": row.sha256,
                "size_bytes": row.size_bytes,
                "created_at": row.created_at,
            }
        )


class DatasetPage(BaseModel):
    items: list[DatasetOut]
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
            "schema": {"oneOf": [InlineRows.model_json_schema(), InlineRecords.model_json_schema()]}
        },
        # A raw file body; the dataset's name comes from the `name` query parameter.
        "text/csv": {"schema": {"type": "string", "format": "binary"}},
        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
    },
}
