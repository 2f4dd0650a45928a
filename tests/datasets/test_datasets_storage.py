"""Dataset storage called directly: type handling, late type changes, summaries, reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.datasets import reader, storage
from service.errors import InvalidInput, NotFound, PayloadTooLarge

LIMITS = storage.IngestLimits(max_rows=10_000_000, max_columns=1000, parse_threads=4)


def ingest(
    tmp_path: Path,
    content: bytes,
    fmt: str,
    *,
    limits: storage.IngestLimits = LIMITS,
    block_size: int | None = None,
) -> storage.StoredDataset:
    source = tmp_path / f"source.{fmt}"
    source.write_bytes(content)
    return storage.ingest_file(
        source,
        fmt,
        data_dir=tmp_path / "data",
        dataset_id="ds_test",
        limits=limits,
        block_size=block_size,
    )


def stored(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ds_test.parquet"


def leftovers(tmp_path: Path) -> list[Path]:
    data = tmp_path / "data"
    return [p for p in data.rglob("*") if p.is_file()] if data.exists() else []


def test_late_float_and_text_in_small_blocks(tmp_path: Path) -> None:
    # 70k int rows, then a float and a word, with 64 KiB blocks: the types change after the
    # first block, and the file is read again with the widened types.
    rows = [f"{i},{i % 3},{i}" for i in range(70_000)] + ["1.5,abc,7"]
    result = ingest(
        tmp_path, ("a,b,c\n" + "\n".join(rows) + "\n").encode(), "csv", block_size=1 << 16
    )
    assert result.n_rows == 70_001
    assert [c["dtype"] for c in result.columns] == ["float64", "string", "int64"]
    columns = reader.read_columns(stored(tmp_path))
    expected_a = np.append(np.arange(70_000, dtype=np.float64), 1.5)
    assert np.array_equal(columns["a"], expected_a)
    assert columns["b"][-1] == "abc" and columns["b"][0] == "0"
    assert np.array_equal(columns["c"], np.append(np.arange(70_000), 7).astype(np.float64))
    assert leftovers(tmp_path) == [stored(tmp_path)]


def test_late_values_in_an_empty_column(tmp_path: Path) -> None:
    rows = [f"{i}," for i in range(5000)] + ["5000,2.5", "5001,"]
    result = ingest(tmp_path, ("a,b\n" + "\n".join(rows) + "\n").encode(), "csv", block_size=4096)
    assert result.columns[1]["dtype"] == "float64"
    assert result.columns[1]["n_missing"] == 5001
    b = reader.read_columns(stored(tmp_path), ["b"])["b"]
    assert np.isnan(b[:5000]).all() and b[5000] == 2.5


def test_ragged_row_in_a_later_block_names_the_line(tmp_path: Path) -> None:
    rows = [f"{i},{i}" for i in range(10_000)] + ["1,2,3"] + ["4,5"] * 10
    with pytest.raises(InvalidInput) as caught:
        ingest(tmp_path, ("a,b\n" + "\n".join(rows) + "\n").encode(), "csv", block_size=4096)
    assert "line 10002: expected 2 columns, found 3" in caught.value.detail
    assert leftovers(tmp_path) == []


def test_csv_missing_values_dates_and_bools(tmp_path: Path) -> None:
    content = (
        b"n,d,t,b\n1,2020-01-05,x,true\nNA,2021-02-03,,false\n"
        b"NaN,,null,\nnull,2022-03-04,N/A,TRUE\n"
    )
    result = ingest(tmp_path, content, "csv")
    assert [(c["name"], c["dtype"], c["n_missing"]) for c in result.columns] == [
        ("n", "int64", 3),
        ("d", "string", 1),  # dates stay text, as sent
        ("t", "string", 3),
        ("b", "bool", 1),
    ]
    _, rows = reader.read_rows(stored(tmp_path), offset=0, limit=10)
    assert rows[0] == [1, "2020-01-05", "x", True]
    assert rows[2] == [None, None, None, None]


def test_jsonl_keys_appearing_in_later_blocks(tmp_path: Path) -> None:
    lines = [{"a": i} for i in range(3000)] + [{"a": 0.5, "late": "x", "when": "2020-01-01"}]
    content = "\n".join(json.dumps(line) for line in lines).encode()  # no final newline
    result = ingest(tmp_path, content, "jsonl", block_size=4096)
    assert [(c["name"], c["dtype"]) for c in result.columns] == [
        ("a", "float64"),
        ("late", "string"),
        ("when", "string"),
    ]
    columns = reader.read_columns(stored(tmp_path))
    assert columns["a"][-1] == 0.5 and columns["late"][-1] == "x" and columns["late"][0] is None
    assert columns["when"][-1] == "2020-01-01"


def test_jsonl_bad_line_in_a_later_block(tmp_path: Path) -> None:
    lines = [json.dumps({"a": i}) for i in range(3000)] + ["{not json}"]
    with pytest.raises(InvalidInput) as caught:
        ingest(tmp_path, "\n".join(lines).encode(), "jsonl", block_size=4096)
    assert "line 3001" in caught.value.detail
    assert leftovers(tmp_path) == []


def test_text_summary_caps_distinct_values(tmp_path: Path) -> None:
    values = [f"v{i}" for i in range(storage.TEXT_UNIQUE_CAP + 50)] + ["v1"] * 10
    content = ("s\n" + "\n".join(values) + "\n").encode()
    (summary,) = ingest(tmp_path, content, "csv", block_size=1 << 16).columns
    assert summary["n_unique"] is None and summary["n_unique_capped"] is True
    assert summary["top"][0] == {"value": "v1", "count": 11}


def test_numeric_summary_merges_blocks_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(5, 2, size=40_000)
    content = ("x\n" + "\n".join(repr(float(v)) for v in values) + "\n").encode()
    (summary,) = ingest(tmp_path, content, "csv", block_size=1 << 16).columns
    assert summary["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert summary["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert (summary["min"], summary["max"]) == (values.min(), values.max())


def test_read_columns_types_and_order(tmp_path: Path) -> None:
    table = pa.table(
        {
            "i": pa.array([3, None, 1], pa.int64()),
            "f": pa.array([0.5, 1.5, 2.5]),
            "b": pa.array([True, False, None]),
            "s": pa.array(["x", None, "z"]),
        }
    )
    storage.ingest_table(table, data_dir=tmp_path / "data", dataset_id="ds_test", limits=LIMITS)
    columns = reader.read_columns(stored(tmp_path))
    assert list(columns) == ["i", "f", "b", "s"]
    assert all(columns[name].dtype == np.float64 for name in "ifb")
    np.testing.assert_array_equal(columns["i"], [3.0, np.nan, 1.0])
    np.testing.assert_array_equal(columns["f"], [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(columns["b"], [1.0, 0.0, np.nan])
    assert columns["s"].dtype == object and list(columns["s"]) == ["x", None, "z"]
    assert list(reader.read_columns(stored(tmp_path), ["s", "i"])) == ["s", "i"]
    with pytest.raises(InvalidInput, match="nope"):
        reader.read_columns(stored(tmp_path), ["nope"])
    with pytest.raises(NotFound):
        reader.read_columns(tmp_path / "data" / "ds_gone.parquet")


def test_read_rows_reads_only_the_needed_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "many.parquet"
    pq.write_table(pa.table({"i": np.arange(10_000)}), path, row_group_size=1000)
    names, rows = reader.read_rows(path, offset=2995, limit=10)
    assert names == ["i"] and [row[0] for row in rows] == list(range(2995, 3005))
    assert reader.read_rows(path, offset=10_000, limit=5) == (["i"], [])


def test_row_limit_stops_the_stream(tmp_path: Path) -> None:
    limits = storage.IngestLimits(max_rows=1000, max_columns=10, parse_threads=4)
    content = ("a\n" + "1\n" * 5000).encode()
    with pytest.raises(PayloadTooLarge):
        ingest(tmp_path, content, "csv", limits=limits, block_size=1024)
    assert leftovers(tmp_path) == []


def test_parquet_unsigned_and_decimal_columns(tmp_path: Path) -> None:
    from decimal import Decimal

    table = pa.table(
        {
            "u": pa.array([1, 2], pa.uint16()),
            "d": pa.array([Decimal("1.25"), Decimal("2.50")], pa.decimal128(5, 2)),
            "bin": pa.array([b"ab", b"cd"]),
        }
    )
    source = tmp_path / "t.parquet"
    pq.write_table(table, source)
    result = storage.ingest_file(
        source, "parquet", data_dir=tmp_path / "data", dataset_id="ds_test", limits=LIMITS
    )
    assert [c["dtype"] for c in result.columns] == ["int64", "float64", "string"]
    assert result.columns[1]["mean"] == pytest.approx(1.875)


def test_detect_format() -> None:
    assert storage.detect_format("text/csv; charset=utf-8", "x.bin") == "csv"
    assert storage.detect_format("application/octet-stream", "X.PARQUET") == "parquet"
    assert storage.detect_format(None, "d.ndjson") == "jsonl"
    assert storage.detect_format("application/jsonl", None) == "jsonl"


def test_sha256_and_size_are_of_the_stored_file(tmp_path: Path) -> None:
    import hashlib

    rows = "".join(f"{i},{i * 0.5},w{i % 7}\n" for i in range(50_000))
    result = ingest(tmp_path, ("a,b,c\n" + rows).encode(), "csv", block_size=1 << 16)
    content = stored(tmp_path).read_bytes()
    assert result.sha256 == hashlib.sha256(content).hexdigest()
    assert result.size_bytes == len(content)
    assert pq.read_table(stored(tmp_path)).num_rows == 50_000


def test_nan_and_inf_in_later_blocks(tmp_path: Path) -> None:
    # "-nan" is not one of the null spellings: it parses as a float NaN (stored as null)
    values = [float(i) for i in range(60_000)]
    text = "x\n" + "".join(f"{v!r}\n" for v in values)
    nan_at, inf_at = 45_000, 50_123
    lines = text.splitlines(keepends=True)
    lines[1 + nan_at] = "-nan\n"
    result = ingest(tmp_path, "".join(lines).encode(), "csv", block_size=1 << 16)
    clean = np.array(values)
    clean[nan_at] = np.nan
    (column,) = result.columns
    assert column["n_missing"] == 1
    assert column["mean"] == pytest.approx(np.nanmean(clean), rel=1e-12)
    assert column["std"] == pytest.approx(np.nanstd(clean, ddof=1), rel=1e-12)
    assert np.isnan(reader.read_columns(stored(tmp_path))["x"][nan_at])
    stored(tmp_path).unlink()
    lines[1 + inf_at] = "inf\n"
    with pytest.raises(InvalidInput) as caught:
        ingest(tmp_path, "".join(lines).encode(), "csv", block_size=1 << 16)
    assert f"row {inf_at}" in caught.value.detail
    assert f"/rows/{inf_at}/x" in str(caught.value.errors)
    assert leftovers(tmp_path) == []
