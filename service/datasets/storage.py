"""Dataset files: streaming ingest of CSV, Parquet and JSON Lines into one Parquet file per dataset.

Every dataset is stored once, as ``{data_dir}/{dataset_id}.parquet``. Ingest writes to a
temporary name under ``{data_dir}/tmp``, fsyncs it, renames it into place and fsyncs the
directory; only then may the caller commit the row that references it.

Stored column types (``dtype`` in the column summaries):

- ``int64``: any integer column (CSV/JSON integers, Parquet int8…uint64).
- ``float64``: floats and decimals; NaN is stored as null (missing). ±inf is rejected (422).
- ``bool``: booleans (numeric-able: read back as 0.0/1.0).
- ``string``: text. Dates, times and timestamps are kept as text (CSV and JSON Lines keep
  the original spelling; Parquet temporal columns are cast to ISO text). Nested values
  (lists, structs, maps) are rejected (422 naming the column).

A column with no values at all is stored as ``float64`` (all missing).

CSV: ``""``, ``NA``, ``N/A``, ``NaN``, ``nan``, ``null``, ``NULL`` are missing values. The
streaming reader infers types from the first block; when a later block does not fit (e.g.
``1.5`` in an int column, ``abc`` in a float column), the file is scanned once more as text to
find every column's widest type (null → int64 → float64 → string; bool → string) and read
again with those types, so the result does not depend on where the block boundaries fall.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import hashlib
import math
import os
import re
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from anyio import to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from service.datasets.files import dataset_filename, fsync_dir, remove_file, tmp_dir
from service.errors import (
    InsufficientStorage,
    InvalidInput,
    PayloadTooLarge,
    UnsupportedMediaType,
    field_error,
    is_disk_full,
)

if TYPE_CHECKING:
    from service.config import Settings

CSV_BLOCK_SIZE = 8 << 20
JSONL_BLOCK_SIZE = 8 << 20
MAX_LINE_BYTES = 64 << 20
UPLOAD_FLUSH_BYTES = 4 << 20
SNIFF_BYTES = 64 << 10
ROW_GROUP_MAX_ROWS = 1 << 20
ROW_GROUP_MAX_BYTES = 32 << 20
BATCH_TARGET_BYTES = 32 << 20
PARQUET_COMPRESSION = "snappy"
TEXT_UNIQUE_CAP = 10_000
TOP_VALUES = 5
# Column summaries are stored in the database and returned by every dataset route: a top
# value is cut to this many characters (a file with a few 20 MB strings must not put them
# there), and so is a column's name.
MAX_SUMMARY_CHARS = 200
MAX_COLUMN_NAME_CHARS = 1024
MAX_NAME_FIELD_BYTES = 4096
MAX_CSV_ATTEMPTS = 8

_T = TypeVar("_T")

CSV_NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL"]

FORMAT_BY_CONTENT_TYPE = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
}
FORMAT_BY_EXTENSION = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


@dataclass(frozen=True)
class IngestLimits:
    """Upper bounds on a stored dataset (exceeding one is a 413), and on the threads that
    parse one upload.

    ``max_decoded_bytes`` bounds the dataset's in-memory (Arrow) size: 8 bytes per number,
    the bytes of each string; None: unbounded.
    """

    max_rows: int
    max_columns: int
    parse_threads: int
    max_decoded_bytes: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(
            max_rows=settings.max_rows,
            max_columns=settings.max_columns,
            parse_threads=settings.parse_threads,
            max_decoded_bytes=settings.decoded_bytes_limit,
        )

    def check_rows(self, n_rows: int, *, exact: bool = True) -> None:
        """413 when ``n_rows`` (``exact``, else "more than") is over the row limit."""
        if n_rows > self.max_rows:
            count = f"{n_rows} rows" if exact else f"more than {self.max_rows} rows"
            raise PayloadTooLarge(
                f"the dataset has {count}; the limit is {self.max_rows}",
                limit_rows=self.max_rows,
            )

    def check_columns(self, n_columns: int, *, exact: bool = True) -> None:
        """413 when ``n_columns`` is over the column limit (checked as columns appear)."""
        if n_columns > self.max_columns:
            count = f"{n_columns} columns" if exact else f"more than {self.max_columns} columns"
            raise PayloadTooLarge(
                f"the dataset has {count}; the limit is {self.max_columns}",
                limit_columns=self.max_columns,
            )

    def check_decoded(self, n_bytes: int, *, what: str = "decodes to") -> None:
        """413 when the dataset's decoded size (or an estimate of it) is over the limit."""
        limit = self.max_decoded_bytes
        if limit is not None and n_bytes > limit:
            raise PayloadTooLarge(
                f"the dataset {what} {n_bytes} bytes in memory; the limit is {limit} bytes "
                "(8 bytes a number, the bytes of each string)",
                limit_decoded_bytes=limit,
            )

    def check_cells(self, n_rows: int, n_columns: int) -> None:
        """413 when ``n_rows`` × ``n_columns`` numbers would already be over a limit."""
        self.check_rows(n_rows)
        self.check_columns(n_columns)
        self.check_decoded(8 * n_rows * n_columns, what="would decode to at least")


@dataclass(frozen=True)
class StoredDataset:
    """What ingest wrote: the file (relative to the data dir) and what the row records."""

    filename: str
    n_rows: int
    n_columns: int
    columns: list[dict[str, Any]]
    sha256: str
    size_bytes: int


@dataclass
class ReceivedUpload:
    """A multipart upload received to a temporary file."""

    path: Path
    filename: str | None
    content_type: str | None
    source_format: str
    size_bytes: int
    name: str | None


# -- receiving -----------------------------------------------------------------------------


def detect_format(content_type: str | None, filename: str | None) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from a part's content type, else its extension (415)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in FORMAT_BY_CONTENT_TYPE:
        return FORMAT_BY_CONTENT_TYPE[media]
    suffix = Path(filename or "").suffix.lower()
    if suffix in FORMAT_BY_EXTENSION:
        return FORMAT_BY_EXTENSION[suffix]
    raise UnsupportedMediaType(
        f"cannot tell the format of the uploaded file (content type {media or 'none'!r}, "
        f"file name {filename!r}); send CSV (.csv, text/csv), Parquet (.parquet, "
        "application/vnd.apache.parquet) or JSON Lines (.jsonl/.ndjson, application/x-ndjson)",
        errors=[field_error("/file", "unsupported file type")],
    )


def _too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than the limit of {limit} bytes"
        + (f" ({size} bytes)" if size > limit else ""),
        limit_bytes=limit,
    )


