"""Partial files left by a killed upload are swept at start-up, but only old ones."""

from __future__ import annotations

import os
import time
from pathlib import Path

from service.datasets import storage


def test_sweep_removes_only_old_partial_files(tmp_path: Path) -> None:
    tmp = storage.tmp_dir(tmp_path)
    old, fresh = tmp / "old.parquet.partial", tmp / "fresh.parquet.partial"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert storage.sweep_partial_files(tmp_path) == 1
    assert not old.exists() and fresh.exists()
