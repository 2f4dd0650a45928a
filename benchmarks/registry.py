"""What a registry reference costs on the predict hot path: by id vs ``name@alias`` vs
``name/versions/n``, in the same run on the same server and model.

Starts a real ``python -m service serve`` (temporary SQLite file and data dir, access log off),
trains a Ridge model through the API and registers it as ``bench`` version 1 with the alias
``champion``. wrk (16 connections) then drives single-row and 1000-row predictions through
each form, alternating between them every round; the median of ``--rounds`` runs is printed
with each reference's throughput relative to the id. On a machine shared with other work wrk's
runs drift by more than the difference being measured, so single-row requests are also timed
interleaved (id, alias, version, id, …) on one keep-alive connection each: the same moment's
load falls on every form, and the median latencies compare them. The bar: an alias costs
≤ 10 %.

    .venv/bin/python benchmarks/registry.py            # 5 rounds of 5 s (~3 min)
    .venv/bin/python benchmarks/registry.py --quick    # 1 round of 2 s
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import httpx
from harness import RegfitServer, fmt_table, temp_dir, write_csv
from serving import BATCH, N_ROWS, Target, _bodies, drive, train_regfit_model
from sklearn.datasets import make_regression


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="wrk runs per reference and size")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--n-features", type=int, default=20)
    parser.add_argument(
        "--interleaved", type=int, default=3000, help="single-row requests per form, interleaved"
    )
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.interleaved = 2.0, 1, 500

    X, y = make_regression(n_samples=N_ROWS, n_features=args.n_features, noise=5.0, random_state=0)
    single, batch = _bodies(X)
    env = {"REGFIT_ACCESS_LOG": "false", "REGFIT_LOG_LEVEL": "warning"}
    with temp_dir("regfit-registry-") as workdir, RegfitServer(workdir, env) as server:
        csv_path = workdir / "train.csv"
        write_csv(csv_path, X, y)
        client = httpx.Client(base_url=server.url, timeout=60)
        model_id = train_regfit_model(client, csv_path)
        client.post("/v1/registry", json={"name": "bench"}).raise_for_status()
        client.post("/v1/registry/bench/versions", json={"model_id": model_id}).raise_for_status()
        client.put("/v1/registry/bench/aliases/champion", json={"version": 1}).raise_for_status()
        base = f"{server.url}/v1/models"
        targets = [
            Target("id", f"{base}/{model_id}/predict", single, batch),
            Target("alias", f"{base}/bench@champion/predict", single, batch),
            Target("version", f"{base}/bench/versions/1/predict", single, batch),
        ]
        answers = {
            t.name: httpx.post(
                t.url, content=single, headers={"content-type": "application/json"}
            ).json()["predictions"]
            for t in targets
        }
        assert len({str(a) for a in answers.values()}) == 1, answers
        results = drive(targets, args.rounds, args.seconds, args, workdir)
        latencies = interleaved(targets, single, args.interleaved)

    rows = []
    for size, n_rows in (("single", 1), ("batch", BATCH)):
        by_id = results[("id", size)]
        for target in targets:
            r = results[(target.name, size)]
            rows.append(
                [
                    f"{n_rows} row" + ("s" if n_rows > 1 else ""),
                    target.name,
                    f"{r.rps:,.0f}",
                    f"{r.p50_ms:.2f}",
                    f"{r.p99_ms:.2f}",
                    f"{r.rps / by_id.rps:.3f}",
                    r.errors,
                ]
            )
    print(
        f"registry references on the predict path — {os.cpu_count()} cores, wrk "
        f"{args.connections} connections, {args.rounds} × {args.seconds:g} s (median)"
    )
    headers = ["request", "reference", "req/s", "p50 ms", "p99 ms", "vs id", "errors"]
    print(fmt_table(headers, rows))
    print(
        f"\nsingle-row latency, {args.interleaved} requests per form interleaved (one connection)"
    )
    id_median = statistics.median(latencies["id"])
    print(
        fmt_table(
            ["reference", "median µs", "mean µs", "median vs id"],
            [
                [
                    name,
                    f"{statistics.median(values) * 1e6:,.0f}",
                    f"{statistics.fmean(values) * 1e6:,.0f}",
                    f"{statistics.median(values) / id_median:.3f}",
                ]
                for name, values in latencies.items()
            ],
        )
    )


def interleaved(targets: list[Target], body: bytes, n: int) -> dict[str, list[float]]:
    """Per-request latency of each target, the targets taking turns request by request."""
    clients = {t.name: httpx.Client(timeout=30) for t in targets}
    headers = {"content-type": "application/json"}
    latencies: dict[str, list[float]] = {t.name: [] for t in targets}
    try:
        for _ in range(50):  # warm-up: connections, caches
            for t in targets:
                clients[t.name].post(t.url, content=body, headers=headers).raise_for_status()
        for _ in range(n):
            for t in targets:
                start = time.perf_counter()
                response = clients[t.name].post(t.url, content=body, headers=headers)
                latencies[t.name].append(time.perf_counter() - start)
                response.raise_for_status()
    finally:
        for client in clients.values():
            client.close()
    return latencies


if __name__ == "__main__":
    main()
