"""Alembic environment: the URL comes from regfit's Settings unless the caller passes one."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service import tables  # noqa: F401  (registers every table on Base.metadata)
from service.config import get_settings
from service.db import Base, create_db_engine, is_sqlite

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=is_sqlite(str(connection.engine.url)),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `regfit migrate`")
run_migrations_online()
