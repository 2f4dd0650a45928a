"""End to end against a real `regfit serve`: hostile bodies cost the API process little
memory (its own /proc figures), and big bodies being parsed do not stall /healthz."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from test_e2e import Server, wait_for_job

pytestmark = pytest.mark.e2e

MB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of ``pid``, in bytes, from /proc."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) * 1024
    return figures


def test_many_distinct_keys_get_413_fast_with_little_memory(server: Server) -> None:
    """The issue's 289 KB records body (48 s and 3.6 GB before) and the same as JSON Lines
    (20 s and 5.8 GB)."""
    assert server.process is not None
    pid = server.process.pid
    records = orjson.dumps({"records": [{f"k{i}": 1} for i in range(20_000)]})
    lines = b"".join(orjson.dumps({f"k{i}": 1}) + b"\n" for i in range(20_000))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        client.get("/healthz")
        before = _memory(pid)
        for body, content_type in (
            (records, "application/json"),
            (lines, "application/x-ndjson"),
        ):
            started = time.perf_counter()
            response = client.post(
                "/v1/datasets", content=body, headers={"content-type": content_type}
            )
            elapsed = time.perf_counter() - started
            assert response.status_code == 413, response.text
            assert elapsed < 1.0, (content_type, elapsed)
        after = _memory(pid)
    growth = after["VmHWM"] - max(before["VmHWM"], before["VmRSS"])
    print(f"\nAPI VmHWM before {before['VmHWM'] / MB:.1f} MB, after {after['VmHWM'] / MB:.1f} MB")
    assert growth < 64 * MB, (before, after)


PROBE = """
import sys, time, httpx
latencies = []
with httpx.Client(base_url=sys.argv[1], timeout=10) as client:
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        started = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.01)
print(" ".join(f"{x:.6f}" for x in latencies))
"""


def _while_probing(url: str, work: Callable[[], Any], seconds: float) -> tuple[Any, list[float]]:
    """``work()`` while another process polls /healthz (so this process's own GIL is not
    measured); the probe latencies, sorted."""
    probe = subprocess.Popen(
        [sys.executable, "-c", PROBE, url, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    time.sleep(0.5)  # its interpreter starts
    result = work()
    out, _ = probe.communicate(timeout=seconds + 30)
    return result, sorted(float(x) for x in out.split())


def _p90(latencies: list[float]) -> float:
    return latencies[int(len(latencies) * 0.9)]


def _check_latencies(what: str, latencies: list[float], idle: list[float]) -> None:
    """Most probes within 100 ms (of what the machine answers idle), none waiting for the
    whole parse (seconds before the fix). Other processes may share this machine's cores,
    so a single probe can be slow for reasons of its own: the 90th percentile is asserted,
    over the idle one (a few ms on a quiet machine)."""
    p90 = _p90(latencies)
    print(
        f"\n{what}: {len(latencies)} probes, median {latencies[len(latencies) // 2] * 1000:.0f} "
        f"ms, p90 {p90 * 1000:.0f} ms, slowest {latencies[-1] * 1000:.0f} ms "
        f"(idle: p90 {_p90(idle) * 1000:.0f} ms, slowest {idle[-1] * 1000:.0f} ms)"
    )
    assert p90 < 0.1 + _p90(idle), latencies[-10:]
    assert latencies[-1] < 1.0 + idle[-1], latencies[-10:]


def test_healthz_answers_while_big_bodies_are_parsed(server: Server) -> None:
    """A 100 MB CSV upload and a 100 MB predict body: /healthz within 100 ms throughout."""
    rng = np.random.default_rng(0)
    table = pa.table({f"x{j}": rng.normal(size=1_100_000) for j in range(5)})
    sink = io.BytesIO()
    pa_csv.write_csv(table, sink)
    csv_body = sink.getvalue()
    assert len(csv_body) > 100 * MB * 0.95, len(csv_body)
    with httpx.Client(base_url=server.url, timeout=300) as client:
        _, idle = _while_probing(server.url, lambda: time.sleep(3), seconds=3)
        upload, latencies = _while_probing(
            server.url,
            lambda: client.post(
                "/v1/datasets", content=csv_body, headers={"content-type": "text/csv"}
            ),
            seconds=8,
        )
        assert upload.status_code == 201, upload.text
        _check_latencies("100 MB CSV upload", latencies, idle)

        dataset = client.post(
            "/v1/datasets/synthetic",
            json={"n_samples": 200, "n_features": 50, "random_state": 0},
        ).json()
        job = client.post(
            "/v1/jobs",
            json={"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2"}},
        ).json()
        done = wait_for_job(client, job["id"])
        assert done["status"] == "succeeded", done
        rows = rng.normal(size=(100_000, 50))
        predict_body = orjson.dumps({"rows": rows.tolist()})
        assert len(predict_body) > 90 * MB, len(predict_body)
        predicted, latencies = _while_probing(
            server.url,
            lambda: client.post(
                f"/v1/models/{done['model_id']}/predict",
                content=predict_body,
                headers={"content-type": "application/json"},
            ),
            seconds=6,
        )
        assert predicted.status_code == 200, predicted.text[:500]
        assert len(predicted.json()["predictions"]) == 100_000
        _check_latencies("100 MB predict body", latencies, idle)
