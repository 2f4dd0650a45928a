"""One place for each effect: who commits, what a request's state is, how problems are built."""

from __future__ import annotations

import ast
from pathlib import Path

from fastapi.testclient import TestClient

from service import errors
from service.state import STATE_KEY, State

SERVICE = Path(__file__).resolve().parents[1] / "service"


def _commit_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
    ]


def test_routes_and_services_never_commit() -> None:
    """The session dependency (``service.db.Database.session``) is the only committer."""
    modules = [
        *SERVICE.glob("*/routes.py"),
        *SERVICE.glob("*/service.py"),
        *(SERVICE / "http").glob("*.py"),
    ]
    assert len(modules) >= 7
    found = {str(p.relative_to(SERVICE)): _commit_calls(p) for p in modules}
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_lifespan_yields_a_typed_state(client: TestClient) -> None:
    state = client.app_state[STATE_KEY]
    assert isinstance(state, State)
    assert state.executor.is_running() and state.settings.model_cache_size >= 1
    for name in ("db", "executor", "settings", "model_cache"):
        assert not hasattr(client.app.state, name), name  # type: ignore[attr-defined]


def test_a_problem_is_built_once_from_its_error() -> None:
    err = errors.RegfitError("lost", status=500, title="Worker lost", slug="worker-lost", n=2)
    assert err.problem() == {
        "type": errors.PROBLEM_TYPE_BASE + "worker-lost",
        "title": "Worker lost",
        "status": 500,
        "detail": "lost",
        "n": 2,
    }
    assert errors.RegfitError.title == "Bad request"  # the class default is untouched
    errors.Problem.model_validate(err.problem())
