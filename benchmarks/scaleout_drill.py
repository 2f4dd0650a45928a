"""The scale-out drill: N jobs on W Celery workers, one worker killed (-9), one API restart.

    .venv/bin/python benchmarks/scaleout_drill.py                      # 30 jobs, 3 workers, Redis
    .venv/bin/python benchmarks/scaleout_drill.py --broker amqp://guest:guest@127.0.0.1:5672//

It runs the commands the compose stack runs: `regfit migrate` on a fresh PostgreSQL
database, `regfit worker` × W and `regfit serve` with ``REGFIT_EXECUTOR=celery``. A third of
the jobs is submitted, the worker running a job is killed with SIGKILL, another third is
submitted, the API is killed with SIGKILL and started again, the rest is submitted; then it
waits for every job. It prints the figures (and one JSON line with ``--json``) and exits 1
unless every job succeeded with exactly one model each. The database and the queue are
removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from harness import free_port, stop_process, wait_until_ready
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get(
    "REGFIT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# Ill-conditioned, tiny tolerance, bounded sweeps: each job fits for about a second (4000).
DATA = {"n_samples": 2000, "n_features": 300, "effective_rank": 3, "noise": 1.0, "random_state": 0}
TERMINAL = ("succeeded", "failed", "cancelled")


class Drill:
    def __init__(self, workdir: Path, broker: str, workers: int) -> None:
        self.workdir = workdir
        self.database = "regfit_drill_" + uuid.uuid4().hex[:10]
        self.database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.database
        self.broker = broker
        self.queue = "regfit-drill-" + uuid.uuid4().hex[:10]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "REGFIT_DATABASE_URL": self.database_url,
            "REGFIT_DATA_DIR": str(workdir / "data"),
            "REGFIT_EXECUTOR": "celery",
            "REGFIT_BROKER_URL": broker,
            "REGFIT_CELERY_QUEUE": self.queue,
            "REGFIT_HEARTBEAT_SECONDS": "0.5",
            "REGFIT_STALE_AFTER_SECONDS": "3",
            "REGFIT_LOG_LEVEL": "warning",
        }
        self.n_workers = workers
        self.workers: list[subprocess.Popen[bytes]] = []
        self.api: subprocess.Popen[bytes] | None = None
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    # -- processes ----------------------------------------------------------------------

    def regfit(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log).open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "service", *args],
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def setup(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.database}"'))
        migrate = self.regfit("migrate", log="migrate.log")
        if migrate.wait(120) != 0:
            raise RuntimeError((self.workdir / "migrate.log").read_text()[-3000:])
        for i in range(self.n_workers):
            self.workers.append(self.regfit("worker", "--concurrency", "1", log=f"worker{i}.log"))
        self.start_api()
        self.wait_workers()

    def start_api(self) -> None:
        self.api = self.regfit("serve", "--port", str(self.port), log="api.log")
        wait_until_ready(self.url, self.api, self.workdir / "api.log", "/readyz")

    def wait_workers(self) -> None:
        from service.config import Settings
        from service.worker.celery_app import create_celery

        app = create_celery(
            Settings(broker_url=self.broker, celery_queue=self.queue, _env_file=None)  # type: ignore[call-arg]
        )
        nodes = {f"regfit-{w.pid}@{socket.gethostname()}" for w in self.workers}
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                replies = app.control.ping(destination=sorted(nodes), timeout=1.0)
                if {name for reply in replies for name in reply} >= nodes:
                    return
            raise RuntimeError("workers not ready after 120 s")
        finally:
            app.close()

    def kill_api(self) -> None:
        assert self.api is not None
        self.api.kill()
        self.api.wait(10)

    def kill_worker_running(self, job_ids: list[str]) -> int:
        """SIGKILLs the worker whose pool process runs one of ``job_ids``; returns its pid."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for job_id in job_ids:
                job = self.job(job_id)
                pool_pid = job.get("worker_pid")
                if job["status"] == "running" and pool_pid:
                    parent = parent_pid(pool_pid)
                    for worker in self.workers:
                        if worker.pid == parent and worker.poll() is None:
                            worker.kill()
                            worker.wait(10)
                            return worker.pid
            time.sleep(0.05)
        raise RuntimeError("no job was running on a worker within 60 s")

    def teardown(self) -> None:
        stop_process(self.api)
        for worker in self.workers:
            stop_process(worker, grace=5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            purge(self.broker, self.queue)
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        self.admin.dispose()

    # -- the database, read directly (the API is down for part of the drill) -------------

    def job(self, job_id: str) -> dict[str, Any]:
        engine = self._engine()
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT status, attempts, worker_pid, model_id FROM jobs WHERE id = :id"),
                {"id": job_id},
            ).one()
        return dict(row._mapping)

    def totals(self) -> tuple[Counter[str], int, int, list[int]]:
        engine = self._engine()
        with engine.connect() as conn:
            statuses = Counter(
                dict(conn.execute(text("SELECT status, count(*) FROM jobs GROUP BY status")).all())
            )
            models = conn.execute(text("SELECT count(*) FROM models")).scalar_one()
            distinct = conn.execute(
                text("SELECT count(DISTINCT job_id) FROM models WHERE job_id IS NOT NULL")
            ).scalar_one()
            attempts = list(conn.execute(text("SELECT attempts FROM jobs")).scalars())
        return statuses, int(models), int(distinct), attempts

    _db_engine: Any = None

    def _engine(self) -> Any:
        if self._db_engine is None:
            self._db_engine = create_engine(
                self.database_url.replace("postgresql://", "postgresql+psycopg://")
            )
        return self._db_engine


def parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def purge(broker: str, queue: str) -> None:
    """Removes the drill's queue, its bindings and its unacknowledged messages."""
    if broker.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker)
        for key in client.scan_iter(match=f"*{queue}*"):  # the queue and its bindings
            client.delete(key)
        for tag, raw in client.hscan_iter("unacked"):  # left by the killed worker
            if queue in str(raw[-200:]):
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        client.close()
        return
    from kombu import Connection

    with Connection(broker, connect_timeout=3) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_delete(queue)


def submit(client: httpx.Client, dataset_id: str, i: int, sweeps: int) -> str:
    penalty = {"type": "l1", "alpha": 1e-7 * (1 + i), "tol": 1e-14, "max_iter": sweeps}
    response = client.post(
        "/v1/jobs", json={"dataset_id": dataset_id, "target": "y", "penalty": penalty}
    )
    response.raise_for_status()
    return str(response.json()["id"])


def run(n_jobs: int, n_workers: int, broker: str, workdir: Path, sweeps: int) -> dict[str, Any]:
    drill = Drill(workdir, broker, n_workers)
    started = time.monotonic()
    try:
        drill.setup()
        ready = time.monotonic()
        third = max(1, n_jobs // 3)
        with httpx.Client(base_url=drill.url, timeout=60) as client:
            dataset = client.post("/v1/datasets/synthetic", json=DATA)
            dataset.raise_for_status()
            dataset_id = dataset.json()["id"]
            ids = [submit(client, dataset_id, i, sweeps) for i in range(third)]
        killed_worker = drill.kill_worker_running(ids)
        with httpx.Client(base_url=drill.url, timeout=60) as client:
            ids += [submit(client, dataset_id, i, sweeps) for i in range(third, 2 * third)]
        drill.kill_api()
        drill.start_api()
        with httpx.Client(base_url=drill.url, timeout=60) as client:
            ids += [submit(client, dataset_id, i, sweeps) for i in range(2 * third, n_jobs)]
        deadline = time.monotonic() + 60 + 10 * n_jobs
        while time.monotonic() < deadline:
            if all(drill.job(job_id)["status"] in TERMINAL for job_id in ids):
                break
            time.sleep(0.2)
        finished = time.monotonic()
        statuses, models, distinct, attempts = drill.totals()
    finally:
        drill.teardown()
    return {
        "jobs": n_jobs,
        "workers": n_workers,
        "broker": broker.split("://", 1)[0],
        "killed_worker_pid": killed_worker,
        "api_restarts": 1,
        "statuses": dict(statuses),
        "succeeded": statuses.get("succeeded", 0),
        "models": models,
        "jobs_with_a_model": distinct,
        "jobs_run_twice": sum(1 for a in attempts if a > 1),
        "max_attempts_used": max(attempts, default=0),
        "setup_seconds": round(ready - started, 1),
        "drill_seconds": round(finished - ready, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--sweeps", type=int, default=4000, help="coordinate-descent sweeps per job (its length)"
    )
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regfit-drill-") as tmp:
        figures = run(args.jobs, args.workers, args.broker, Path(tmp), args.sweeps)
    ok = (
        figures["succeeded"] == args.jobs
        and figures["models"] == args.jobs
        and figures["jobs_with_a_model"] == args.jobs
    )
    f = figures
    print(
        f"scale-out drill: {args.jobs} jobs on {args.workers} Celery workers "
        f"({f['broker']}, PostgreSQL); 1 worker killed (-9), 1 API restart (-9)\n"
        f"  succeeded      {f['succeeded']}/{args.jobs}   statuses {f['statuses']}\n"
        f"  models         {f['models']} (jobs with a model: {f['jobs_with_a_model']})\n"
        f"  re-run jobs    {f['jobs_run_twice']} (max attempts {f['max_attempts_used']})\n"
        f"  time           {f['drill_seconds']} s (+{f['setup_seconds']} s setup)\n"
        f"  result         {'OK' if ok else 'FAILED'}"
    )
    if args.json:
        print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
