"""A full data disk: 507 problem+json, nothing half-written, the service keeps answering.

The data directory is a real 1 MiB tmpfs (``mount -t tmpfs``), so the writes fail with the
kernel's own ENOSPC. Mounting needs root (or CAP_SYS_ADMIN); without it these tests skip,
saying so.
"""

from __future__ import annotations

import io
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app

PROBLEM = "application/problem+json"
DISK_BYTES = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def full_client(settings: Settings, small_disk: Path) -> Iterator[TestClient]:
    on_small_disk = settings.model_copy(update={"data_dir": small_disk})
    with TestClient(create_app(on_small_disk), raise_server_exceptions=False) as client:
        yield client


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def csv_bytes(n_rows: int, seed: int = 0) -> bytes:
    values = np.random.default_rng(seed).normal(size=(n_rows, 4))
    lines = ["a,b,c,d", *(",".join(repr(float(v)) for v in row) for row in values)]
    return ("\n".join(lines) + "\n").encode()


def assert_disk_full(response: Any, *needles: str) -> None:
    assert response.status_code == 507, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 507 and body["title"] == "Insufficient storage"
    assert "no space left" in body["detail"] and body["request_id"]
    for needle in needles:
        assert needle in body["detail"]


def assert_recovers(client: TestClient, disk: Path) -> None:
    """Nothing was kept, and the service still answers and stores what fits."""
    assert files_under(disk) == []
    assert client.get("/v1/datasets").json()["total"] == 0
    assert client.get("/healthz").status_code == 200
    small = client.post(
        "/v1/datasets", files={"file": ("small.csv", b"a,b\n1,2\n3,4\n", "text/csv")}
    )
    assert small.status_code == 201, small.text


def test_multipart_upload_larger_than_the_disk(full_client: TestClient, small_disk: Path) -> None:
    body = csv_bytes(60_000)  # ~4 MB
    assert len(body) > 2 * DISK_BYTES
    response = full_client.post("/v1/datasets", files={"file": ("big.csv", body, "text/csv")})
    assert_disk_full(response)
    assert_recovers(full_client, small_disk)


def test_raw_csv_body_larger_than_the_disk(full_client: TestClient, small_disk: Path) -> None:
    response = full_client.post(
        "/v1/datasets?name=big", content=csv_bytes(60_000), headers={"content-type": "text/csv"}
    )
    assert_disk_full(response)
    assert_recovers(full_client, small_disk)


def test_upload_that_fits_but_its_parquet_does_not(
    full_client: TestClient, small_disk: Path
) -> None:
    body = csv_bytes(11_500)  # ~0.85 MB of text: stored whole, then converted next to it
    assert DISK_BYTES * 0.7 < len(body) < DISK_BYTES
    response = full_client.post("/v1/datasets", files={"file": ("a.csv", body, "text/csv")})
    assert_disk_full(response)
    assert_recovers(full_client, small_disk)


def test_parquet_upload_on_a_full_disk_says_so(full_client: TestClient, small_disk: Path) -> None:
    rng = np.random.default_rng(1)
    table = pa.table({f"c{j}": rng.normal(size=20_000) for j in range(4)})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="none")
    body = sink.getvalue()  # ~640 KB: the upload fits, its converted copy does not
    assert DISK_BYTES * 0.5 < len(body) < DISK_BYTES
    response = full_client.post(
        "/v1/datasets", files={"file": ("a.parquet", body, "application/vnd.apache.parquet")}
    )
    assert_disk_full(response, "Parquet")
    assert "corrupt" not in response.text
    assert_recovers(full_client, small_disk)


def test_synthetic_dataset_larger_than_the_disk(full_client: TestClient, small_disk: Path) -> None:
    response = full_client.post(
        "/v1/datasets/synthetic", json={"n_samples": 20_000, "n_features": 20, "random_state": 0}
    )
    assert_disk_full(response)
    assert_recovers(full_client, small_disk)
