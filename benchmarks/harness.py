"""What the benchmark scripts share: a real `regfit serve` process, wrk, /proc memory readings.

Scripts run from the repository root with the project's interpreter, e.g.
``.venv/bin/python benchmarks/serving.py``; they print, they never assert on time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path, path: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready in 120 s")


def stop_process(process: subprocess.Popen[bytes] | None, grace: float = 20) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RegfitServer:
    """`python -m service serve` in a subprocess, on a temporary SQLite file and data dir."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "REGFIT_DATABASE_URL": f"sqlite:///{workdir / 'regfit.db'}",
            "REGFIT_DATA_DIR": str(workdir / "data"),
            "REGFIT_LOG_LEVEL": "warning",
            "REGFIT_AUTH": "auto",
            **(env or {}),
        }
        self.log = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> RegfitServer:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve", "--port", str(self.port)],
                cwd=REPO,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_until_ready(self.url, self.process, self.log, "/readyz")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process)


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- the API, as a client uses it -----------------------------------------------------------


def upload_csv(client: httpx.Client, path: Path, name: str | None = None) -> dict[str, Any]:
    """Uploads a CSV file as multipart, streamed from disk (httpx reads the file in chunks)."""
    with path.open("rb") as stream:
        response = client.post(
            "/v1/datasets",
            files={"file": (path.name, stream, "text/csv")},
            data={"name": name or path.stem},
            timeout=None,
        )
    response.raise_for_status()
    return dict(response.json())


def submit_job(client: httpx.Client, spec: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=spec)
    response.raise_for_status()
    return str(response.json()["id"])


def wait_job(client: httpx.Client, job_id: str, poll: float = 0.02) -> dict[str, Any]:
    """Polls a job until it ends (every ``poll`` seconds) and returns its final body."""
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {job_id} ended {job['status']}: {job.get('error')}")
            return dict(job)
        time.sleep(poll)


def write_csv(path: Path, X: Any, y: Any) -> None:
    """Writes ``x0 … x{p-1}, y`` as CSV (numpy's text writer, ``%.17g``: values round-trip)."""
    import numpy as np

    header = ",".join([*(f"x{j}" for j in range(X.shape[1])), "y"])
    table = np.column_stack([X, y])
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt="%.17g")


# -- wrk ---------------------------------------------------------------------------------

_WRK_SCRIPT = """
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"non2xx": %d, "socket_errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def wrk_post(
    url: str,
    body: bytes,
    *,
    seconds: float,
    connections: int = 16,
    threads: int = 2,
    workdir: Path,
) -> WrkResult:
    """Drives ``url`` with POSTs of ``body`` for ``seconds`` and returns wrk's summary."""
    body_path = workdir / f"body-{len(body)}-{abs(hash(body))}.json"
    body_path.write_bytes(body)
    script = workdir / "post.lua"
    script.write_text(_WRK_SCRIPT.format(body=body_path))
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["non2xx"] + data["socket_errors"],
    )


def median_result(results: Sequence[WrkResult]) -> WrkResult:
    """The run with the median throughput (its latencies belong to the same run)."""
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[len(ordered) // 2]


# -- memory ------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.extend(int(c) for c in text.split())
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all of its descendants alive now."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


def status_kb(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in kB (0 when the process is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def tree_rss_kb(pid: int) -> int:
    """The resident memory of ``pid`` and its descendants, summed."""
    return sum(status_kb(p, "VmRSS") for p in process_tree(pid))


def fmt_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table with right-aligned columns (the README copies it as printed)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
