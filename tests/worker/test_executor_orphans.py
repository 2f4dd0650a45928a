"""The local executor after its API process dies: no orphans, no late success, no double run.

Real `regfit serve` processes: the API is killed with SIGKILL (or stopped with SIGSTOP), and
its descendants are read from /proc, before and after.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_e2e import Server

pytestmark = pytest.mark.e2e

# An ill-conditioned design with a tiny alpha and tolerance: coordinate descent needs many
# sweeps of ~0.2 ms. ENDLESS runs until stopped; SECONDS ends with a model after seconds.
SLOW_DATA = {
    "n_samples": 2000,
    "n_features": 300,
    "effective_rank": 3,
    "noise": 1.0,
    "random_state": 0,
}
ENDLESS_FIT = {"type": "l1", "alpha": 1e-7, "tol": 1e-14, "max_iter": 1_000_000}
SECONDS_FIT = {"type": "l1", "alpha": 1e-7, "tol": 1e-14, "max_iter": 8_000}
TERMINAL = ("succeeded", "failed", "cancelled")


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time in clock ticks) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()  # after "pid (comm)"
    return fields[0], int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root``: pid → start time (to tell a reused pid apart)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc_stat(int(entry))
        if stat is None or stat[0] == "Z":
            continue
        children.setdefault(stat[1], []).append(int(entry))
        starts[int(entry)] = stat[2]
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def alive(processes: dict[int, int]) -> list[int]:
    """The processes of ``processes`` still running (a zombie has stopped running)."""
    left = []
    for pid, start in processes.items():
        stat = _proc_stat(pid)
        if stat is not None and stat[0] != "Z" and stat[2] == start:
            left.append(pid)
    return left


@pytest.fixture
def stopped_servers() -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for srv in servers:
        if srv.process is not None and srv.process.poll() is None:
            os.kill(srv.process.pid, signal.SIGCONT)
        srv.stop()


def _start(tmp_path: Path, servers: list[Server], limit: float) -> Server:
    srv = Server(
        tmp_path,
        env={"REGFIT_WORKERS": "2", "REGFIT_JOB_TIME_LIMIT_SECONDS": f"{limit:g}"},
    )
    servers.append(srv)
    srv.start()
    return srv


def _submit_running(client: httpx.Client, penalty: dict[str, Any]) -> str:
    dataset = client.post("/v1/datasets/synthetic", json=SLOW_DATA)
    assert dataset.status_code == 201, dataset.text
    submitted = client.post(
        "/v1/jobs", json={"dataset_id": dataset.json()["id"], "target": "y", "penalty": penalty}
    )
    assert submitted.status_code == 202, submitted.text
    job_id = str(submitted.json()["id"])
    _wait(client, job_id, until=("running",), timeout=30)
    return job_id


def _wait(
    client: httpx.Client, job_id: str, *, until: tuple[str, ...] = TERMINAL, timeout: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is {job.get('status')} after {timeout} s: {job}")


def _kill_api(srv: Server) -> tuple[dict[int, int], float]:
    """SIGKILL the API; returns its descendants before and how long they took to go."""
    assert srv.process is not None
    before = descendants(srv.process.pid)
    srv.process.send_signal(signal.SIGKILL)
    srv.process.wait(5)
    killed = time.monotonic()
    while alive(before) and time.monotonic() - killed < 5:
        time.sleep(0.02)
    return before, time.monotonic() - killed


def test_killed_api_leaves_no_process_and_the_restart_runs_the_job_once(
    tmp_path: Path, stopped_servers: list[Server]
) -> None:
    srv = _start(tmp_path, stopped_servers, limit=600)
    with httpx.Client(base_url=srv.url, timeout=120) as client:
        job_id = _submit_running(client, SECONDS_FIT)
        time.sleep(0.5)  # the fit is under way in a worker
    before, gone_after = _kill_api(srv)
    # Two workers, the fork server and multiprocessing's resource tracker at least.
    assert len(before) >= 4, before
    assert not alive(before), f"still running 5 s after the API died: {alive(before)}"
    assert gone_after < 2.0, gone_after

    srv.start()  # same database and data directory: the lost attempt runs again, once
    with httpx.Client(base_url=srv.url, timeout=120) as client:
        job = _wait(client, job_id)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2
        models = client.get("/v1/models").json()
        assert models["total"] == 1
        assert models["items"][0]["id"] == job["model_id"]


def test_killed_api_mid_job_with_a_time_limit_never_succeeds(
    tmp_path: Path, stopped_servers: list[Server]
) -> None:
    limit = 4.0
    srv = _start(tmp_path, stopped_servers, limit=limit)
    with httpx.Client(base_url=srv.url, timeout=120) as client:
        job_id = _submit_running(client, ENDLESS_FIT)
        time.sleep(1.0)
    before, gone_after = _kill_api(srv)
    assert not alive(before) and gone_after < 2.0, (alive(before), gone_after)

    srv.start()
    with httpx.Client(base_url=srv.url, timeout=120) as client:
        job = _wait(client, job_id, timeout=limit * 5)
        assert job["status"] == "failed", job
        assert "time limit" in job["error"]["detail"]
        time.sleep(limit)  # nobody left to record a late success
        again = client.get(f"/v1/jobs/{job_id}").json()
        assert again["status"] == "failed" and again["model_id"] is None
        assert client.get("/v1/models").json()["total"] == 0


def test_a_worker_enforces_its_time_limit_while_the_api_cannot(
    tmp_path: Path, stopped_servers: list[Server]
) -> None:
    """With the API frozen (SIGSTOP), the worker ends itself at the job's deadline."""
    limit = 3.0
    srv = _start(tmp_path, stopped_servers, limit=limit)
    assert srv.process is not None
    with httpx.Client(base_url=srv.url, timeout=120) as client:
        job_id = _submit_running(client, ENDLESS_FIT)
        stopped_at = time.monotonic()
        srv.process.send_signal(signal.SIGSTOP)
        try:
            processes = descendants(srv.process.pid)
            worker = _busiest(set(processes))
            time.sleep(limit + 2.0)  # deadline + the worker's grace, measured from before
            assert not alive({worker: processes[worker]}), "the worker outlived its limit"
        finally:
            srv.process.send_signal(signal.SIGCONT)
        assert time.monotonic() - stopped_at < limit + 10
        job = _wait(client, job_id, timeout=30)
        assert job["status"] == "failed", job
        assert "time limit" in job["error"]["detail"]
        assert job["model_id"] is None


def _busiest(pids: set[int]) -> int:
    """The process among ``pids`` that uses the most CPU over half a second."""

    def ticks(pid: int) -> int:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return 0
        return int(fields[11]) + int(fields[12])  # user + system clock ticks

    first = {pid: ticks(pid) for pid in pids}
    time.sleep(0.5)
    used = {pid: ticks(pid) - first[pid] for pid in pids}
    busiest = max(used, key=lambda pid: used[pid])
    assert used[busiest] > 0, f"no process is computing: {used}"
    return busiest
