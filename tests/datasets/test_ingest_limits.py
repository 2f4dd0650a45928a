"""Cost bounded before work: uploads are refused by rows, columns and decoded size as they
are read (inline JSON, JSON Lines, Parquet from its footer), and summaries stay small."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.datasets import files, storage

ClientFactory = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def limited(settings: Settings) -> ClientFactory:
    """A client on an app whose settings are overridden by keyword."""

    @contextmanager
    def make(**overrides: Any) -> Iterator[TestClient]:
        from service.main import create_app

        app = create_app(settings.model_copy(update=overrides), start_executor=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client

    return make


def _assert_413(response: Any, *words: str) -> dict[str, Any]:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    for word in words:
        assert word in problem["detail"], problem
    return problem


def _no_partial_files(settings: Settings) -> None:
    assert list(files.tmp_dir(settings.data_dir).iterdir()) == []
    assert list(settings.data_dir.glob("*.parquet")) == []


DISTINCT_KEYS = 20_000


def test_records_with_distinct_keys_are_refused_as_the_keys_appear(
    client: TestClient, settings: Settings
) -> None:
    """The issue's 289 KB body: 20,000 one-key records with distinct keys (48 s, 3.6 GB)."""
    body = orjson.dumps({"records": [{f"k{i}": 1} for i in range(DISTINCT_KEYS)]})
    assert len(body) < 300_000
    started = time.perf_counter()
    response = client.post(
        "/v1/datasets", content=body, headers={"content-type": "application/json"}
    )
    elapsed = time.perf_counter() - started
    problem = _assert_413(response, "more than 10000 columns")
    assert problem["limit_columns"] == settings.max_columns
    assert elapsed < 1.0, elapsed
    _no_partial_files(settings)


def test_json_lines_with_distinct_keys_are_refused_as_the_keys_appear(
    client: TestClient, settings: Settings
) -> None:
    """The same as JSON Lines (20 s, 5.8 GB before the fix)."""
    body = b"".join(orjson.dumps({f"k{i}": 1}) + b"\n" for i in range(DISTINCT_KEYS))
    started = time.perf_counter()
    response = client.post(
        "/v1/datasets", content=body, headers={"content-type": "application/x-ndjson"}
    )
    elapsed = time.perf_counter() - started
    _assert_413(response, "more than 10000 columns")
    assert elapsed < 1.0, elapsed
    _no_partial_files(settings)


def test_json_lines_keys_below_the_limit_that_multiply_into_too_many_cells(
    limited: ClientFactory, settings: Settings
) -> None:
    """3,000 keys × 3,000 lines is within the column limit but 72 MB of numbers."""
    body = b"".join(orjson.dumps({f"k{i}": 1}) + b"\n" for i in range(3000))
    with limited(max_decoded_bytes=10_000_000) as client:
        response = client.post(
            "/v1/datasets", content=body, headers={"content-type": "application/x-ndjson"}
        )
    problem = _assert_413(response, "would decode to at least")
    assert problem["limit_decoded_bytes"] == 10_000_000


def test_json_lines_with_new_keys_and_types_in_later_blocks_still_load(tmp_path: Any) -> None:
    """A later block adding a key or widening int to float takes the counted path."""
    lines = [orjson.dumps({"a": i, "y": 2 * i}) for i in range(300)]
    lines += [orjson.dumps({"a": i + 0.5, "b": "x", "y": 1}) for i in range(300)]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    limits = storage.IngestLimits(
        max_rows=10_000, max_columns=10, parse_threads=4, max_decoded_bytes=10**7
    )
    stored = storage.ingest_file(
        source,
        "jsonl",
        data_dir=tmp_path / "data",
        dataset_id="ds_t",
        limits=limits,
        block_size=2048,
    )
    assert stored.n_rows == 600
    dtypes = {c["name"]: c["dtype"] for c in stored.columns}
    assert dtypes == {"a": "float64", "y": "int64", "b": "string"}
    assert {c["name"]: c["n_missing"] for c in stored.columns}["b"] == 300