class _MultipartUpload:
    """python_multipart callbacks that write the ``file`` part straight to a temp file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[str, bytes] = {}
        self.target: str | None = None
        self.pending = bytearray()
        self.file: Any = None
        self.path: Path | None = None
        self.filename: str | None = None
        self.content_type: str | None = None
        self.source_format: str | None = None
        self.file_bytes = 0
        self.name: bytearray | None = None
        self.ended = False

    def callbacks(self) -> Any:  # python_multipart's MultipartCallbacks TypedDict
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self.headers = {}
        self.target = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        key = bytes(self.header_field).decode("latin-1").strip().lower()
        self.headers[key] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", b""))
        field_name = options.get(b"name", b"").decode("utf-8", "replace")
        if field_name == "file":
            if self.path is not None:
                raise InvalidInput(
                    "the body has more than one 'file' part",
                    errors=[field_error("/file", "send exactly one file part")],
                )
            raw_filename = options.get(b"filename")
            self.filename = raw_filename.decode("utf-8", "replace") if raw_filename else None
            part_type = self.headers.get("content-type")
            self.content_type = part_type.decode("latin-1") if part_type else None
            self.source_format = detect_format(self.content_type, self.filename)
            fd, name = tempfile.mkstemp(dir=self.directory, prefix="upload-", suffix=".part")
            self.path = Path(name)
            self.file = os.fdopen(fd, "wb")
            self.target = "file"
        elif field_name == "name":
            self.name = bytearray()
            self.target = "name"
        else:
            self.target = None  # other form fields are ignored

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.target == "file":
            self.pending += memoryview(data)[start:end]
            self.file_bytes += end - start
        elif self.target == "name" and self.name is not None:
            self.name += data[start:end]
            if len(self.name) > MAX_NAME_FIELD_BYTES:
                raise InvalidInput(
                    "the 'name' field is too long",
                    errors=[field_error("/name", "at most 255 characters")],
                )

    def on_end(self) -> None:
        self.ended = True

    def take_pending(self) -> bytearray:
        data, self.pending = self.pending, bytearray()
        return data

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
        remove_file(self.path)


async def receive_multipart(
    chunks: AsyncIterator[bytes],
    *,
    content_type: str,
    content_length: int | None,
    data_dir: Path,
    max_bytes: int,
) -> ReceivedUpload:
    """Stream a ``multipart/form-data`` body; its ``file`` part goes to a temp file in chunks.

    Memory stays bounded (one flush buffer of a few MB); disk writes run in a worker thread.
    Raises 413 past ``max_bytes`` (the temp file is removed), 415 for an unknown file type,
    422 for a malformed body or a missing ``file`` part.
    """
    if content_length is not None and content_length > max_bytes:
        raise _too_large(content_length, max_bytes)
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidInput("the multipart/form-data content type has no boundary")
    upload = _MultipartUpload(tmp_dir(data_dir))
    parser = MultipartParser(boundary, upload.callbacks())
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(received, max_bytes)
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise InvalidInput(f"malformed multipart/form-data body: {exc}") from exc
            if len(upload.pending) >= UPLOAD_FLUSH_BYTES:
                await to_thread.run_sync(upload.file.write, upload.take_pending())
        parser.finalize()
        if not upload.ended:
            raise InvalidInput("the multipart/form-data body ended before its closing boundary")
        if upload.path is None or upload.source_format is None:
            raise InvalidInput(
                "the upload has no 'file' part",
                errors=[field_error("/file", "field required: the dataset file")],
            )
        if upload.pending:
            await to_thread.run_sync(upload.file.write, upload.take_pending())
        upload.file.close()
    except BaseException:
        upload.discard()
        raise
    name = None
    if upload.name is not None:
        name = bytes(upload.name).decode("utf-8", "replace")
    return ReceivedUpload(
        path=upload.path,
        filename=upload.filename,
        content_type=upload.content_type,
        source_format=upload.source_format,
        size_bytes=upload.file_bytes,
        name=name,
    )


async def receive_file_body(
    chunks: AsyncIterator[bytes],
    *,
    source_format: str,
    content_type: str,
    content_length: int | None,
    data_dir: Path,
    max_bytes: int,
    name: str | None,
) -> ReceivedUpload:
    """Stream a raw CSV/Parquet/JSON Lines request body to a temp file (bounded memory)."""
    if content_length is not None and content_length > max_bytes:
        raise _too_large(content_length, max_bytes)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir(data_dir), prefix="upload-", suffix=".part")
    path = Path(tmp_name)
    received = 0
    pending = bytearray()
    try:
        with os.fdopen(fd, "wb") as file:
            async for chunk in chunks:
                received += len(chunk)
                if received > max_bytes:
                    raise _too_large(received, max_bytes)
                pending += chunk
                if len(pending) >= UPLOAD_FLUSH_BYTES:
                    data, pending = pending, bytearray()
                    await to_thread.run_sync(file.write, data)
            if pending:
                await to_thread.run_sync(file.write, pending)
    except BaseException:
        remove_file(path)
        raise
    return ReceivedUpload(
        path=path,
        filename=None,
        content_type=content_type,
        source_format=source_format,
        size_bytes=received,
        name=name,
    )


async def receive_body(
    chunks: AsyncIterator[bytes], *, content_length: int | None, max_bytes: int
) -> bytes:
    """Read a whole (JSON) body into memory, refusing more than ``max_bytes`` (413)."""
    if content_length is not None and content_length > max_bytes:
        raise _too_large(content_length, max_bytes)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(len(body), max_bytes)
    return bytes(body)


# -- column types and summaries ------------------------------------------------------------


def _dtype_name(dtype: pa.DataType) -> str:
    if pa.types.is_int64(dtype):
        return "int64"
    if pa.types.is_float64(dtype):
        return "float64"
    if pa.types.is_boolean(dtype):
        return "bool"
    return "string"


def _is_temporal(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_temporal(dtype))


def storage_type(name: str, dtype: pa.DataType) -> pa.DataType:
    """The stored type of a column read as ``dtype`` (see the module doc); 422 if unsupported."""
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_null(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return pa.float64()
    if pa.types.is_integer(dtype):
        return pa.int64()
    if pa.types.is_boolean(dtype):
        return pa.bool_()
    if (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_string_view(dtype)
        or pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
        or pa.types.is_fixed_size_binary(dtype)
        or pa.types.is_binary_view(dtype)
        or _is_temporal(dtype)
    ):
        return pa.string()
    raise InvalidInput(
        f"column {name!r} has type {dtype}, which is not supported; columns must hold "
        "numbers, booleans or text (nested values are not)",
        errors=[field_error(f"/columns/{name}", f"unsupported type {dtype}")],
    )


def check_column_names(names: list[str], limits: IngestLimits) -> None:
    """Names must be non-empty and unique; at most ``limits.max_columns`` of them (413)."""
    if not names:
        raise InvalidInput("the dataset has no columns")
    limits.check_columns(len(names))
    long = [i for i, name in enumerate(names) if len(name) > MAX_COLUMN_NAME_CHARS]
    if long:
        message = f"column names must be at most {MAX_COLUMN_NAME_CHARS} characters"
        raise InvalidInput(
            f"{message} (columns at positions {long[:20]})",
            errors=[field_error(f"/columns/{i}", message) for i in long[:20]],
        )
    empty = [i for i, name in enumerate(names) if not name.strip()]
    if empty:
        raise InvalidInput(
            f"column names must not be empty (columns at positions {empty[:20]})",
            errors=[field_error(f"/columns/{i}", "empty column name") for i in empty[:20]],
        )
    seen: set[str] = set()
    duplicates = []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise InvalidInput(
            f"duplicate column names: {duplicates[:20]}",
            errors=[
                field_error("/columns", f"duplicate column name {name!r}")
                for name in duplicates[:20]
            ],
        )


class _NumericPartial(NamedTuple):
    """One batch's share of a numeric column summary (computed in a parser thread)."""

    n_missing: int
    n_values: int
    mean: float
    m2: float
    min: Any
    max: Any


