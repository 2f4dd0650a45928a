"""Dataset files: where they live, the partial files of uploads under way and their sweep."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.config import Settings
    from service.tables import Dataset


def dataset_filename(dataset_id: str) -> str:
    return f"{dataset_id}.parquet"


def dataset_path(settings: Settings, dataset: Dataset) -> Path:
    """The stored Parquet file of ``dataset`` (a row of the ``datasets`` table)."""
    return settings.data_dir / dataset.filename


def tmp_dir(data_dir: Path) -> Path:
    """The directory for partial files: inside ``data_dir`` so that renames are atomic."""
    path = data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sweep_partial_files(data_dir: Path, *, older_than_seconds: float = 3600.0) -> int:
    """Delete partial files a killed process left in ``tmp/``; returns how many.

    Only old ones: another API process sharing the data directory may be mid-upload.
    """
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in tmp_dir(data_dir).iterdir():
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def remove_file(path: Path | None) -> None:
    """Delete ``path`` if it exists."""
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
