"""Prediction throughput and latency: regfit against a floor (and mlflow), in one run.

Starts, side by side on this machine:

- regfit: a real ``python -m service serve`` on a temporary SQLite file and data dir, with a
  Ridge model trained through the API (CSV upload → job → model);
- the floor: ``benchmarks/floor_app.py`` (orjson in, one numpy dot product, orjson out),
  served by uvicorn with the same settings as ``regfit serve``;
- where mlflow is installed (``--mlflow-python``, default ``/tmp/mlflow-venv/bin/python``):
  ``mlflow models serve --env-manager local`` on ``Pipeline(StandardScaler, Ridge)`` fitted
  with scikit-learn on the same rows.

Each is driven by wrk (POST bodies from a Lua script) at 16 connections with single-row and
1000-row requests; runs alternate between the servers, and the median of ``--rounds`` runs is
printed. Then single-row latency is measured again while two training jobs run (two tuning
jobs, or large plain fits when tuning is not available in this build).

    .venv/bin/python benchmarks/serving.py            # full run (~3 min)
    .venv/bin/python benchmarks/serving.py --quick    # shorter runs, no mlflow
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from harness import (
    REPO,
    RegfitServer,
    WrkResult,
    fmt_table,
    free_port,
    median_result,
    stop_process,
    submit_job,
    temp_dir,
    upload_csv,
    wait_job,
    wait_until_ready,
    write_csv,
    wrk_post,
)
from sklearn.datasets import make_regression

N_ROWS = 2000
BATCH = 1000
ALPHA = 1.0
DEFAULT_MLFLOW_PYTHON = "/tmp/mlflow-venv/bin/python"

MLFLOW_TRAIN = """
import sys
import numpy as np
import mlflow.sklearn
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

data = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
pipe = Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=float(sys.argv[3])))])
pipe.fit(data[:, :-1], data[:, -1])
mlflow.sklearn.save_model(pipe, sys.argv[2])
"""


@dataclass
class Target:
    name: str
    url: str
    single: bytes
    batch: bytes


def _bodies(X: np.ndarray) -> tuple[bytes, bytes]:
    return (
        orjson.dumps({"rows": X[:1].tolist()}),
        orjson.dumps({"rows": X[:BATCH].tolist()}),
    )


def _mlflow_bodies(X: np.ndarray) -> tuple[bytes, bytes]:
    columns = [f"x{j}" for j in range(X.shape[1])]

    def body(rows: np.ndarray) -> bytes:
        return orjson.dumps({"dataframe_split": {"columns": columns, "data": rows.tolist()}})

    return body(X[:1]), body(X[:BATCH])


def train_regfit_model(client: httpx.Client, csv_path: Path) -> str:
    dataset = upload_csv(client, csv_path, "serving-bench")
    job_id = submit_job(
        client,
        {
            "dataset_id": dataset["id"],
            "target": "y",
            "penalty": {"type": "l2", "alpha": ALPHA},
            "split": {"test_size": 0},
        },
    )
    return str(wait_job(client, job_id)["model_id"])


def check_validation(client: httpx.Client, model_id: str, n_features: int) -> list[list[Any]]:
    """The guarantees the benchmark must not trade away: each bad input gets a problem."""
    good = [0.5] * n_features
    names = [f"x{j}" for j in range(n_features)]
    cases: list[tuple[str, bytes]] = [
        ("wrong width", orjson.dumps({"rows": [good[:-1]]})),
        ("string value", orjson.dumps({"rows": [[*good[:-1], "abc"]]})),
        ("numeric string", orjson.dumps({"rows": [[*good[:-1], "1.5"]]})),
        ("NaN as a string", orjson.dumps({"rows": [[*good[:-1], "NaN"]]})),
        ("NaN literal", b'{"rows": [[' + b", ".join([b"0.5"] * (n_features - 1)) + b", NaN]]}"),
        ("1e999 (overflows to inf)", b'{"rows": [[' + b"0.5, " * (n_features - 1) + b"1e999]]}"),
        ("null (imputed: mean)", orjson.dumps({"rows": [[*good[:-1], None]]})),
        ("boolean", orjson.dumps({"rows": [[*good[:-1], True]]})),
        ("missing column", orjson.dumps({"records": [dict(zip(names[:-1], good, strict=False))]})),
        ("bad row in a 1000-row batch", orjson.dumps({"rows": [good] * 999 + [[1.0]]})),
    ]
    table = []
    for case, body in cases:
        response = client.post(
            f"/v1/models/{model_id}/predict",
            content=body,
            headers={"content-type": "application/json"},
        )
        where = ""
        if response.headers.get("content-type", "").startswith("application/problem+json"):
            problem = response.json()
            where = (problem.get("errors") or [{}])[0].get("loc", "") or problem["detail"][:40]
        table.append([case, response.status_code, where])
    return table


def start_floor(workdir: Path, n_features: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = workdir / "floor.log"
    with log.open("ab") as stream:
        process = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "benchmarks" / "floor_app.py"),
                "--port",
                str(port),
                "--n-features",
                str(n_features),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stream,
        )
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(url, process, log, "/healthz")
    return process, url


def mlflow_available(python: str) -> bool:
    if not Path(python).exists():
        return False
    probe = subprocess.run([python, "-c", "import mlflow"], capture_output=True, check=False)
    return probe.returncode == 0


def start_mlflow(
    python: str, workdir: Path, csv_path: Path
) -> tuple[subprocess.Popen[bytes], str, str]:
    model_dir = workdir / "mlflow-model"
    subprocess.run(
        [python, "-c", MLFLOW_TRAIN, str(csv_path), str(model_dir), str(ALPHA)],
        check=True,
        capture_output=True,
    )
    bindir = str(Path(python).parent)
    port = free_port()
    log = workdir / "mlflow.log"
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("VIRTUAL_ENV", None)
    with log.open("ab") as stream:
        process = subprocess.Popen(
            [
                str(Path(bindir) / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=stream,
            stderr=stream,
            env=env,
            start_new_session=True,  # mlflow starts a server of its own: stop the group
        )
    url = f"http://127.0.0.1:{port}"
    version = subprocess.run(
        [python, "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    wait_until_ready(url, process, log, "/ping")
    return process, url, version


def stop_group(process: subprocess.Popen[bytes]) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def drive(
    targets: list[Target], rounds: int, seconds: float, args: argparse.Namespace, workdir: Path
) -> dict[tuple[str, str], WrkResult]:
    """wrk runs alternating between targets; the median run of each (target, size)."""
    runs: dict[tuple[str, str], list[WrkResult]] = {}
    for target in targets:  # warm-up: caches, JIT-less but lazy imports, connection pools
        for body in (target.single, target.batch):
            wrk_post(target.url, body, seconds=1, workdir=workdir, threads=args.threads)
    for _ in range(rounds):
        for size in ("single", "batch"):
            for target in targets:
                body = target.single if size == "single" else target.batch
                result = wrk_post(
                    target.url,
                    body,
                    seconds=seconds,
                    connections=args.connections,
                    threads=args.threads,
                    workdir=workdir,
                )
                if result.errors:
                    print(f"  ! {target.name} {size}: {result.errors} errors / non-2xx responses")
                runs.setdefault((target.name, size), []).append(result)
    return {key: median_result(values) for key, values in runs.items()}


def throughput_table(
    results: dict[tuple[str, str], WrkResult], names: list[str]
) -> tuple[str, dict[str, float]]:
    rows = []
    ratios: dict[str, float] = {}
    for size, n_rows in (("single", 1), ("batch", BATCH)):
        floor = results[("floor", size)]
        for name in names:
            r = results[(name, size)]
            ratio = r.rps / floor.rps
            ratios[f"{name}/{size}"] = ratio
            rows.append(
                [
                    f"{n_rows} row" + ("s" if n_rows > 1 else ""),
                    name,
                    f"{r.rps:,.0f}",
                    f"{r.rps * n_rows:,.0f}",
                    f"{r.p50_ms:.2f}",
                    f"{r.p99_ms:.2f}",
                    f"{ratio:.2f}",
                ]
            )
    headers = ["request", "server", "req/s", "rows/s", "p50 ms", "p99 ms", "vs floor"]
    return fmt_table(headers, rows), ratios


class TrainingLoad:
    """Keeps ``n`` training jobs running until stopped (a finished job is replaced)."""

    def __init__(self, client: httpx.Client, spec: dict[str, Any], n: int) -> None:
        self.client, self.spec, self.n = client, spec, n
        self.stop = threading.Event()
        self.started = 0
        self.failed: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        active: list[str] = []
        while not self.stop.is_set():
            while len(active) < self.n:
                active.append(submit_job(self.client, self.spec))
                self.started += 1
            time.sleep(0.25)
            still = []
            for job_id in active:
                job = self.client.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("queued", "running"):
                    still.append(job_id)
                elif job["status"] == "failed":
                    self.failed.append(str((job.get("error") or {}).get("detail")))
            active = still
        for job_id in active:
            self.client.post(f"/v1/jobs/{job_id}/cancel")

    def running(self) -> int:
        jobs = self.client.get("/v1/jobs", params={"status": "running"}).json()
        return int(jobs["total"])


def tuning_available(client: httpx.Client, spec: dict[str, Any]) -> bool:
    job_id = submit_job(client, spec)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "failed":
            return False
        if job["status"] == "running" and job["progress"]["done"] > 0:
            break
        time.sleep(0.1)
    client.post(f"/v1/jobs/{job_id}/cancel")
    return True


def under_load(
    client: httpx.Client,
    target: Target,
    args: argparse.Namespace,
    workdir: Path,
    idle: WrkResult,
) -> str:
    synthetic = client.post(
        "/v1/datasets/synthetic",
        json={"n_samples": args.load_rows, "n_features": 100, "noise": 5.0, "random_state": 1},
        timeout=None,
    )
    synthetic.raise_for_status()
    dataset_id = synthetic.json()["id"]
    tuning_spec = {
        "dataset_id": dataset_id,
        "target": "y",
        "penalty": {"type": "l1"},
        "tuning": {
            "strategy": "grid",
            "space": {"alpha": [0.001, 0.01, 0.1, 1, 10, 100]},
            "cv": {"folds": 5},
        },
    }
    if tuning_available(client, tuning_spec):
        spec, kind = tuning_spec, "two tuning jobs (grid of 6 alphas × 5 folds, L1)"
    else:
        spec = {
            "dataset_id": dataset_id,
            "target": "y",
            "penalty": {"type": "l1", "alpha": 0.01, "tol": 1e-6, "max_iter": 5000},
        }
        kind = "two plain L1 fits at a time (tuning is not available in this build)"
    load = TrainingLoad(client, spec, 2)
    load.thread.start()
    deadline = time.monotonic() + 30
    while load.running() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    runs = [
        wrk_post(
            target.url,
            target.single,
            seconds=args.seconds,
            connections=args.connections,
            threads=args.threads,
            workdir=workdir,
        )
        for _ in range(args.rounds)
    ]
    running_at_end = load.running()
    load.stop.set()
    load.thread.join()
    loaded = median_result(runs)
    rows = [
        ["idle", f"{idle.rps:,.0f}", f"{idle.p50_ms:.2f}", f"{idle.p99_ms:.2f}", "1.00"],
        [
            "training",
            f"{loaded.rps:,.0f}",
            f"{loaded.p50_ms:.2f}",
            f"{loaded.p99_ms:.2f}",
            f"{loaded.p99_ms / idle.p99_ms:.2f}",
        ],
    ]
    text = fmt_table(["regfit, 1 row", "req/s", "p50 ms", "p99 ms", "p99 / idle"], rows)
    notes = (
        f"load: {kind} on a {args.load_rows}×100 synthetic dataset; "
        f"{load.started} jobs started, {running_at_end} running when the last wrk run ended"
    )
    if load.failed:
        notes += f"; {len(load.failed)} failed: {load.failed[0]}"
    return text + "\n" + notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server and size")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--n-features", type=int, default=20)
    parser.add_argument("--mlflow-python", default=DEFAULT_MLFLOW_PYTHON)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--no-load", action="store_true", help="skip the training-load run")
    parser.add_argument("--load-rows", type=int, default=200_000)
    parser.add_argument(
        "--access-log", action="store_true", help="keep regfit's access log (JSON line/request)"
    )
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 round, no mlflow")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.no_mlflow = 2.0, 1, True
        args.load_rows = min(args.load_rows, 100_000)

    X, y = make_regression(n_samples=N_ROWS, n_features=args.n_features, noise=5.0, random_state=0)
    single, batch = _bodies(X)
    env = {} if args.access_log else {"REGFIT_ACCESS_LOG": "false"}
    env["REGFIT_LOG_LEVEL"] = "info" if args.access_log else "warning"
    with temp_dir("regfit-serving-") as workdir, RegfitServer(workdir, env) as server:
        csv_path = workdir / "train.csv"
        write_csv(csv_path, X, y)
        client = httpx.Client(base_url=server.url, timeout=60)
        model_id = train_regfit_model(client, csv_path)
        targets = [
            Target("regfit", f"{server.url}/v1/models/{model_id}/predict", single, batch),
        ]
        floor, floor_url = start_floor(workdir, args.n_features)
        targets.insert(0, Target("floor", floor_url + "/predict", single, batch))
        mlflow_process = None
        mlflow_note = ""
        if args.no_mlflow:
            mlflow_note = "mlflow: skipped (--no-mlflow / --quick)"
        elif not mlflow_available(args.mlflow_python):
            mlflow_note = (
                f"mlflow: skipped — no interpreter with mlflow at {args.mlflow_python} "
                "(python -m venv /tmp/mlflow-venv && /tmp/mlflow-venv/bin/pip install mlflow)"
            )
        else:
            mlflow_process, mlflow_url, version = start_mlflow(
                args.mlflow_python, workdir, csv_path
            )
            m_single, m_batch = _mlflow_bodies(X)
            targets.append(Target("mlflow", mlflow_url + "/invocations", m_single, m_batch))
            mlflow_note = f"mlflow {version}: `mlflow models serve --env-manager local`"
            # The same model: both must predict the same numbers.
            ours = client.post(
                f"/v1/models/{model_id}/predict", content=single, headers=JSON
            ).json()
            theirs = httpx.post(mlflow_url + "/invocations", content=m_single, headers=JSON)
            mlflow_note += f"; same prediction: ours {ours['predictions'][0]:.9g}, "
            mlflow_note += f"mlflow {theirs.json()['predictions'][0]:.9g}"
        try:
            print(f"regfit serving benchmark — {os.cpu_count()} cores, wrk {args.connections}")
            print(
                f"connections, {args.threads} threads, {args.rounds}×{args.seconds:g} s runs "
                f"(median); model: Ridge on {N_ROWS}×{args.n_features}, standard scaling"
            )
            access = "on" if args.access_log else "off (REGFIT_ACCESS_LOG=false)"
            print("regfit access log:", access)
            print()
            print("validation (regfit, 422 problem+json expected):")
            checks = check_validation(client, model_id, args.n_features)
            print(fmt_table(["input", "status", "first error at"], checks))
            print()
            results = drive(targets, args.rounds, args.seconds, args, workdir)
            names = [t.name for t in targets]
            table, ratios = throughput_table(results, names)
            print(table)
            print()
            print(
                f"regfit / floor: single row {ratios['regfit/single']:.2f}, "
                f"{BATCH} rows {ratios['regfit/batch']:.2f} (target ≥ 0.70)"
            )
            if "mlflow" in names:
                for size in ("single", "batch"):
                    r = results[("regfit", size)].rps / results[("mlflow", size)].rps
                    print(f"regfit / mlflow ({size}): {r:.1f}× (target ≥ 30×)")
            print(mlflow_note)
        finally:
            stop_process(floor)
            if mlflow_process is not None:
                stop_group(mlflow_process)
        if not args.no_load:
            print()
            print("single-row latency while training runs (target: p99 ≤ 3× idle):")
            print(under_load(client, targets[1], args, workdir, results[("regfit", "single")]))


JSON = {"content-type": "application/json"}

if __name__ == "__main__":
    main()
