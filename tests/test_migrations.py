"""Migrations: upgrade head → downgrade base → upgrade head, and no drift (``alembic check``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from service import migrate
from service.db import create_db_engine


def _roundtrip(url: str) -> None:
    config = migrate.alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    engine = create_db_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    command.upgrade(config, "head")
    command.check(config)  # raises if the tables and the migrations disagree
    engine = create_db_engine(url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision(url)
        assert {"datasets", "jobs", "models"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_sqlite_roundtrip_and_check(tmp_path: Path) -> None:
    _roundtrip(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_roundtrip_and_check(pg_url: str) -> None:
    _roundtrip(pg_url)


def test_migration_files_are_dated_and_reversible() -> None:
    versions = sorted((migrate.PROJECT_ROOT / "migrations" / "versions").glob("*.py"))
    assert versions
    for path in versions:
        name = path.name
        assert name[:4].isdigit() and name[4] == "_", name
        source = path.read_text()
        assert "def downgrade() -> None:" in source
        assert "\n    pass\n" not in source.split("def downgrade() -> None:")[1], name
