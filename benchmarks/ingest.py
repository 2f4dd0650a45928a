"""Upload throughput and server memory: CSV files of 10 MB, 100 MB and 1 GB.

Each file (10 numeric columns and ``y``, made with numpy into a temporary directory) is
uploaded as ``multipart/form-data``, streamed from disk by httpx (the client never holds the
file in memory). While it uploads, the server's resident memory — the ``regfit serve``
process and every child it has (``VmRSS`` in ``/proc/<pid>/status``, sampled every 20 ms) —
is tracked; the peak growth over the idle server is printed. Then the dataset summary is
checked: ``n_rows`` and the mean of ``x0`` must equal what numpy computed while writing.

Targets: ≥ 100 MB/s; peak RSS growth ≤ 300 MB for the 1 GB file.

    .venv/bin/python benchmarks/ingest.py                 # 10 MB, 100 MB, 1 GB
    .venv/bin/python benchmarks/ingest.py --sizes-mb 10,100
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from harness import (
    RegfitServer,
    fmt_table,
    process_tree,
    status_kb,
    temp_dir,
    tree_rss_kb,
    upload_csv,
)

N_FEATURES = 10
CHUNK_ROWS = 20_000


def write_csv(path: Path, target_bytes: int, seed: int = 0) -> tuple[int, float]:
    """Writes about ``target_bytes`` of CSV; returns (rows, mean of x0) as numpy sees them.

    pyarrow writes each float in its shortest round-trip form, so the server parses back
    exactly the values whose mean is returned.
    """
    rng = np.random.default_rng(seed)
    names = [*(f"x{j}" for j in range(N_FEATURES)), "y"]
    rows, sums = 0, []
    with pa_csv.CSVWriter(str(path), pa.schema([(n, pa.float64()) for n in names])) as writer:
        while path.stat().st_size < target_bytes:
            block = rng.normal(size=(CHUNK_ROWS, len(names)))
            writer.write_table(pa.table({n: block[:, j] for j, n in enumerate(names)}))
            rows += len(block)
            sums.append(math.fsum(block[:, 0]))
    return rows, math.fsum(sums) / rows


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants (all their threads)."""
    ticks = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples the resident memory of a process tree until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="10,100,1000", help="file sizes in MB (10^6 bytes)")
    parser.add_argument("--quick", action="store_true", help="10 MB and 100 MB only")
    args = parser.parse_args()
    if args.quick:
        args.sizes_mb = "10,100"
    sizes = [int(s) for s in args.sizes_mb.split(",")]
    table = []
    with temp_dir("regfit-ingest-") as workdir:
        files = []
        for size in sizes:
            path = workdir / f"upload-{size}mb.csv"
            n_rows, mean_x0 = write_csv(path, size * 1_000_000, seed=size)
            files.append((size, path, n_rows, mean_x0))
        with RegfitServer(workdir) as server:
            client = httpx.Client(base_url=server.url, timeout=None)
            for _size, path, n_rows, mean_x0 in files:
                idle_kb = tree_rss_kb(server.pid)
                hwm_before = status_kb(server.pid, "VmHWM")
                cpu_before = tree_cpu_seconds(server.pid)
                load = os.getloadavg()[0]
                with RssSampler(server.pid) as sampler:
                    started = time.perf_counter()
                    dataset = upload_csv(client, path)
                    seconds = time.perf_counter() - started
                cpu = tree_cpu_seconds(server.pid) - cpu_before
                hwm_after = status_kb(server.pid, "VmHWM")
                column = next(c for c in dataset["columns"] if c["name"] == "x0")
                ok_rows = dataset["n_rows"] == n_rows
                ok_mean = math.isclose(column["mean"], mean_x0, rel_tol=1e-9, abs_tol=1e-12)
                mb = path.stat().st_size / 1e6
                table.append(
                    [
                        f"{mb:,.0f} MB",
                        f"{n_rows:,}",
                        f"{seconds:.2f}",
                        f"{mb / seconds:,.0f}",
                        f"{cpu:.2f}",
                        f"{mb / cpu:,.0f}" if cpu else "-",
                        f"{load:.1f}",
                        f"{(sampler.peak_kb - idle_kb) / 1024:,.0f}",
                        f"{max(hwm_after - hwm_before, 0) / 1024:,.0f}",
                        "yes" if ok_rows and ok_mean else f"NO ({dataset['n_rows']}, {column})",
                    ]
                )
                print(f"  {mb:,.0f} MB: done", flush=True)
                client.delete(f"/v1/datasets/{dataset['id']}")
    print()
    print(f"CSV upload (multipart, streamed from disk by httpx); {N_FEATURES} features + y")
    headers = [
        "file",
        "rows",
        "seconds",
        "MB/s",
        "server CPU s",
        "MB per CPU s",
        "load avg",
        "peak RSS growth MB",
        "API VmHWM growth MB",
        "summary right",
    ]
    print(fmt_table(headers, table))
    print("peak RSS growth: server process and children, sampled every 20 ms, over the idle")
    print("server; VmHWM: the API process's own high-water mark (children excluded)")
    print("server CPU s: user + system time of the server's threads during the upload (less")
    print("noisy than MB/s on a shared machine); load avg: 1-minute load when the upload began")


if __name__ == "__main__":
    main()
