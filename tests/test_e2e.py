"""End to end: a real `regfit serve` process, restarted on the same files."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`regfit serve` in a subprocess on a free port."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "REGFIT_DATABASE_URL": f"sqlite:///{workdir / 'regfit.db'}",
            "REGFIT_DATA_DIR": str(workdir / "data"),
            "REGFIT_WORKERS": "1",
            "REGFIT_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve", "--port", str(self.port)],
                cwd=self.workdir,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_path.read_text()[-3000:]
                raise AssertionError(f"server exited with {self.process.returncode}:\n{log}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not become ready in 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in ("succeeded", "failed", "cancelled"):
            job["seen_states"] = seen
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {seen[-1]} after {timeout} s")


def diabetes_csv(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    data = load_diabetes()
    names = list(data.feature_names)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*names, "target"])
        for row, target in zip(data.data, data.target, strict=True):
            writer.writerow([repr(float(v)) for v in row] + [repr(float(target))])
    return data.data, data.target, names


def test_upload_fit_predict_restart(server: Server, tmp_path: Path) -> None:
    X, y, names = diabetes_csv(tmp_path / "diabetes.csv")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    reference = make_pipeline(StandardScaler(), Lasso(alpha=0.1)).fit(X_train, y_train)

    with httpx.Client(base_url=server.url, timeout=30) as client:
        with (tmp_path / "diabetes.csv").open("rb") as fh:
            upload = client.post("/v1/datasets", files={"file": ("diabetes.csv", fh, "text/csv")})
        assert upload.status_code == 201, upload.text
        dataset = upload.json()
        assert dataset["n_rows"] == 442 and dataset["n_columns"] == 11

        submitted = client.post(
            "/v1/jobs",
            json={
                "dataset_id": dataset["id"],
                "target": "target",
                "penalty": {"type": "l1", "alpha": 0.1},
            },
        )
        assert submitted.status_code == 202, submitted.text
        assert submitted.headers["location"] == f"/v1/jobs/{submitted.json()['id']}"
        job = wait_for_job(client, submitted.json()["id"])
        assert job["status"] == "succeeded", job
        assert job["progress"]["done"] == job["progress"]["total"]

        model = client.get(f"/v1/models/{job['model_id']}").json()
        assert model["features"] == names
        assert model["metrics"]["test"]["r2"] == pytest.approx(
            reference.score(X_test, y_test), rel=1e-6
        )
        assert model["n_nonzero"] == int(np.count_nonzero(reference[-1].coef_))
        scaled = np.array([model["coefficients"]["scaled"][n] for n in names])
        np.testing.assert_allclose(scaled, reference[-1].coef_, rtol=1e-6, atol=1e-9)

        rows = X_test[:25].tolist()
        predicted = client.post(f"/v1/models/{model['id']}/predict", json={"rows": rows})
        assert predicted.status_code == 200, predicted.text
        first = predicted.json()["predictions"]
        np.testing.assert_allclose(first, reference.predict(X_test[:25]), rtol=1e-9)

    server.stop()
    server.start()  # same database file, same data directory

    with httpx.Client(base_url=server.url, timeout=30) as client:
        again = client.get(f"/v1/models/{model['id']}").json()
        assert again["metrics"] == model["metrics"]
        assert again["coefficients"] == model["coefficients"]
        predicted = client.post(f"/v1/models/{model['id']}/predict", json={"rows": rows})
        assert predicted.json()["predictions"] == first
        assert client.get(f"/v1/datasets/{dataset['id']}").json()["sha256"] == dataset["sha256"]
