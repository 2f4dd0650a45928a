"""Partial upload files: swept at start-up (only old ones), never left by raw-body uploads."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from service.config import Settings
from service.datasets import files


def test_sweep_removes_only_old_partial_files(tmp_path: Path) -> None:
    tmp = files.tmp_dir(tmp_path)
    old, fresh = tmp / "old.parquet.partial", tmp / "fresh.parquet.partial"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert files.sweep_partial_files(tmp_path) == 1
    assert not old.exists() and fresh.exists()


def test_raw_file_bodies_upload(client: TestClient, settings: Settings) -> None:
    """`curl --data-binary @x.csv -H 'content-type: text/csv'` works like a multipart file."""
    csv_body = b"a,b,y\n1,2.5,3\n4,5.5,6\n7,,9\n"
    created = client.post(
        "/v1/datasets",
        params={"name": "raw"},
        content=csv_body,
        headers={"content-type": "text/csv"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "raw" and body["n_rows"] == 3 and body["source_format"] == "csv"
    assert [c["n_missing"] for c in body["columns"]] == [0, 1, 0]

    jsonl = b'{"a": 1, "y": 2}\n{"a": 3, "y": 4}\n'
    lines = client.post(
        "/v1/datasets", content=jsonl, headers={"content-type": "application/x-ndjson"}
    )
    assert lines.status_code == 201 and lines.json()["n_rows"] == 2

    ragged = client.post(
        "/v1/datasets", content=b"a,b\n1,2\n3\n", headers={"content-type": "text/csv"}
    )
    assert ragged.status_code == 422
    assert client.get("/v1/datasets").json()["total"] == 2
    assert [p.name for p in files.tmp_dir(settings.data_dir).iterdir()] == []


def test_partial_files_are_swept_while_the_service_runs(settings: Settings) -> None:
    """Not only at start-up: a crashed upload's leftovers go within one sweep interval."""
    from service.main import create_app

    quick = settings.model_copy(
        update={"partial_sweep_interval_seconds": 0.05, "partial_file_max_age_seconds": 5.0}
    )
    with TestClient(create_app(quick, start_executor=False)):
        tmp = files.tmp_dir(settings.data_dir)
        old, fresh = tmp / "upload-old.part", tmp / "upload-fresh.part"
        old.write_bytes(b"x" * 1000)
        fresh.write_bytes(b"y")
        ten_seconds_ago = time.time() - 10
        os.utime(old, (ten_seconds_ago, ten_seconds_ago))
        deadline = time.monotonic() + 5
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not old.exists()
        assert fresh.exists()


def test_a_failed_multipart_upload_leaves_no_file(client: TestClient, settings: Settings) -> None:
    """The temp file goes at once whether the body is refused while read or when parsed."""
    ragged = client.post(
        "/v1/datasets", files={"file": ("x.csv", b"a,b\n1,2\n3\n" * 1000, "text/csv")}
    )
    assert ragged.status_code == 422
    assert list(files.tmp_dir(settings.data_dir).iterdir()) == []
    garbage = client.post(
        "/v1/datasets",
        files={"file": ("x.parquet", b"PAR1" + b"\0" * 5000, "application/x-parquet")},
    )
    assert garbage.status_code == 422
    assert list(files.tmp_dir(settings.data_dir).iterdir()) == []
