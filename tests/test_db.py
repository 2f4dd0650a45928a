"""SQLite in WAL mode: several processes writing at once never see "database is locked"."""

from __future__ import annotations

import multiprocessing

from sqlalchemy import func, select, text

from service.db import Database, utcnow
from service.tables import Dataset

WRITERS = 4
WRITES_EACH = 40


def _dataset_row(dataset_id: str) -> Dataset:
    return Dataset(
        id=dataset_id,
        name="w",
        filename="f",
        source_format="csv",
        n_rows=1,
        n_columns=1,
        columns=[],
        sha256="0" * 64,
        size_bytes=1,
        created_at=utcnow(),
    )


def _writer(url: str, worker: int) -> None:
    db = Database(url)
    try:
        for i in range(WRITES_EACH):
            # A read first, then a write: the pattern that fails with a deferred BEGIN.
            with db.session() as session:
                session.scalar(select(func.count()).select_from(Dataset))
                session.add(_dataset_row(f"ds_{worker}_{i}"))
    finally:
        db.dispose()


def test_wal_and_busy_timeout_are_set(db: Database) -> None:
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert int(conn.execute(text("PRAGMA busy_timeout")).scalar() or 0) >= 5000


def test_concurrent_writer_processes(db: Database, settings: object) -> None:
    url = db.url
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    with db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == WRITERS * WRITES_EACH


def test_session_rolls_back_on_error(db: Database) -> None:
    try:
        with db.session() as session:
            session.add(_dataset_row("ds_x"))
            session.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with db.session(readonly=True) as session:
        assert session.get(Dataset, "ds_x") is None
