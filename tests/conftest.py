"""Shared fixtures: a fresh, migrated database and data directory per test.

The database is a SQLite file unless a module asks for more backends with
``pytestmark = pytest.mark.backends("sqlite", "postgres")``: its tests then run once per
backend (ids ``[sqlite]``, ``[postgres]``), PostgreSQL getting a fresh database cloned from a
template built once by the real migrations.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from contract import ContractChecker
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service import migrate
from service.config import Settings
from service.db import Database

# Starlette's TestClient sends ``Host: testserver``; the request guard (service/http/guard.py)
# serves only allowed hosts. Tests of the guard itself pass their own allow-list.
os.environ.setdefault("REGFIT_ALLOWED_HOSTS", "testserver")


def services_required() -> bool:
    return os.environ.get("REGFIT_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file built by the real migrations; each test gets a copy of it."""
    path = tmp_path_factory.mktemp("template") / "regfit.db"
    migrate.upgrade_to_head(f"sqlite:///{path}")
    return path


BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends(*names): run the module's tests on each database backend named"
    )
    config.addinivalue_line("markers", "rabbitmq: needs the RabbitMQ server")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is None or "backend" not in metafunc.fixturenames:
        return
    unknown = set(marker.args) - set(BACKENDS)
    assert not unknown, f"unknown backends {unknown}; known: {BACKENDS}"
    params = [
        pytest.param(name, marks=[pytest.mark.postgres] if name == "postgres" else [])
        for name in marker.args
    ]
    metafunc.parametrize("backend", params, indirect=True, ids=list(marker.args))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test: "sqlite" unless the module's marker says more."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if backend == "postgres":
        database_url = request.getfixturevalue("pg_migrated_url")
    else:
        db_path = tmp_path / "regfit.db"
        shutil.copyfile(request.getfixturevalue("migrated_template"), db_path)
        database_url = f"sqlite:///{db_path}"
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        workers=2,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """httpx on the ASGI app, lifespan included (embedded job workers start).

    Every response is checked against the app's OpenAPI document (``tests/contract.py``):
    an undeclared status, content type or body shape fails the test that received it.
    """
    from service.main import create_app

    app = create_app(settings)
    checker = ContractChecker(app.openapi())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.event_hooks["response"].append(checker.check)
        yield test_client


PG_ADMIN_URL = os.environ.get(
    "REGFIT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def unavailable(reason: str) -> None:
    """Skip a test whose service is unreachable, or fail when CI requires the services."""
    if services_required():
        pytest.fail(f"{reason} (REGFIT_REQUIRE_SERVICES=1, so this is a failure)")
    pytest.skip(reason)


@contextmanager
def _pg_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or a copy of ``template``), dropped afterwards."""
    name = "regfit_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    clone = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{clone}'))
    except Exception as exc:
        admin.dispose()
        unavailable(f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {type(exc).__name__}: {exc}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with _pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database built once by the real migrations, cloned for each test."""
    with _pg_database() as url:
        migrate.upgrade_to_head(url)  # disposes its engine: a template must have no sessions
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def pg_migrated_url(pg_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database at the migrations' head, dropped afterwards."""
    with _pg_database(template=pg_template) as url:
        yield url


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real ``regfit serve`` (tests/test_e2e.py's ``Server``) shared by a module's tests."""
    from test_e2e import Server

    srv = Server(tmp_path_factory.mktemp("server"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def diabetes_csv_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed's diabetes data as a CSV file (its features, then ``target``)."""
    from test_e2e import diabetes_csv

    path = tmp_path_factory.mktemp("data") / "diabetes.csv"
    diabetes_csv(path)
    return path


# The browser tests drive Debian's Chromium (Playwright's own browser downloads are not used).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless (``playwright install`` browsers are not used)."""
    if not os.path.exists(CHROMIUM):
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (the dev extra has it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
