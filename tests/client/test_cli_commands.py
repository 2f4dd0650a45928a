"""The ``regfit`` command line against a real ``regfit serve``: the README's session, run as
a person would (the console script in a subprocess), checked against scikit-learn."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import regfit
from sklearn.linear_model import Lasso
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from test_e2e import Server

pytestmark = pytest.mark.e2e

REGFIT = str(Path(sys.executable).parent / "regfit")


def regfit_cli(
    live_server: Server, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGFIT_URL": live_server.url, "COLUMNS": "120"}
    env.pop("REGFIT_API_KEY", None)
    return subprocess.run(
        [REGFIT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result).stdout)


def reference_fit(diabetes_csv_path: Path, alpha: float) -> tuple[Pipeline, pd.DataFrame]:
    frame = pd.read_csv(diabetes_csv_path)
    X, y = frame.drop(columns="target"), frame["target"]
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("est", Lasso(alpha=alpha))])
    return pipeline.fit(X_train, y_train), X


def test_first_session_without_copying_an_id(
    live_server: Server, diabetes_csv_path: Path, tmp_path: Path
) -> None:
    uploaded = as_json(
        regfit_cli(
            live_server, "datasets", "upload", str(diabetes_csv_path), "-n", "diabetes", "--json"
        )
    )
    assert uploaded["n_rows"] == 442

    trained = ok(
        regfit_cli(
            live_server,
            *("train", "diabetes", "--target", "target", "--alpha", "1e-3:10:10:log"),
            *("--folds", "5", "--select", "1se", "--wait"),
        )
    )
    assert "100%" in trained.stderr  # the progress bar reached the end
    assert "metrics" in trained.stdout and "n_nonzero:" in trained.stdout
    assert "top 10 coefficients" in trained.stdout

    model = as_json(regfit_cli(live_server, "models", "show", "latest", "--json"))
    assert model["dataset_id"] == uploaded["id"] and model["tuning"]["select"] == "1se"
    alpha = model["penalty"]["alpha"]
    assert alpha == pytest.approx(model["tuning"]["best_params"]["alpha"])
    assert model["id"] in trained.stdout
    reference, X = reference_fit(diabetes_csv_path, alpha)
    scaled = [model["coefficients"]["scaled"][name] for name in X.columns]
    np.testing.assert_allclose(scaled, reference[-1].coef_, rtol=1e-6, atol=1e-9)

    out = tmp_path / "predictions.csv"
    ok(regfit_cli(live_server, "predict", "latest", str(diabetes_csv_path), "-o", str(out)))
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 442 and list(rows[0])[-1] == "prediction"
    np.testing.assert_allclose(
        [float(r["prediction"]) for r in rows], reference.predict(X), rtol=1e-9
    )

    exported = tmp_path / "model.json"
    ok(regfit_cli(live_server, "models", "export", "latest", "-o", str(exported)))
    document = json.loads(exported.read_text())
    np.testing.assert_allclose(document["coef"], reference[-1].coef_, rtol=1e-6, atol=1e-9)

    shown = ok(regfit_cli(live_server, "datasets", "show", "diabetes")).stdout
    assert uploaded["id"] in shown and "bmi" in shown
    listed = ok(regfit_cli(live_server, "models", "list")).stdout
    assert model["id"] in listed
    path = as_json(regfit_cli(live_server, "models", "path", "latest", "--json"))
    assert len(path["alphas"]) == 10 and alpha in path["alphas"]


def test_penalty_comparison_and_random_search(live_server: Server, diabetes_csv_path: Path) -> None:
    ok(regfit_cli(live_server, "datasets", "upload", str(diabetes_csv_path), "--name", "cmp"))
    compared = as_json(
        regfit_cli(
            live_server,
            *("train", "cmp", "-t", "target", "--compare", "l1,l2,elasticnet"),
            *("--alpha", "0.01,0.1,1", "--l1-ratio", "0.5", "--wait", "--json"),
        )
    )
    assert compared["job"]["status"] == "succeeded"
    assert set(compared["model"]["tuning"]["comparison"]) == {"l1", "l2", "elasticnet"}
    assert compared["job"]["spec"]["tuning"]["space"]["penalty"] == ["l1", "l2", "elasticnet"]

    submitted = as_json(
        regfit_cli(
            live_server,
            *("train", "cmp", "-t", "target", "-p", "elasticnet", "--search", "random"),
            *("--alpha", "1e-3:10:log", "--l1-ratio", "0:1", "--trials", "6"),
            *("--select", "1se", "--seed", "3", "--json"),
        )
    )
    space = submitted["spec"]["tuning"]["space"]
    assert space["alpha"] == {"low": 0.001, "high": 10.0, "log": True}
    assert space["l1_ratio"] == {"low": 0.0, "high": 1.0, "log": False}
    waited = as_json(regfit_cli(live_server, "jobs", "wait", submitted["id"], "--json"))
    assert waited["job"]["id"] == submitted["id"] and waited["job"]["status"] == "succeeded"
    assert waited["model"]["tuning"]["strategy"] == "random"
    assert waited["model"]["tuning"]["n_candidates"] == 6
    jobs = as_json(regfit_cli(live_server, "jobs", "list", "--json"))
    assert submitted["id"] in [j["id"] for j in jobs]
    shown = ok(regfit_cli(live_server, "jobs", "show", submitted["id"])).stdout
    assert "succeeded" in shown


def test_exit_codes(live_server: Server, tmp_path: Path) -> None:
    version = ok(regfit_cli(live_server, "--version"))
    assert version.stdout.strip() == f"regfit {regfit.__version__}"

    unknown = regfit_cli(live_server, "train", "no-such-dataset", "--target", "y")
    assert unknown.returncode == 1 and "no dataset named 'no-such-dataset'" in unknown.stderr

    usage = regfit_cli(live_server, "train", "latest")
    assert usage.returncode == 2 and "--target" in usage.stderr

    gappy = tmp_path / "gappy.csv"
    gappy.write_text("x,y\n1,1\n2,\n3,3\n4,4\n5,5\n")
    ok(regfit_cli(live_server, "datasets", "upload", str(gappy), "--name", "gappy"))
    failed = regfit_cli(live_server, "train", "gappy", "-t", "y", "--alpha", "1", "--wait")
    assert failed.returncode == 3, (failed.stdout, failed.stderr)
    assert "failed" in failed.stderr

    invalid = regfit_cli(live_server, "train", "gappy", "-t", "y", "--alpha", "-1", "--json")
    assert invalid.returncode == 1
    problem = json.loads(invalid.stderr)
    assert problem["status"] == 422 and problem["errors"][0]["loc"] == "/penalty/alpha"

    bad_form = regfit_cli(live_server, "train", "gappy", "-t", "y", "--alpha", "1:2:3:4:5")
    assert bad_form.returncode == 2 and "--alpha" in bad_form.stderr

    unreachable = regfit_cli(live_server, "--url", "http://127.0.0.1:9", "datasets", "list")
    assert unreachable.returncode == 4 and "unreachable" in unreachable.stderr

    removed = as_json(regfit_cli(live_server, "datasets", "rm", "gappy", "--json"))
    assert removed["deleted"].startswith("ds_")
    assert regfit_cli(live_server, "datasets", "show", removed["deleted"]).returncode == 1


def test_cancel_then_wait_exits_3(live_server: Server, diabetes_csv_path: Path) -> None:
    ok(regfit_cli(live_server, "datasets", "upload", str(diabetes_csv_path), "--name", "long"))
    submitted = as_json(
        regfit_cli(
            live_server,
            *("train", "long", "-t", "target", "--compare", "l1,l2,elasticnet"),
            *("--alpha", "1e-4:10:400:log", "--l1-ratio", "0.1,0.5,0.9", "--folds", "10"),
            "--json",
        )
    )
    cancelled = as_json(regfit_cli(live_server, "jobs", "cancel", submitted["id"], "--json"))
    assert cancelled["id"] == submitted["id"] and cancelled["status"] == "cancelled"
    waited = regfit_cli(live_server, "jobs", "wait", submitted["id"])
    assert waited.returncode == 3 and "cancelled" in waited.stderr
