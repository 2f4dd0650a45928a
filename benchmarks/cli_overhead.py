"""CLI overhead: ``regfit train … --wait`` against the same job through the raw API.

The seed's diabetes data is uploaded once; then, per job kind and repeat, in turn:

- ``raw``: ``POST /v1/jobs``, ``GET /v1/jobs/{id}`` every 20 ms until it has finished, then
  ``GET /v1/models/{id}`` — the floor a client can reach;
- ``client``: ``Client.train(...).wait().model()`` in this process (the library's polling);
- ``cli``: ``regfit --url … train DATASET … --wait --json`` in a subprocess: the interpreter's
  start, the imports (typer, rich, httpx, pydantic, the server's command plugin), the same
  calls, and the JSON printed;
- ``startup``: ``regfit --version`` alone (the part of ``cli`` that is not the job).

One untimed job runs first (the fork server's start-up). Medians are printed.

    .venv/bin/python benchmarks/cli_overhead.py            # 5 repeats
    .venv/bin/python benchmarks/cli_overhead.py --quick    # 2 repeats
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from harness import RegfitServer, fmt_table, median, submit_job, temp_dir, upload_csv, wait_job
from regfit import Client
from sklearn.datasets import load_diabetes

REGFIT = str(Path(sys.executable).parent / "regfit")

JOBS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "lasso alpha=0.1": (
        {"penalty": {"type": "l1", "alpha": 0.1}},
        ["--penalty", "l1", "--alpha", "0.1"],
    ),
    "grid 30 alphas × l1,l2,en, 5 folds": (
        {
            "penalty": {"type": "l1"},
            "tuning": {
                "strategy": "grid",
                "space": {"penalty": ["l1", "l2", "elasticnet"], "alpha": None},
                "cv": {"folds": 5},
            },
        },
        ["--compare", "l1,l2,elasticnet", "--alpha", "1e-3:10:30:log", "--folds", "5"],
    ),
}


def log_grid(low: float, high: float, n: int) -> list[float]:
    from regfit.cli import spaced

    return spaced(low, high, n, log=True)


def write_diabetes(path: Path) -> None:
    data = load_diabetes()
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*data.feature_names, "target"])
        writer.writerows([*row, target] for row, target in zip(data.data, data.target, strict=True))


def raw_api(url: str, spec: dict[str, Any]) -> float:
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as http:
        job = wait_job(http, submit_job(http, spec))
        assert job["status"] == "succeeded", job
        http.get(f"/v1/models/{job['model_id']}").raise_for_status()
    return time.perf_counter() - start


def python_client(url: str, spec: dict[str, Any]) -> float:
    start = time.perf_counter()
    with Client(url) as client:
        client.submit(spec).wait().model()
    return time.perf_counter() - start


def cli(url: str, dataset_id: str, options: list[str]) -> float:
    start = time.perf_counter()
    command = [REGFIT, "--url", url, "train", dataset_id, "-t", "target", *options, "--wait"]
    subprocess.run([*command, "--json"], check=True, capture_output=True)
    return time.perf_counter() - start


def startup() -> float:
    start = time.perf_counter()
    subprocess.run([REGFIT, "--version"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    args = parser.parse_args()
    repeat = 2 if args.quick else args.repeat

    with temp_dir("regfit-cli-bench-") as tmp, RegfitServer(tmp, {"REGFIT_WORKERS": "1"}) as srv:
        write_diabetes(tmp / "diabetes.csv")
        with httpx.Client(base_url=srv.url, timeout=60) as http:
            dataset_id = upload_csv(http, tmp / "diabetes.csv")["id"]
        rows = []
        for label, (body, options) in JOBS.items():
            spec = {"dataset_id": dataset_id, "target": "target", **body}
            if "tuning" in spec:
                spec["tuning"]["space"]["alpha"] = log_grid(1e-3, 10, 30)
            raw_api(srv.url, spec)  # untimed: the first job pays the worker's start-up
            times: dict[str, list[float]] = {"raw": [], "client": [], "cli": [], "startup": []}
            for _ in range(repeat):
                times["raw"].append(raw_api(srv.url, spec))
                times["client"].append(python_client(srv.url, spec))
                times["cli"].append(cli(srv.url, dataset_id, options))
                times["startup"].append(startup())
            m = {key: median(values) for key, values in times.items()}
            rows.append(
                [
                    label,
                    f"{m['raw']:.3f}",
                    f"{m['client']:.3f}",
                    f"{m['cli']:.3f}",
                    f"{m['cli'] - m['raw']:+.3f}",
                    f"{m['startup']:.3f}",
                ]
            )
        headers = ["job", "raw API s", "client s", "cli s", "cli − raw s", "regfit --version s"]
        print(f"median of {repeat}; diabetes 442×10; REGFIT_WORKERS=1")
        print(fmt_table(headers, rows))


if __name__ == "__main__":
    main()