class _NumericSummary:
    """Running count, min, max, mean and M2 (Chan et al.'s pairwise update) of one column."""

    def __init__(self, name: str, dtype: pa.DataType) -> None:
        self.name = name
        self.dtype = dtype
        self.n_missing = 0
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min: Any = None
        self.max: Any = None

    def update(self, array: pa.Array) -> None:
        self.merge(_numeric_partial(array, self.dtype))

    def merge(self, part: _NumericPartial) -> None:
        self.n_missing += part.n_missing
        n = part.n_values
        if n == 0:
            return
        self.min = part.min if self.min is None else min(self.min, part.min)
        self.max = part.max if self.max is None else max(self.max, part.max)
        total = self.count + n
        delta = part.mean - self.mean
        self.mean += delta * n / total
        self.m2 += part.m2 + delta * delta * self.count * n / total
        self.count = total

    def result(self) -> dict[str, Any]:
        lo, hi = self.min, self.max
        if pa.types.is_boolean(self.dtype) and lo is not None:
            lo, hi = float(lo), float(hi)
        return {
            "name": self.name,
            "dtype": _dtype_name(self.dtype),
            "kind": "numeric",
            "n_missing": self.n_missing,
            "min": lo,
            "max": hi,
            "mean": self.mean if self.count else None,
            "std": math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else None,
        }


def _numeric_partial(
    array: pa.Array, dtype: pa.DataType, extremes: Any = None, mean: float | None = None
) -> _NumericPartial:
    """Count, min, max, mean and M2 of one batch: three Arrow kernels, no Python per value.

    ``extremes`` and ``mean`` may be passed in when the caller computed them already.
    """
    n = len(array) - array.null_count
    if n == 0:
        return _NumericPartial(array.null_count, 0, 0.0, 0.0, None, None)
    values = array if pa.types.is_int64(dtype) else array.cast(pa.float64())
    if extremes is None:
        extremes = pc.min_max(values)
    floats = values.cast(pa.float64())
    if mean is None:
        mean = pc.mean(floats).as_py()
    assert mean is not None
    m2 = pc.variance(floats, ddof=0).as_py() * n
    return _NumericPartial(
        array.null_count, n, mean, m2, extremes["min"].as_py(), extremes["max"].as_py()
    )


class _TextSummary:
    """Missing count, distinct count (exact up to ``TEXT_UNIQUE_CAP``) and the top values."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.n_missing = 0
        self.counts: dict[str, int] = {}
        self.capped = False

    def update(self, array: pa.Array) -> None:
        self.merge(_text_partial(array))

    def merge(self, part: tuple[int, pa.StructArray | None]) -> None:
        n_missing, tally = part
        self.n_missing += n_missing
        if tally is None:
            return
        values, counts = tally.field("values"), tally.field("counts")
        if self.counts:
            known = pc.is_in(values, value_set=pa.array(list(self.counts), pa.string()))
            for value, count in zip(
                values.filter(known).to_pylist(), counts.filter(known).to_pylist(), strict=True
            ):
                self.counts[value] += count
            unknown = pc.invert(known)
            values, counts = values.filter(unknown), counts.filter(unknown)
        room = TEXT_UNIQUE_CAP - len(self.counts)
        if len(values) > room:
            # Past the cap the distinct count is unknown; the top values are then the most
            # frequent among the first TEXT_UNIQUE_CAP distinct values seen.
            self.capped = True
            values, counts = values[:room], counts[:room]
        self.counts.update(zip(values.to_pylist(), counts.to_pylist(), strict=True))

    def result(self) -> dict[str, Any]:
        top = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_VALUES]
        return {
            "name": self.name,
            "dtype": "string",
            "kind": "text",
            "n_missing": self.n_missing,
            "n_unique": None if self.capped else len(self.counts),
            "n_unique_capped": self.capped,
            "top": [{"value": _bounded(value), "count": count} for value, count in top],
        }


def _bounded(value: str) -> str:
    """``value``, cut to ``MAX_SUMMARY_CHARS`` characters (ending in "…" when cut)."""
    if len(value) <= MAX_SUMMARY_CHARS:
        return value
    return value[: MAX_SUMMARY_CHARS - 1] + "…"


def _text_partial(array: pa.Array) -> tuple[int, pa.StructArray | None]:
    """One batch's missing count and value counts of a text column (in a parser thread)."""
    if array.null_count == len(array):
        return array.null_count, None
    return array.null_count, pc.value_counts(array.drop_null())


# -- the Parquet sink ----------------------------------------------------------------------


