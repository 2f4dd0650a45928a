"""Engine, sessions and the declarative ``Base`` with a constraint naming convention.

SQLite runs in WAL mode with a busy timeout. In WAL mode a deferred transaction that
turns into a write fails at once with "database is locked" (the busy handler is not
consulted for the lock upgrade), so every writing transaction starts with
``BEGIN IMMEDIATE``; read-only sessions opt into ``BEGIN DEFERRED``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _dump_json_column(value: Any) -> str:
    # A model's summary is ~150 kB of JSON at 300 features; orjson writes it ~10× faster than
    # the json module. It writes a non-finite float as null, as the API's responses
    # (service.http.responses.dump_json) show one anyway.
    return orjson.dumps(value, option=_JSON_OPTIONS).decode()


def create_db_engine(url: str) -> Engine:
    """Create the engine for ``url``; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE.

    JSON columns are written and read with orjson.
    """
    url = normalize_url(url)
    json_codec = {"json_serializer": _dump_json_column, "json_deserializer": orjson.loads}
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, **json_codec)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        **json_codec,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = "DEFERRED" if conn.get_execution_options().get("regfit_readonly") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


_AFTER_COMMIT = "regfit.after_commit"
_AFTER_ROLLBACK = "regfit.after_rollback"


def after_commit(session: Session, effect: Callable[[], None]) -> None:
    """Run ``effect`` once the session's transaction has committed (a job's dispatch, a
    file's removal): services flush and leave the commit to the session's owner."""
    session.info.setdefault(_AFTER_COMMIT, []).append(effect)


def after_rollback(session: Session, effect: Callable[[], None]) -> None:
    """Run ``effect`` if the session's transaction rolls back (undo a file put in place)."""
    session.info.setdefault(_AFTER_ROLLBACK, []).append(effect)


def _run_effects(session: Session, key: str) -> None:
    effects: list[Callable[[], None]] = session.info.pop(key, [])
    session.info.pop(_AFTER_COMMIT, None)
    session.info.pop(_AFTER_ROLLBACK, None)
    for effect in effects:
        effect()


class Database:
    """An engine with its two session factories (writing and read-only)."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = create_db_engine(self.url)
        self.write_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(
            self.engine.execution_options(regfit_readonly=True), expire_on_commit=False
        )

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A session that commits on success and rolls back on error: the one place a
        transaction ends. Effects registered with :func:`after_commit` /
        :func:`after_rollback` run once it has."""
        factory = self.read_sessions if readonly else self.write_sessions
        with factory() as session:
            try:
                yield session
                if readonly:
                    session.rollback()
                else:
                    session.commit()
            except BaseException:
                session.rollback()
                _run_effects(session, _AFTER_ROLLBACK)
                raise
            _run_effects(session, _AFTER_COMMIT)

    def dispose(self) -> None:
        self.engine.dispose()
