"""The client's wheel installed alone into a fresh venv works without the server's
dependencies (fastapi, sqlalchemy, scikit-learn), against a real ``regfit serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import regfit
from test_e2e import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIENT_PROJECT = Path(__file__).resolve().parents[2] / "clients" / "python"
CLIENT_DEPENDENCIES = ["httpx", "pydantic", "typer", "rich"]

SESSION = """
import importlib.util, json, sys
from regfit import Client, RegfitError
absent = [m for m in ("fastapi", "sqlalchemy", "sklearn", "service", "numpy", "pandas")
          if importlib.util.find_spec(m) is not None]
assert not absent, absent
client = Client(sys.argv[1])
dataset = client.upload(sys.argv[2], name="wheel")
model = client.train(dataset, target="y", penalty="l2", alpha=1.0).wait().model()
try:
    client.train(dataset, target="missing")
except RegfitError as exc:
    status = exc.status
print(json.dumps({"model": model.id, "coefficients": model.coefficients,
                  "predictions": model.predict([[1.0], [2.0]]), "status": status}))
"""


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    # Run outside the repository: `python -c` puts the working directory on sys.path.
    kwargs.setdefault("cwd", Path(os.sep))
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
    return result


def test_the_wheel_alone_imports_and_runs(live_server: Server, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        str(wheels),
        str(CLIENT_PROJECT),
    )
    (wheel,) = wheels.glob("regfit_client-*.whl")
    assert wheel.name.startswith(f"regfit_client-{regfit.__version__}-")

    venv = tmp_path / "fresh"
    run(sys.executable, "-m", "venv", str(venv))
    python, script = venv / "bin" / "python", venv / "bin" / "regfit"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run(str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel), env=env)
    run(str(python), "-m", "pip", "install", "-q", *CLIENT_DEPENDENCIES, env=env)

    assert run(str(script), "--version", env=env).stdout.strip() == f"regfit {regfit.__version__}"
    shown = run(str(script), "--help", env={**env, "COLUMNS": "120"}).stdout
    assert "train" in shown and "datasets" in shown and "migrate" not in shown

    data = tmp_path / "line.csv"
    data.write_text("x,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(20)))
    result = json.loads(run(str(python), "-c", SESSION, live_server.url, str(data), env=env).stdout)
    assert result["status"] == 422
    assert [row["feature"] for row in result["coefficients"]] == ["x"]  # rows without pandas
    assert len(result["predictions"]) == 2 and result["predictions"][1] > result["predictions"][0]
    listed = run(str(script), "--url", live_server.url, "models", "list", "--json", env=env).stdout
    assert result["model"] in [m["id"] for m in json.loads(listed)]