def _rows_per_batch(n_columns: int) -> int:
    return max(1024, min(ROW_GROUP_MAX_ROWS, BATCH_TARGET_BYTES // (8 * max(n_columns, 1))))


class _HashingFile:
    """A binary file that hashes what is written to it, so the stored file is never re-read.

    hashlib releases the GIL for large buffers, as does the file write.
    """

    def __init__(self, path: Path) -> None:
        self.file = open(path, "wb", buffering=0)  # noqa: SIM115 (closed by close())
        self.digest = hashlib.sha256()
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        written = 0
        while written < len(view):
            written += self.file.write(view[written:])
        self.position += written
        return written

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.file.close()

    def sync_and_close(self) -> None:
        os.fsync(self.file.fileno())
        self.close()


class _Prepared(NamedTuple):
    """A batch cast to the stored schema, with its share of every column summary."""

    batch: pa.RecordBatch
    partials: list[Any]


class _InfiniteValue(Exception):
    """A float column holds ±inf at ``row`` of a batch (the sink adds the batch's offset)."""

    def __init__(self, name: str, row: int) -> None:
        super().__init__(name, row)
        self.name = name
        self.row = row

    def error(self, row_offset: int) -> InvalidInput:
        row = self.row + row_offset
        return InvalidInput(
            f"column {self.name!r} has an infinite value at row {row}",
            errors=[field_error(f"/rows/{row}/{self.name}", "infinite values are not supported")],
        )


class _ParquetSink:
    """Writes normalized batches to ``tmp/{id}.parquet.partial`` and keeps the summaries."""

    def __init__(self, *, data_dir: Path, dataset_id: str, schema: pa.Schema, limits: IngestLimits):
        self.data_dir = data_dir
        self.dataset_id = dataset_id
        self.limits = limits
        self.schema = schema
        self.partial = tmp_dir(data_dir) / f"{dataset_id}.parquet.partial"
        self.file: _HashingFile | None = _HashingFile(self.partial)
        self.writer: pq.ParquetWriter | None = pq.ParquetWriter(
            self.file,
            schema,
            compression=PARQUET_COMPRESSION,
            # Dictionary pages pay off for text; for numbers they cost more than they save.
            use_dictionary=[f.name for f in schema if pa.types.is_string(f.type)],
        )
        self.summaries: list[_NumericSummary | _TextSummary] = [
            _TextSummary(f.name) if pa.types.is_string(f.type) else _NumericSummary(f.name, f.type)
            for f in schema
        ]
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.n_rows = 0
        self.decoded_bytes = 0

    def write(self, prepared: _Prepared) -> None:
        """Append a prepared batch (see ``_prepare``); checks the row and decoded-size limits."""
        batch = prepared.batch
        if batch.num_rows == 0:
            return
        self.limits.check_rows(self.n_rows + batch.num_rows, exact=False)
        self.decoded_bytes += batch.nbytes
        self.limits.check_decoded(self.decoded_bytes, what="decodes to more than")
        for part, summary in zip(prepared.partials, self.summaries, strict=True):
            summary.merge(part)
        self.n_rows += batch.num_rows
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        self.pending_bytes += batch.nbytes
        if self.pending_rows >= ROW_GROUP_MAX_ROWS or self.pending_bytes >= ROW_GROUP_MAX_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self.pending and self.writer is not None:
            table = pa.Table.from_batches(self.pending, schema=self.schema)
            self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def finish(self) -> StoredDataset:
        """Close, fsync, rename into place and fsync the directory; 422 if there are no rows."""
        if self.n_rows == 0:
            raise InvalidInput("dataset has no rows")
        self._flush()
        assert self.writer is not None and self.file is not None
        self.writer.close()
        self.writer = None
        self.file.sync_and_close()
        size = self.file.position
        digest = self.file.digest.hexdigest()
        self.file = None
        filename = dataset_filename(self.dataset_id)
        os.replace(self.partial, self.data_dir / filename)
        fsync_dir(self.data_dir)
        return StoredDataset(
            filename=filename,
            n_rows=self.n_rows,
            n_columns=len(self.schema),
            columns=[summary.result() for summary in self.summaries],
            sha256=digest,
            size_bytes=size,
        )

    def abort(self) -> None:
        """Drop the partial file."""
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
            self.writer = None
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
            self.file = None
        remove_file(self.partial)


def _cast_column(name: str, array: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if array.type != target:
        try:
            array = array.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInput(
                f"column {name!r} cannot be stored as {_dtype_name(target)}: {exc}",
                errors=[field_error(f"/columns/{name}", str(exc))],
            ) from exc
    return array


def _prepare_column(name: str, array: pa.Array, target: pa.DataType) -> tuple[pa.Array, Any]:
    """Cast one column to its stored type and summarize it; NaN becomes null, ±inf raises.

    A float column is checked for NaN/±inf only when its min, max or mean is not finite
    (min_max skips NaN, the mean does not), so clean columns cost three kernels in all.
    """
    array = _cast_column(name, array, target)
    if pa.types.is_string(target):
        return array, _text_partial(array)
    if not pa.types.is_float64(target) or array.null_count == len(array):
        return array, _numeric_partial(array, target)
    extremes = pc.min_max(array)
    mean = pc.mean(array).as_py()
    if all(math.isfinite(v) for v in (extremes["min"].as_py(), extremes["max"].as_py(), mean)):
        return array, _numeric_partial(array, target, extremes, mean)
    infinite = pc.is_inf(array)
    if pc.any(infinite).as_py():
        raise _InfiniteValue(name, pc.index(infinite, True).as_py())
    nan = pc.is_nan(array)
    if pc.any(nan).as_py():
        array = pc.if_else(nan, pa.scalar(None, pa.float64()), array)
    return array, _numeric_partial(array, target)


def _prepare(batch: pa.RecordBatch, schema: pa.Schema) -> _Prepared:
    """Cast ``batch`` to ``schema`` and compute each column's partial summary.

    Runs in the parser threads (Arrow's kernels release the GIL), so the writing thread
    only merges a few numbers per column and writes.
    """
    columns, partials = [], []
    for i, f in enumerate(schema):
        column, partial = _prepare_column(f.name, batch.column(i), f.type)
        columns.append(column)
        partials.append(partial)
    return _Prepared(pa.RecordBatch.from_arrays(columns, schema=schema), partials)


def _prepare_table(table: pa.Table, schema: pa.Schema) -> list[_Prepared]:
    return [_prepare(batch, schema) for batch in table.to_batches()]


def _write_all(
    items: Iterable[pa.RecordBatch | _Prepared | list[_Prepared]],
    *,
    schema: pa.Schema,
    data_dir: Path,
    dataset_id: str,
    limits: IngestLimits,
) -> StoredDataset:
    """Write batches (prepared here) or prepared batches (by the parser threads)."""
    sink = _ParquetSink(data_dir=data_dir, dataset_id=dataset_id, schema=schema, limits=limits)
    try:
        try:
            for item in items:
                if isinstance(item, pa.RecordBatch):
                    sink.write(_prepare(item, schema))
                elif isinstance(item, _Prepared):
                    sink.write(item)
                else:
                    for prepared in item:
                        sink.write(prepared)
        except _InfiniteValue as exc:  # the failing batch is the next one: its offset is n_rows
            raise exc.error(sink.n_rows) from None
        return sink.finish()
    except BaseException:
        sink.abort()
        close = getattr(items, "close", None)
        if close is not None:  # stop the parser threads now, not when the traceback is freed
            close()
        raise


def _target_schema(source: pa.Schema, limits: IngestLimits) -> pa.Schema:
    names = list(source.names)
    check_column_names(names, limits)
    return pa.schema([pa.field(f.name, storage_type(f.name, f.type)) for f in source])


# -- ingest --------------------------------------------------------------------------------


def ingest_file(
    source: Path,
    source_format: str,
    *,
    data_dir: Path,
    dataset_id: str,
    limits: IngestLimits,
    block_size: int | None = None,
) -> StoredDataset:
    """Convert an uploaded file to ``{data_dir}/{dataset_id}.parquet`` (see the module doc).

    Bad input raises a 4xx domain error and leaves nothing behind.
    """
    if source.stat().st_size == 0:
        raise InvalidInput("the uploaded file is empty")
    if source_format == "csv":
        _check_text(source, "CSV")
        return _ingest_csv(
            source,
            data_dir=data_dir,
            dataset_id=dataset_id,
            limits=limits,
            block_size=block_size or CSV_BLOCK_SIZE,
        )
    if source_format == "jsonl":
        _check_text(source, "JSON Lines")
        return _ingest_jsonl(
            source,
            data_dir=data_dir,
            dataset_id=dataset_id,
            limits=limits,
            block_size=block_size or JSONL_BLOCK_SIZE,
        )
    if source_format == "parquet":
        return _ingest_parquet(source, data_dir=data_dir, dataset_id=dataset_id, limits=limits)
    raise ValueError(f"unknown source format {source_format!r}")


def ingest_table(
    table: pa.Table, *, data_dir: Path, dataset_id: str, limits: IngestLimits
) -> StoredDataset:
    """Store an in-memory table (inline JSON rows, synthetic data) like an uploaded file."""
    schema = _target_schema(table.schema, limits)
    limits.check_rows(table.num_rows)
    batches = table.to_batches(max_chunksize=_rows_per_batch(table.num_columns))
    return _write_all(
        batches, schema=schema, data_dir=data_dir, dataset_id=dataset_id, limits=limits
    )


def _check_text(source: Path, label: str) -> None:
    """Reject binary garbage early: NUL bytes or invalid UTF-8 in the first chunk."""
    with source.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
    problem = None
    if b"\x00" in head:
        problem = "it contains NUL bytes (binary data?)"
    else:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError as exc:
            problem = f"it is not UTF-8 text (invalid byte at offset {exc.start})"
    if problem:
        article = "an" if label[0] in "AEIOU" else "a"
        raise InvalidInput(
            f"not {article} valid {label} file: {problem}",
            errors=[field_error("/file", problem)],
        )


def _parquet_metadata_size(metadata: pq.FileMetaData) -> int:
    """A lower bound of the decoded size from the footer alone: 8 bytes a value, or a column
    chunk's uncompressed size when larger (plain-encoded strings)."""
    total = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            total += max(8 * group.num_rows, group.column(c).total_uncompressed_size)
    return total


def _decoded_size(array: pa.Array) -> int:
    """What ``array`` takes once dictionary-decoded, computed without decoding it."""
    if not pa.types.is_dictionary(array.type):
        return int(array.nbytes)
    dictionary = array.dictionary
    if pa.types.is_string(dictionary.type) or pa.types.is_binary(dictionary.type):
        lengths = pc.binary_length(dictionary)
        data = pc.sum(pc.take(lengths, array.indices)).as_py() or 0
        return int(data) + 4 * len(array)
    return 8 * len(array)


def _bounded_batches(
    batches: Iterable[pa.RecordBatch], limits: IngestLimits
) -> Iterator[pa.RecordBatch]:
    """``batches`` (text read as dictionaries), refused before the one that would decode past
    the limit: a few kilobytes of repeated long strings must not become gigabytes first."""
    total = 0
    for batch in batches:
        total += sum(_decoded_size(column) for column in batch.columns)
        limits.check_decoded(total, what="decodes to more than")
        yield batch


def _ingest_parquet(
    source: Path, *, data_dir: Path, dataset_id: str, limits: IngestLimits
) -> StoredDataset:
    try:
        parquet = pq.ParquetFile(source)
        arrow_schema = parquet.schema_arrow
        metadata = parquet.metadata
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(
            f"not a valid Parquet file: {exc}",
            errors=[field_error("/file", "not a valid Parquet file")],
        ) from exc
    with parquet:
        schema = _target_schema(arrow_schema, limits)
        # The footer states rows, columns and sizes: refuse before decoding anything.
        limits.check_cells(metadata.num_rows, len(schema))
        limits.check_decoded(_parquet_metadata_size(metadata), what="would decode to at least")
    text = [
        f.name
        for f in arrow_schema
        if pa.types.is_string(f.type)
        or pa.types.is_large_string(f.type)
        or pa.types.is_binary(f.type)
        or pa.types.is_large_binary(f.type)
    ]
    try:
        parquet = pq.ParquetFile(source, read_dictionary=text)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(
            f"not a valid Parquet file: {exc}",
            errors=[field_error("/file", "not a valid Parquet file")],
        ) from exc
    with parquet:
        batches = parquet.iter_batches(batch_size=_rows_per_batch(len(schema)), use_threads=True)
        try:
            return _write_all(
                _bounded_batches(batches, limits),
                schema=schema,
                data_dir=data_dir,
                dataset_id=dataset_id,
                limits=limits,
            )
        except (pa.ArrowException, OSError) as exc:
            if is_disk_full(exc):  # writing the converted file failed, not reading the upload
                raise InsufficientStorage(
                    "no space left on the server's data disk while storing the Parquet "
                    "upload; nothing was stored (retry when space is freed)"
                ) from exc
            raise InvalidInput(
                f"not a valid Parquet file: {exc}",
                errors=[field_error("/file", "the Parquet file is corrupt")],
            ) from exc


# Blocks and parallel parsing ------------------------------------------------------------------


class _Block:
    """Whole lines of a text file: their bytes and the byte offset of the first one.

    Line numbers are only needed to report errors, so they are counted then (``first_line``)
    rather than for every block.
    """

    __slots__ = ("data", "offset", "source")

    def __init__(self, source: Path, offset: int, data: memoryview | bytes) -> None:
        self.source = source
        self.offset = offset
        self.data = data

    def first_line(self) -> int:
        """The 1-based number of the block's first line (reads the file up to it)."""
        return _line_at(self.source, self.offset)


def _line_at(source: Path, offset: int) -> int:
    line = 1
    with source.open("rb") as stream:
        while offset > 0 and (chunk := stream.read(min(offset, 1 << 20))):
            line += chunk.count(b"\n")
            offset -= len(chunk)
    return line


def _line_blocks(source: Path, block_size: int, label: str) -> Iterator[_Block]:
    """Blocks of whole lines, read into fresh buffers without copying them again."""
    with source.open("rb", buffering=0) as stream:
        carry = b""
        offset = 0  # of the first byte of carry in the file
        while True:
            buffer = bytearray(len(carry) + block_size)
            buffer[: len(carry)] = carry
            read = stream.readinto(memoryview(buffer)[len(carry) :])
            if not read:
                break
            end = len(carry) + read
            cut = buffer.rfind(b"\n", 0, end)
            if cut < 0:
                carry = bytes(buffer[:end])
                if len(carry) > MAX_LINE_BYTES:
                    line = _line_at(source, offset)
                    raise InvalidInput(
                        f"not a valid {label} file: line {line} is longer than "
                        f"{MAX_LINE_BYTES} bytes",
                        errors=[field_error(f"/file/lines/{line}", "line too long")],
                    )
                continue
            carry = bytes(buffer[cut + 1 : end])
            yield _Block(source, offset, memoryview(buffer)[: cut + 1])
            offset += cut + 1
        if carry.strip():
            yield _Block(source, offset, carry)


def _ordered_map(
    function: Callable[[_Block], _T], blocks: Iterator[_Block], workers: int
) -> Iterator[_T]:
    """``function`` over ``blocks`` on ``workers`` threads (Arrow parsers release the GIL), in
    order, with at most one block per thread in flight so memory stays bounded."""
    if workers <= 1:
        for block in blocks:
            yield function(block)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="regfit-parse")
    window: deque[Future[_T]] = deque()
    try:
        for block in blocks:
            window.append(pool.submit(function, block))
            if len(window) > workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# CSV -----------------------------------------------------------------------------------------

_CSV_CONVERSION = re.compile(
    r"In CSV column #(?P<column>\d+): Row #(?P<row>\d+): "
    r"CSV conversion error to (?P<type>[^:]+): invalid value '(?P<value>.*)'",
    re.DOTALL,
)


class _CsvTypeMismatch(Exception):
    """A value in a later block does not fit its column's type (the reader must widen it)."""

    def __init__(self, column: int, value: str) -> None:
        super().__init__(column, value)
        self.column = column
        self.value = value


def _parse_csv_block(
    block: _Block,
    *,
    names: list[str] | None,
    column_types: dict[str, pa.DataType],
) -> pa.Table:
    """Parse one block of whole lines (the first block holds the header: ``names=None``)."""
    bad_rows: list[Any] = []

    def on_invalid_row(row: Any) -> str:
        bad_rows.append(row)
        return "error"

    try:
        return pa_csv.read_csv(
            pa.BufferReader(block.data),
            read_options=pa_csv.ReadOptions(
                use_threads=False, block_size=len(block.data) + 1, column_names=names
            ),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid_row),
            convert_options=pa_csv.ConvertOptions(
                column_types=column_types,
                null_values=CSV_NULL_VALUES,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        if bad_rows:
            row = bad_rows[0]
            number = block.first_line() + row.number - 1 if row.number is not None else None
            where = f"line {number}" if number is not None else "a row"
            message = f"expected {row.expected_columns} columns, found {row.actual_columns}"
            loc = f"/file/lines/{number}" if number is not None else "/file"
            raise InvalidInput(
                f"not a valid CSV file: {where}: {message}", errors=[field_error(loc, message)]
            ) from exc
        match = _CSV_CONVERSION.search(str(exc))
        if match is not None:
            raise _CsvTypeMismatch(int(match["column"]), match["value"]) from exc
        text = str(exc)
        if "Empty CSV file" in text:
            raise InvalidInput(
                "the uploaded file is empty", errors=[field_error("/file", "empty file")]
            ) from exc
        raise InvalidInput(
            f"not a valid CSV file: {text}", errors=[field_error("/file", text)]
        ) from exc


def _first_block(blocks: Iterator[_Block]) -> _Block:
    first = next(blocks, None)
    if first is None:  # only blanks
        raise InvalidInput(
            "the uploaded file is empty", errors=[field_error("/file", "empty file")]
        )
    return first


def _csv_parses_as(column: pa.Array, dtype: pa.DataType) -> bool:
    try:
        column.cast(dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


_WIDENING = {
    "null": [pa.int64(), pa.float64(), pa.bool_(), pa.string()],
    "int64": [pa.int64(), pa.float64(), pa.string()],
    "double": [pa.float64(), pa.string()],
    "bool": [pa.bool_(), pa.string()],
}


def _widen(dtype: pa.DataType, values: pa.Array | pa.ChunkedArray) -> pa.DataType:
    """The first type on ``dtype``'s widening ladder that every one of ``values`` parses as."""
    for candidate in _WIDENING.get(str(dtype), [pa.string()]):
        if pa.types.is_string(candidate) or _csv_parses_as(values, candidate):
            return candidate
    return pa.string()


def _infer_csv_types(
    source: Path, head: pa.Schema, block_size: int, threads: int
) -> dict[str, pa.DataType]:
    """Scan the whole file as text and widen each column's first-block type to fit every value."""
    types = {f.name: f.type for f in head}
    as_text = dict.fromkeys(head.names, pa.string())
    blocks = _line_blocks(source, block_size, "CSV")
    first = True

    def parse(block: _Block) -> pa.Table:
        nonlocal first
        names, first = (None if first else head.names), False
        return _parse_csv_block(block, names=names, column_types=as_text)

    for table in _ordered_map(parse, blocks, threads):
        for name, column in zip(head.names, table.columns, strict=True):
            current = types[name]
            if not pa.types.is_string(current) and column.null_count < len(column):
                types[name] = _widen(current, column.drop_null())
    return types


def _write_csv(
    source: Path,
    column_types: dict[str, pa.DataType],
    *,
    data_dir: Path,
    dataset_id: str,
    limits: IngestLimits,
    block_size: int,
) -> StoredDataset:
    blocks = _line_blocks(source, block_size, "CSV")
    first_block = _first_block(blocks)
    head = _parse_csv_block(first_block, names=None, column_types=column_types)
    check_column_names(head.column_names, limits)
    temporal = {f.name: pa.string() for f in head.schema if _is_temporal(f.type)}
    if temporal:
        # Keep dates and timestamps as the text that was sent.
        column_types.update(temporal)
        head = _parse_csv_block(first_block, names=None, column_types=column_types)
    read_types = {f.name: f.type for f in head.schema}
    names = head.column_names
    schema = _target_schema(head.schema, limits)

    def parse(block: _Block) -> list[_Prepared]:
        table = _parse_csv_block(block, names=names, column_types=read_types)
        return _prepare_table(table, schema)

    def batches() -> Iterator[pa.RecordBatch | list[_Prepared]]:
        yield from head.to_batches()
        yield from _ordered_map(parse, blocks, limits.parse_threads)

    return _write_all(
        batches(), schema=schema, data_dir=data_dir, dataset_id=dataset_id, limits=limits
    )


def _ingest_csv(
    source: Path, *, data_dir: Path, dataset_id: str, limits: IngestLimits, block_size: int
) -> StoredDataset:
    column_types: dict[str, pa.DataType] = {}
    head_schema: pa.Schema | None = None
    for attempt in range(MAX_CSV_ATTEMPTS):
        try:
            return _write_csv(
                source,
                column_types,
                data_dir=data_dir,
                dataset_id=dataset_id,
                limits=limits,
                block_size=block_size,
            )
        except _CsvTypeMismatch as mismatch:
            if head_schema is None:
                head_schema = _csv_head_schema(source, column_types, block_size)
            if attempt == 0:
                column_types = _infer_csv_types(
                    source, head_schema, block_size, limits.parse_threads
                )
            else:
                name = head_schema.names[mismatch.column]
                current = column_types.get(name, head_schema.field(name).type)
                widened = _widen(current, pa.array([mismatch.value]))
                column_types[name] = pa.string() if widened == current else widened
    raise InvalidInput(
        "not a valid CSV file: the column types could not be settled "
        f"after {MAX_CSV_ATTEMPTS} attempts",
        errors=[field_error("/file", "column types keep changing")],
    )


def _csv_head_schema(
    source: Path, column_types: dict[str, pa.DataType], block_size: int
) -> pa.Schema:
    first_block = _first_block(_line_blocks(source, block_size, "CSV"))
    schema: pa.Schema = _parse_csv_block(first_block, names=None, column_types=column_types).schema
    return schema


def _json_line_error(block: _Block) -> InvalidInput | None:
    """Find the first bad line of ``block`` with orjson (only on the error path)."""
    kinds: dict[str, tuple[str, int]] = {}
    first_line = block.first_line()
    for offset, raw in enumerate(bytes(block.data).split(b"\n")):
        number = first_line + offset
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _jsonl_invalid(number, f"invalid JSON ({exc})")
        if not isinstance(value, dict):
            return _jsonl_invalid(number, f"expected a JSON object, found {type(value).__name__}")
        for key, item in value.items():
            kind = _json_kind(item)
            if kind is None:
                return _jsonl_invalid(
                    number,
                    f"column {key!r} holds a nested value (lists and objects are not supported)",
                )
            if kind == "null":
                continue
            seen = kinds.setdefault(key, (kind, number))
            if seen[0] != kind and {seen[0], kind} != {"int", "float"}:
                return _jsonl_invalid(
                    number, f"column {key!r} holds a {kind} here but a {seen[0]} on line {seen[1]}"
                )
    return None


def _json_kind(value: Any) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return None


def _jsonl_invalid(line: int, message: str) -> InvalidInput:
    return InvalidInput(
        f"not a valid JSON Lines file: line {line}: {message}",
        errors=[field_error(f"/file/lines/{line}", message)],
    )


def _read_json_block(block: _Block, schema: pa.Schema | None = None) -> pa.Table:
    parse_options = (
        pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
        if schema is not None
        else pa_json.ParseOptions()
    )
    try:
        return pa_json.read_json(
            pa.BufferReader(block.data),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(block.data) + 1),
            parse_options=parse_options,
        )
    except pa.ArrowInvalid as exc:
        located = _json_line_error(block)
        if located is not None:
            raise located from exc
        first_line = block.first_line()
        raise InvalidInput(
            f"not a valid JSON Lines file (lines {first_line}…): {exc}",
            errors=[field_error(f"/file/lines/{first_line}", str(exc))],
        ) from exc


def _unify_json_type(
    name: str, old: pa.DataType | None, new: pa.DataType, block: _Block
) -> pa.DataType:
    if pa.types.is_nested(new):
        raise _jsonl_invalid(
            block.first_line(),
            f"column {name!r} holds nested values (lists and objects are not supported)",
        )
    if _is_temporal(new):
        new = pa.string()
    if old is None or pa.types.is_null(old) or old == new:
        return new
    if pa.types.is_null(new):
        return old
    if {str(old), str(new)} == {"int64", "double"}:
        return pa.float64()
    raise _jsonl_invalid(
        block.first_line(),
        f"column {name!r} holds values of type {new} in this block of lines but {old} before",
    )


def _count_json_keys(block: _Block, known: Iterable[str], limits: IngestLimits) -> int:
    """The lines of ``block``, checking as they are read that the keys seen so far (with
    ``known``) stay within the column limit, and lines × keys within the decoded size.

    Arrow's reader would first build a table of every line × every key it met (20,000
    one-key lines with distinct keys: 400 M cells), so a block with new keys is counted
    here first. Bad JSON is left for the reader to report.
    """
    keys = set(known)
    lines = 0
    for raw in bytes(block.data).split(b"\n"):
        if not raw.strip():
            continue
        lines += 1
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            keys.update(value)
            limits.check_columns(len(keys), exact=False)
    limits.check_cells(lines, len(keys))
    return lines


def _scan_json_block(
    block: _Block, schema: pa.Schema, limits: IngestLimits
) -> tuple[_Block, pa.Schema, int]:
    """One block's rows and types. Read with the types known so far when it has no new key
    and no value of a new type (the common case, no Python per line); else counted first
    (see :func:`_count_json_keys`), then read with inference."""
    if len(schema):
        try:
            table = pa_json.read_json(
                pa.BufferReader(block.data),
                read_options=pa_json.ReadOptions(use_threads=False, block_size=len(block.data) + 1),
                parse_options=pa_json.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="error"
                ),
            )
            return block, schema, table.num_rows
        except pa.ArrowInvalid:
            pass
    _count_json_keys(block, schema.names, limits)
    table = _read_json_block(block)
    return block, table.schema, table.num_rows


def _ingest_jsonl(
    source: Path, *, data_dir: Path, dataset_id: str, limits: IngestLimits, block_size: int
) -> StoredDataset:
    # Pass 1 finds every key and its widest type (the streaming reader cannot add columns
    # after its first block); pass 2 reads again with that explicit schema and writes.
    types: dict[str, pa.DataType] = {}
    n_rows = 0
    # The types known when a block is scanned (replaced, never changed, so the parser
    # threads may read it): a block scanned before an earlier one added a key just takes
    # the slower path.
    known = pa.schema([])

    def scan(block: _Block) -> tuple[_Block, pa.Schema, int]:
        return _scan_json_block(block, known, limits)

    blocks = _line_blocks(source, block_size, "JSON Lines")
    for block, block_types, block_rows in _ordered_map(scan, blocks, limits.parse_threads):
        n_rows += block_rows
        limits.check_rows(n_rows, exact=False)
        for f in block_types:
            types[f.name] = _unify_json_type(f.name, types.get(f.name), f.type, block)
        limits.check_columns(len(types), exact=False)
        limits.check_cells(n_rows, len(types))
        known = pa.schema([pa.field(name, dtype) for name, dtype in types.items()])
    if n_rows == 0:
        raise InvalidInput("dataset has no rows")
    check_column_names(list(types), limits)
    read_schema = pa.schema([pa.field(name, dtype) for name, dtype in types.items()])
    schema = _target_schema(read_schema, limits)

    def parse(block: _Block) -> list[_Prepared]:
        table = _read_json_block(block, read_schema).select(read_schema.names)
        return _prepare_table(table, schema)

    def batches() -> Iterator[list[_Prepared]]:
        yield from _ordered_map(
            parse, _line_blocks(source, block_size, "JSON Lines"), limits.parse_threads
        )

    return _write_all(
        batches(), schema=schema, data_dir=data_dir, dataset_id=dataset_id, limits=limits
    )


# -- inline JSON bodies --------------------------------------------------------------------

_JSON_SCALARS = (int, float, str, bool, type(None))


def _json_group(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "string"


def _column_array(name: str, values: list[Any], loc_of: Callable[[int], str]) -> pa.Array:
    """One column of an inline JSON body; ``loc_of(i)`` is the JSON pointer of value ``i``."""
    kinds = {type(v) for v in values}
    unsupported = kinds - set(_JSON_SCALARS)
    if unsupported:
        index = next(i for i, v in enumerate(values) if type(v) in unsupported)
        message = (
            f"column {name!r} holds a {type(values[index]).__name__}; values must be numbers, "
            "strings, booleans or null"
        )
        raise InvalidInput(
            f"{loc_of(index)}: {message}", errors=[field_error(loc_of(index), message)]
        )
    kinds.discard(type(None))
    groups = {_json_group(k()) for k in kinds}
    if len(groups) > 1:
        present = [(i, v) for i, v in enumerate(values) if v is not None]
        first_group = _json_group(present[0][1])
        index = next(i for i, v in present if _json_group(v) != first_group)
        message = f"column {name!r} mixes {' and '.join(sorted(groups))} values"
        raise InvalidInput(
            f"{loc_of(index)}: {message}", errors=[field_error(loc_of(index), message)]
        )
    if kinds == {int}:
        outside = [i for i, v in enumerate(values) if v is not None and not -(2**63) <= v < 2**63]
        if outside:
            message = f"column {name!r} holds an integer outside the 64-bit range"
            raise InvalidInput(
                f"{loc_of(outside[0])}: {message}",
                errors=[field_error(loc_of(outside[0]), message)],
            )
        dtype = pa.int64()
    elif kinds == {bool}:
        dtype = pa.bool_()
    elif kinds == {str}:
        dtype = pa.string()
    else:
        dtype = pa.float64()
    return pa.array(values, type=dtype)


def table_from_rows(columns: Any, rows: Any, limits: IngestLimits) -> pa.Table:
    """Build a table from ``{"columns": [...], "rows": [[...], ...]}`` (422s name the path).

    The row, column and decoded-size limits are checked before any column is built.
    """
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidInput(
            "'columns' must be a list of column names",
            errors=[field_error("/columns", "expected a list of strings")],
        )
    if not isinstance(rows, list):
        raise InvalidInput(
            "'rows' must be a list of rows", errors=[field_error("/rows", "expected a list")]
        )
    if not rows:
        raise InvalidInput("dataset has no rows", errors=[field_error("/rows", "no rows")])
    limits.check_cells(len(rows), len(columns))
    width = len(columns)
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else f"a {type(row).__name__}"
            message = f"expected a list of {width} values (one per column), got {got}"
            raise InvalidInput(
                f"/rows/{index}: {message}", errors=[field_error(f"/rows/{index}", message)]
            )
    arrays = [
        _column_array(name, list(values), functools.partial(_cell_pointer, "rows", str(j)))
        for j, (name, values) in enumerate(zip(columns, zip(*rows, strict=True), strict=True))
    ]
    return pa.Table.from_arrays(arrays, names=columns)


def table_from_records(records: Any, limits: IngestLimits) -> pa.Table:
    """Build a table from ``{"records": [{...}, ...]}``; a key missing from a record is null.

    The column limit is checked as keys appear, and records × keys against the decoded
    size before any column is built: one new key per record must not cost records × keys.
    """
    if not isinstance(records, list):
        raise InvalidInput(
            "'records' must be a list of objects",
            errors=[field_error("/records", "expected a list")],
        )
    if not records:
        raise InvalidInput("dataset has no rows", errors=[field_error("/records", "no records")])
    limits.check_rows(len(records))
    names: dict[str, None] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            message = f"expected an object, got a {type(record).__name__}"
            raise InvalidInput(
                f"/records/{index}: {message}", errors=[field_error(f"/records/{index}", message)]
            )
        names.update(dict.fromkeys(record))
        if len(names) > limits.max_columns:
            limits.check_columns(len(names), exact=False)
    limits.check_cells(len(records), len(names))
    arrays = [
        _column_array(
            name,
            [record.get(name) for record in records],
            functools.partial(_cell_pointer, "records", _pointer(name)),
        )
        for name in names
    ]
    return pa.Table.from_arrays(arrays, names=list(names))


def _cell_pointer(container: str, column: str, row: int) -> str:
    return f"/{container}/{row}/{column}"


def _pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