def test_inline_rows_are_checked_against_rows_columns_and_decoded_size(
    limited: ClientFactory,
) -> None:
    rows = [[1.0] * 100 for _ in range(2000)]  # 1.6 MB of numbers
    body = {"columns": [f"c{j}" for j in range(100)], "rows": rows}
    with limited(max_decoded_bytes=1_000_000) as client:
        _assert_413(client.post("/v1/datasets", json=body), "would decode to at least")
    with limited(max_rows=1000) as client:
        _assert_413(client.post("/v1/datasets", json=body), "2000 rows")
    with limited(max_columns=50) as client:
        _assert_413(client.post("/v1/datasets", json=body), "100 columns")


def _parquet(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def _upload_parquet(client: TestClient, data: bytes) -> Any:
    return client.post(
        "/v1/datasets",
        files={"file": ("bomb.parquet", data, "application/vnd.apache.parquet")},
    )


def test_parquet_that_decodes_past_the_limit_is_refused_from_its_footer(
    limited: ClientFactory, settings: Settings
) -> None:
    """A small Parquet file of millions of repeated values (the issue's 4.3 MB file decoded
    to 49 M rows × 20 columns), refused before a row is decoded."""
    zeros = pa.array(np.zeros(2_000_000))
    table = pa.table({f"c{j}": zeros for j in range(20)})
    data = _parquet(table, compression="zstd")
    assert len(data) < 1_000_000
    # 10 MB upload limit: decoded at most 80 MB, and these are 320 MB of numbers.
    with limited(max_upload_bytes=10_000_000) as client:
        started = time.perf_counter()
        response = _upload_parquet(client, data)
        elapsed = time.perf_counter() - started
    problem = _assert_413(response, "would decode to at least 320000000 bytes")
    assert problem["limit_decoded_bytes"] == 80_000_000
    assert elapsed < 1.0, elapsed
    _no_partial_files(settings)


def test_parquet_with_repeated_long_strings_is_refused_before_they_are_decoded(
    limited: ClientFactory, settings: Settings
) -> None:
    """A dictionary-encoded column of one long string repeated: kilobytes in the file."""
    long = "x" * 100_000
    table = pa.table({"s": pa.array([long] * 1000).dictionary_encode(), "y": np.arange(1000)})
    data = _parquet(table, compression="zstd")
    assert len(data) < 100_000
    with limited(max_decoded_bytes=20_000_000) as client:
        response = _upload_parquet(client, data)
    _assert_413(response, "decodes to more than")
    _no_partial_files(settings)


def test_long_strings_are_stored_but_their_summaries_are_bounded(client: TestClient) -> None:
    """Five 2 MB strings: the dataset keeps them, its summary keeps 200 characters of each."""
    values = [chr(ord("a") + i) * 2_000_000 for i in range(5)]
    table = pa.table({"s": values, "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    created = _upload_parquet(client, _parquet(table, compression="zstd"))
    assert created.status_code == 201, created.text
    summary = next(c for c in created.json()["columns"] if c["name"] == "s")
    assert summary["n_unique"] == 5
    assert [len(top["value"]) for top in summary["top"]] == [storage.MAX_SUMMARY_CHARS] * 5
    assert all(top["value"].endswith("…") for top in summary["top"])
    listing = client.get("/v1/datasets")
    assert len(listing.content) < 10_000
    rows = client.get(f"/v1/datasets/{created.json()['id']}/rows", params={"limit": 1}).json()
    assert rows["rows"][0][0] == values[0]  # the data itself is kept whole


def test_column_names_are_bounded(client: TestClient) -> None:
    name = "c" * (storage.MAX_COLUMN_NAME_CHARS + 1)
    response = client.post("/v1/datasets", json={"columns": [name, "y"], "rows": [[1, 2]]})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == "/columns/0"
