"""A real ``regfit serve`` shared by the client and CLI tests of a module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_e2e import Server, diabetes_csv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("server"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed's diabetes data as a CSV (features, then ``target``)."""
    path = tmp_path_factory.mktemp("data") / "diabetes.csv"
    diabetes_csv(path)
    return path
