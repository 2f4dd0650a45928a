"""A worker keeps the last dataset it read for the next job on the same file, and the memory
of the arrays it freed for the next job's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.worker import runner


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    runner._last_dataset = None
    yield
    runner._last_dataset = None


def _parquet(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "x": rng.standard_normal(50),
            "n": pa.array([1.0, None] * 25),
            "label": pa.array(["a", "b", None, "c", "d"] * 10),
        }
    )
    pq.write_table(table, path)
    return path


def test_the_same_dataset_is_read_once_and_is_read_only(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "ds_a.parquet", seed=1)
    first = runner._dataset_columns(path, "sha-a", max_bytes=1 << 20)
    again = runner._dataset_columns(path, "sha-a", max_bytes=1 << 20)
    assert again is first
    for name, values in first.items():
        assert not values.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            values[0] = values[1]


def test_another_dataset_replaces_the_cached_one(tmp_path: Path) -> None:
    a = _parquet(tmp_path / "ds_a.parquet", seed=1)
    b = _parquet(tmp_path / "ds_b.parquet", seed=2)
    first = runner._dataset_columns(a, "sha-a", max_bytes=1 << 20)
    other = runner._dataset_columns(b, "sha-b", max_bytes=1 << 20)
    assert not np.array_equal(first["x"], other["x"])
    assert runner._last_dataset is not None and runner._last_dataset[0] == (str(b), "sha-b")
    # A different digest for the same path (never happens for stored files) reads again.
    assert runner._dataset_columns(b, "sha-c", max_bytes=1 << 20) is not other


def test_a_dataset_larger_than_the_limit_is_not_kept(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "ds_a.parquet", seed=1)
    first = runner._dataset_columns(path, "sha-a", max_bytes=0)
    assert runner._last_dataset is None
    again = runner._dataset_columns(path, "sha-a", max_bytes=0)
    assert again is not first
    np.testing.assert_array_equal(again["x"], first["x"])


def _page_faults_of_large_arrays(keep_bytes: int) -> int:
    script = f"""
import resource, numpy as np
from service.worker import runner
runner.reuse_freed_memory({keep_bytes})
np.ones(8 * 1024**2)  # 64 MiB, once, so that both runs start alike
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    np.ones(8 * 1024**2)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return int(out)


@pytest.mark.skipif(sys.platform != "linux", reason="mallopt is glibc's")
def test_a_worker_reuses_the_memory_of_freed_arrays() -> None:
    # glibc returns a freed 64 MiB array to the system, so the next one faults its pages in
    # again (thousands of faults for five, even with numpy's huge-page advice); a worker
    # keeps the memory for the next job's arrays instead.
    assert _page_faults_of_large_arrays(0) > 1_000
    assert _page_faults_of_large_arrays(256 * 1024**2) < 100
